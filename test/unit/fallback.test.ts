/**
 * A policy that cannot be applied never leaves the host open: `watch` holds the last applied rules
 * (put back after a reboot emptied the kernel) or, with none, the lock-down (SSH only); says so in
 * its log, in degraded.json and in the metrics; keeps watching, and the first policy that applies
 * replaces the fallback. Only when even the fallback cannot be applied does it not start.
 */
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { chmod, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { FakeNetfilter } from "./fake-netfilter.js";
import { desiredFor, legacyHost, withStore } from "./apply-fixtures.js";
import { policy } from "./fixtures.js";
import { applyAndRecord } from "../../src/apply/transaction.js";
import { Netfilter } from "../../src/backends/netfilter.js";
import { emptyState } from "../../src/backends/rendered.js";
import { CommandNotFoundError, type Runner } from "../../src/exec/runner.js";
import { StateStore } from "../../src/apply/state-store.js";
import type { Lock } from "../../src/apply/lock.js";
import { fallbackFor, holdFallback, LOCK_DOWN_SOURCE } from "../../src/daemon/fallback.js";
import { degradedFile, parseDegraded, readDegraded } from "../../src/daemon/degraded.js";
import { Daemon, type DaemonOptions, type Log } from "../../src/daemon/daemon.js";
import { Metrics } from "../../src/daemon/metrics.js";
import { PolicyInvalid } from "../../src/pipeline.js";
import { dockerEndpoint } from "../../src/facts/index.js";
import { DockerHostInvalid } from "../../src/facts/engine-api.js";

const NO_DOCKER = "unix:///nonexistent/dockwall-test/docker.sock";

before(() => {
  // The facts read asks Docker: here it is not reachable, as at boot before dockerd.
  process.env.DOCKER_HOST = NO_DOCKER;
});

const OUTSIDE = "DOCKWALL-INPUT-OUTSIDE";

/** The host chain's openings: what a stranger may reach (rules that RETURN for new connections). */
function hostOpenings(fake: FakeNetfilter, family: "ipv4" | "ipv6"): string[] {
  return fake.rules(family, "filter", OUTSIDE).filter((r) => r.includes("--dport") && r.includes("-j RETURN"));
}

async function recordPolicy(fake: FakeNetfilter, store: StateStore, lock: Lock, source: string): Promise<void> {
  await applyAndRecord(new Netfilter(legacyHost(fake), "legacy"), desiredFor(policy()), store, lock, source);
}

test("no applied state: the lock-down holds, SSH 22/tcp open to anyone and nothing else, compiled like any policy", async () => {
  await withStore(async (store, lock) => {
    const fake = new FakeNetfilter();
    const held = await holdFallback({ runner: legacyHost(fake), store, lock });
    assert.equal(held.holding, "lock-down");
    assert.equal(held.result.changed, true);
    for (const family of ["ipv4", "ipv6"] as const) {
      assert.deepEqual(hostOpenings(fake, family), ["-p tcp -m tcp --dport 22 -m comment --comment \"[host-c7a38d82] host 22/tcp\" -j RETURN"]);
      assert.match(fake.rules(family, "filter", OUTSIDE).at(-1)!, /-j DROP/);
      // Published ports: nothing is let through the forward chain but replies.
      assert.deepEqual(fake.rules(family, "mangle", "DOCKWALL-FORWARD-OUTSIDE").filter((r) => r.includes("-j RETURN")), ["-m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"[replies]\" -j RETURN"]);
      assert.deepEqual(fake.rules(family, "filter", "INPUT").slice(0, 1), ["-m comment --comment dockwall -j DOCKWALL-INPUT"]);
    }
    assert.equal((await store.current())?.source, LOCK_DOWN_SOURCE);
  });
});

test("an applied state: after a reboot emptied the kernel it is put back exactly, and recorded as it was", async () => {
  await withStore(async (store, lock) => {
    const before = new FakeNetfilter();
    await recordPolicy(before, store, lock, "/etc/dockwall/dockwall.yaml");
    const rebooted = new FakeNetfilter();
    const held = await holdFallback({ runner: legacyHost(rebooted), store, lock });
    assert.equal(held.holding, "last-applied");
    assert.equal(held.record.source, "/etc/dockwall/dockwall.yaml");
    assert.deepEqual(rebooted.snapshot(), before.snapshot());
    // A kernel that still holds it: nothing written.
    const again = await holdFallback({ runner: legacyHost(rebooted), store, lock });
    assert.equal(again.result.changed, false);
  });
});

test("a state that holds no rules (dockwall remove) or the lock-down itself is no last state: the lock-down is compiled again", async () => {
  await withStore(async (store, lock) => {
    const fake = new FakeNetfilter();
    await applyAndRecord(new Netfilter(legacyHost(fake), "legacy"), emptyState(), store, lock, "remove");
    assert.equal(fallbackFor(await store.current()), "lock-down");
    assert.equal((await holdFallback({ runner: legacyHost(fake), store, lock })).holding, "lock-down");
    assert.equal(fallbackFor(await store.current()), "lock-down");
    assert.deepEqual(hostOpenings(fake, "ipv4").length, 1);
  });
});

test("a current.json that is not valid (truncated, crafted) is never put back, and never leaves nothing: the lock-down holds", async () => {
  await withStore(async (store, lock) => {
    const before = new FakeNetfilter();
    await recordPolicy(before, store, lock, "/etc/dockwall/dockwall.yaml");
    const text = await readFile(path.join(store.dir, "current.json"), "utf8");
    await writeFile(path.join(store.dir, "current.json"), text.slice(0, text.length / 2));
    const rebooted = new FakeNetfilter();
    const held = await holdFallback({ runner: legacyHost(rebooted), store, lock });
    assert.equal(held.holding, "lock-down");
    assert.deepEqual(hostOpenings(rebooted, "ipv4").map((r) => /--dport (\d+)/.exec(r)?.[1]), ["22"]);
  });
});

/** daemonWith for the length of `body`: the daemon is stopped and its policy file removed however it ends. */
async function withDaemon(
  store: StateStore,
  lock: Lock,
  runner: Runner,
  policyText: string,
  body: (d: Awaited<ReturnType<typeof daemonWith>>) => Promise<void>,
  docker?: DaemonOptions["docker"],
): Promise<void> {
  const d = await daemonWith(store, lock, runner, policyText, docker);
  try {
    await body(d);
  } finally {
    await d.daemon.stop();
    await d.done();
  }
}

/** A daemon on the fake host with a policy file in the state dir's parent, logging into an array. */
async function daemonWith(store: StateStore, lock: Lock, runner: Runner, policyText: string, docker: DaemonOptions["docker"] = { socketPath: "/nonexistent/dockwall-test/docker.sock" }) {
  const file = path.join(path.dirname(store.dir), `${path.basename(store.dir)}-policy.yaml`);
  await writeFile(file, policyText);
  const logs: { level: string; event: string; fields?: Record<string, unknown> }[] = [];
  const log: Log = (level, event, fields) => logs.push({ level, event, ...(fields ? { fields } : {}) });
  const metrics = new Metrics();
  const daemon = new Daemon({ runner, store, lock }, { policy: file, docker, checkEveryMs: 3_600_000, debounceMs: 5, metrics }, log);
  return { daemon, file, logs, metrics, done: () => rm(file, { force: true }) };
}

const VALID = "host:\n  - port: 22\n  - port: 443\n";
const INVALID = "trusted: [ofice]\nhost:\n  - port: 22\n";

test("watch started with a policy that does not validate and nothing applied: ready with the lock-down, says why, then applies the first valid policy", async () => {
  await withStore(async (store, lock) => {
    const fake = new FakeNetfilter();
    await withDaemon(store, lock, legacyHost(fake), INVALID, async (d) => {
      await d.daemon.start();
      assert.deepEqual(hostOpenings(fake, "ipv4").map((r) => /--dport (\d+)/.exec(r)?.[1]), ["22"]);
      const loud = d.logs.find((l) => l.level === "error")!;
      assert.match(loud.event, /holding the lock-down/);
      assert.match(JSON.stringify(loud.fields?.errors), /ofice/);
      assert.deepEqual(d.logs.at(-1)?.event, "ready");
      const note = await readDegraded(store.dir);
      assert.equal(note?.holding, "lock-down");
      assert.match(note!.errors.join("\n"), /unknown group "ofice"/);
      const metrics = await d.metrics.registry.metrics();
      assert.match(metrics, /^dockwall_policy_valid 0$/m);
      assert.match(metrics, /^dockwall_degraded\{holding="lock-down",reason="policy-invalid"\} 1$/m);

      await writeFile(d.file, VALID);
      d.daemon.trigger("SIGHUP");
      await d.daemon.idle();
      assert.deepEqual(hostOpenings(fake, "ipv4").map((r) => /--dport (\d+)/.exec(r)?.[1]), ["22", "443"]);
      assert.equal(existsSync(degradedFile(store.dir)), false, "the note goes once the policy applies");
      const after = await d.metrics.registry.metrics();
      assert.match(after, /^dockwall_policy_valid 1$/m);
      assert.doesNotMatch(after, /^dockwall_degraded\{/m);
      assert.ok(d.logs.some((l) => l.event === "the policy applies again; the fallback is replaced"));
    });
  });
});

test("watch started with an unreadable policy after a reboot: the last applied rules are put back; a later flush is repaired while degraded", async () => {
  await withStore(async (store, lock) => {
    const before = new FakeNetfilter();
    await recordPolicy(before, store, lock, "/etc/dockwall/dockwall.yaml");
    const fake = new FakeNetfilter();
    await withDaemon(store, lock, legacyHost(fake), VALID, async (d) => {
      await rm(d.file);
      await d.daemon.start();
      assert.deepEqual(fake.snapshot(), before.snapshot());
      const note = await readDegraded(store.dir);
      assert.equal(note?.holding, "last-applied");
      assert.match(note!.reason, /cannot read the policy file/);
      assert.match(await d.metrics.registry.metrics(), /^dockwall_degraded\{holding="last-applied",reason="policy-invalid"\} 1$/m);
      // Another tool flushes dockwall's host chain: the next look puts the held rules back.
      await fake.run("iptables-legacy-restore", ["--noflush"], { input: `*filter\n:${OUTSIDE} - [0:0]\nCOMMIT\n` });
      assert.deepEqual(fake.rules("ipv4", "filter", OUTSIDE), []);
      d.daemon.trigger("ruleset changed");
      await d.daemon.idle();
      assert.deepEqual(fake.snapshot(), before.snapshot());
      assert.equal(d.logs.filter((l) => l.level === "error" && /holding/.test(l.event)).length, 2, "said again when it put the rules back");
    });
  });
});

test("a policy that stops validating later: refused and logged, the rules in place stay, and status can see it", async () => {
  await withStore(async (store, lock) => {
    const fake = new FakeNetfilter();
    await withDaemon(store, lock, legacyHost(fake), VALID, async (d) => {
      await d.daemon.start();
      const applied = fake.snapshot();
      await writeFile(d.file, INVALID);
      d.daemon.trigger("SIGHUP");
      await d.daemon.idle();
      assert.deepEqual(fake.snapshot(), applied);
      assert.ok(d.logs.some((l) => l.event === "apply failed, the rules in place stay"));
      assert.equal((await readDegraded(store.dir))?.holding, "last-applied");
    });
  });
});

test("when even the fallback cannot be applied (no iptables), watch does not start: the policy's error, as before", async () => {
  await withStore(async (store, lock) => {
    const fake = new FakeNetfilter();
    await withDaemon(store, lock, legacyHost(fake, /^ip6?tables/), INVALID, async (d) => {
      await assert.rejects(d.daemon.start(), PolicyInvalid);
      assert.ok(d.logs.some((l) => l.level === "error" && /nor can a fallback/.test(l.event) && /command not found/.test(String(l.fields?.fallbackError))));
      assert.equal(d.logs.some((l) => l.event === "ready"), false);
    });
  });
});

test("degraded.json is read as hostile: a wrong shape is refused, control characters do not reach the terminal", () => {
  const good = { since: "2026-12-01T08:00:00.000Z", pid: 1, reason: "bad\u001b[2Jpolicy", errors: ["p.yaml:1:1: x\ny"], holding: "lock-down", heldAt: "t", heldSource: "s" };
  assert.equal(parseDegraded(JSON.stringify(good))?.reason, "bad [2Jpolicy");
  assert.deepEqual(parseDegraded(JSON.stringify(good))?.errors, ["p.yaml:1:1: x y"]);
  assert.equal(parseDegraded(JSON.stringify({ ...good, holding: "everything" })), undefined);
  assert.equal(parseDegraded(JSON.stringify({ ...good, pid: "1" })), undefined);
  assert.equal(parseDegraded("{"), undefined);
});

test("watch with a DOCKER_HOST it cannot use (ssh://) still holds rules: the lock-down, ready, saying why", async () => {
  await withStore(async (store, lock) => {
    const fake = new FakeNetfilter();
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = "ssh://admin@docker-host";
    const docker = dockerEndpoint();
    assert.ok(docker instanceof DockerHostInvalid);
    try {
      await withDaemon(store, lock, legacyHost(fake), VALID, async (d) => {
        await d.daemon.start();
        assert.deepEqual(hostOpenings(fake, "ipv4").map((r) => /--dport (\d+)/.exec(r)?.[1]), ["22"]);
        assert.equal((await readDegraded(store.dir))?.holding, "lock-down");
        assert.match(JSON.stringify(d.logs.filter((l) => l.level === "error")), /ssh:\/\/ is not supported/);
        assert.equal(d.logs.at(-1)?.event, "ready");
      }, docker);
    } finally {
      process.env.DOCKER_HOST = saved;
    }
  });
});

test("a policy the kernel refuses is tried once: the ruleset changes its own undo makes do not send watch round again", async () => {
  await withStore(async (store, lock) => {
    const fake = new FakeNetfilter();
    await withDaemon(store, lock, legacyHost(fake), VALID, async (d) => {
      await d.daemon.start();
      const applied = fake.snapshot();
      await writeFile(d.file, "host:\n  - port: 22\n  - port: 8443\n");
      const loadsRules = (cmd: string, args: string[]) => cmd === "iptables-legacy-restore" && !args.includes("--test");
      fake.failNext(loadsRules, { code: 1, stderr: "iptables-restore: line 7 failed" });
      d.daemon.trigger("SIGHUP");
      await d.daemon.idle();
      assert.deepEqual(fake.snapshot(), applied, "undone");
      // The undo is a ruleset change the monitor reports like any other: the kernel holds what was applied.
      const before = fake.calls.length;
      d.daemon.trigger("ruleset changed");
      await d.daemon.idle();
      assert.deepEqual(fake.calls.slice(before).filter((c) => /restore/.test(c.cmd)), [], "no apply was tried again");
      // Another tool's flush still is repaired: the policy is tried again, and the kernel takes it now.
      await fake.run("iptables-legacy-restore", ["--noflush"], { input: `*filter\n:${OUTSIDE} - [0:0]\nCOMMIT\n` });
      d.daemon.trigger("ruleset changed");
      await d.daemon.idle();
      assert.deepEqual(hostOpenings(fake, "ipv4").map((r) => /--dport (\d+)/.exec(r)?.[1]), ["22", "8443"]);
    });
  });
});

/** A host whose iptables is nf_tables, with the legacy commands gone (the variant a record may name). */
function nftHostWithoutLegacy(fake: FakeNetfilter): Runner {
  return {
    run: (cmd, args, opts) => {
      if (/legacy/.test(cmd)) return Promise.reject(new CommandNotFoundError(cmd));
      if (cmd === "iptables" && args[0] === "--version") return Promise.resolve({ code: 0, stdout: "iptables v1.8.9 (nf_tables)\n", stderr: "" });
      return fake.run(cmd, args, opts);
    },
  };
}

test("a last applied record that cannot be put back (its iptables variant gone) gives way to the lock-down, never to nothing", async () => {
  await withStore(async (store, lock) => {
    await recordPolicy(new FakeNetfilter(), store, lock, "/etc/dockwall/dockwall.yaml");
    const fake = new FakeNetfilter();
    const held = await holdFallback({ runner: nftHostWithoutLegacy(fake), store, lock });
    assert.equal(held.holding, "lock-down");
    assert.equal(held.netfilter.variant, "nft");
    assert.deepEqual(hostOpenings(fake, "ipv4").map((r) => /--dport (\d+)/.exec(r)?.[1]), ["22"]);
    assert.match(held.warnings.join("\n"), /the last applied rules cannot be put back: .*legacy/);
  });
});

test("a state directory that cannot be used (group-writable) still gets the lock-down, held without a record, and says so", async () => {
  await withStore(async (store, lock) => {
    await chmod(store.dir, 0o777);
    const fake = new FakeNetfilter();
    const held = await holdFallback({ runner: legacyHost(fake), store, lock });
    assert.equal(held.holding, "lock-down");
    assert.deepEqual(hostOpenings(fake, "ipv4").map((r) => /--dport (\d+)/.exec(r)?.[1]), ["22"]);
    assert.deepEqual(hostOpenings(fake, "ipv6").map((r) => /--dport (\d+)/.exec(r)?.[1]), ["22"]);
    assert.match(held.warnings.join("\n"), /the state directory cannot be used \(.*writable.*\): the lock-down is held without a record/);
    await chmod(store.dir, 0o700);
    // A new store: this one keeps its verdict on the directory for as long as it lives.
    assert.equal(await new StateStore(store.dir).current(), undefined, "nothing recorded in a directory that is not safe");
  });
});
