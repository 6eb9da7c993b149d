/**
 * One `dockwall watch` per state directory (daemon/watch-lock.ts): the host's unit and the Swarm
 * service's task mount the same /var/lib/dockwall, and two watches would undo each other's rules
 * for ever. The second refuses at once (flock -n, a real flock(1)); once the first has gone, a watch
 * starts again; a state directory that cannot be used is not "another watch" (the daemon holds a
 * fallback then, and must not be stopped by the lock).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile, chmod } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { StateStore } from "../../src/apply/state-store.js";
import { takeWatchLock } from "../../src/daemon/watch-lock.js";

test("a second watch on the same state directory is refused without waiting, and may start once the first has gone", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-watchlock-"));
  try {
    const state = path.join(dir, "state");
    const first = await takeWatchLock(new StateStore(state));
    assert.equal(first.held, true);
    const second = await takeWatchLock(new StateStore(state));
    assert.equal(second.held, false);
    assert.ok(!second.held && second.otherWatch, "refused because another watch holds it");
    assert.match(!second.held ? second.reason : "", /another dockwall watch holds .*watch\.lock: run either the host's unit \(dockwall install\) or the Swarm service/);
    if (first.held) await first.release();
    const third = await takeWatchLock(new StateStore(state));
    assert.equal(third.held, true, "the lock is free again");
    if (third.held) await third.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a state directory that cannot be used is not another watch: the daemon is not stopped by the lock", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-watchlock-"));
  try {
    const notADir = path.join(dir, "file");
    await writeFile(notADir, "");
    await chmod(notADir, 0o600);
    const lock = await takeWatchLock(new StateStore(notADir));
    assert.equal(lock.held, false);
    assert.ok(!lock.held && !lock.otherWatch, !lock.held ? lock.reason : "");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
