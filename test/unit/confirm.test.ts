/** The confirm window: decided once, by whoever claims it first; a newer window is not taken by an older keeper. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { StateStore } from "../../src/apply/state-store.js";
import { claimWindow, openWindow, readWindow } from "../../src/apply/confirm.js";

test("a confirm window is claimed once; an old token does not take a newer window", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-unit-"));
  try {
    const store = new StateStore(dir);
    const a = await openWindow(store, "2026-11-23T00:00:00.000Z", "p.yaml", 60);
    assert.equal((await readWindow(store))?.token, a.token);
    const claims = await Promise.all([claimWindow(store, a.token), claimWindow(store, a.token), claimWindow(store)]);
    assert.equal(claims.filter((c) => c !== undefined).length, 1, "exactly one claimant wins");
    assert.equal(await readWindow(store), undefined);
    const b = await openWindow(store, "2026-11-23T00:01:00.000Z", "p.yaml", 60);
    assert.equal(await claimWindow(store, a.token), undefined);
    assert.equal((await readWindow(store))?.token, b.token, "the newer window is still open");
    assert.ok(b.deadline > Date.now() + 59_000);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
