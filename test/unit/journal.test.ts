/**
 * The journal (pending.json) says "an apply was killed part-way". An apply that fails and is fully
 * undone must not leave it behind: `status` would report an interruption that did not happen, and
 * `rollback` would go to the journal's `before` (the current state) and lose the real previous one.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Netfilter } from "../../src/backends/netfilter.js";
import { ApplyError } from "../../src/apply/apply.js";
import { applyAndRecord } from "../../src/apply/transaction.js";
import { MemoryLock } from "../../src/apply/lock.js";
import { rollbackTarget, type StateStore } from "../../src/apply/state-store.js";
import type { FakeNetfilter } from "./fake-netfilter.js";
import { desiredFor, dockerHost, withStore } from "./apply-fixtures.js";
import { loc, policy } from "./fixtures.js";

const p0 = desiredFor(policy({ host: [{ ports: [{ from: 2200, to: 2200 }], protos: ["tcp"], from: [{ kind: "any" }], loc }] }));
const a = desiredFor(policy());
/** Changes set members (a delta), IPv4 and IPv6 rules: every step after the journal has work to do. */
const b = desiredFor(
  policy({
    groups: [{ name: "office", ipv4: ["203.0.113.0/24", "198.18.0.9"], ipv6: ["2001:db8:1::/48"] }],
    host: [{ ports: [{ from: 2222, to: 2222 }], protos: ["tcp"], from: [{ kind: "any" }], loc }],
  }),
);

const restoring = (tool: string) => (cmd: string, args: string[]) => cmd === `${tool}-nft-restore` && !args.includes("--test");

/** Each step after the journal is written, as a call the fake fails. */
function steps(fake: FakeNetfilter): Record<string, (cmd: string, args: string[], input?: string) => boolean> {
  const restored = () => fake.calls.some((c) => restoring("ip6tables")(c.cmd, c.args)) && fake.calls.some((c) => restoring("iptables")(c.cmd, c.args));
  return {
    "the set commit": (cmd, args, input) => cmd === "ipset" && args.includes("restore") && /^(add|del) dw4-office /m.test(input ?? ""),
    "the IPv4 restore": restoring("iptables"),
    "the IPv6 restore": restoring("ip6tables"),
    "the read-back of IPv4": (cmd) => cmd === "iptables-nft-save" && restored(),
    "the read-back of the sets": (cmd, args) => cmd === "ipset" && args[0] === "list" && restored(),
  };
}

/** P0 then A applied and recorded: current is A, previous P0. */
async function appliedTwice(fake: FakeNetfilter, store: StateStore, lock: MemoryLock): Promise<{ stateP0: unknown; stateA: unknown }> {
  const nf = new Netfilter(fake, "nft");
  await applyAndRecord(nf, p0, store, lock, "p0.yaml");
  const stateP0 = fake.snapshot();
  await applyAndRecord(nf, a, store, lock, "a.yaml");
  return { stateP0, stateA: fake.snapshot() };
}

for (const step of Object.keys(steps(dockerHost()))) {
  test(`an apply that fails at ${step} and is undone leaves no journal, and rollback still goes to the real previous state`, async () => {
    await withStore(async (store, lock) => {
      const fake = dockerHost();
      const nf = new Netfilter(fake, "nft");
      const { stateP0, stateA } = await appliedTwice(fake, store, lock);
      fake.calls.length = 0;
      fake.failNext(steps(fake)[step]!, { code: 1, stderr: "injected failure" });
      await assert.rejects(applyAndRecord(nf, b, store, lock, "b.yaml"), (e: unknown) => e instanceof ApplyError && e.rolledBack && /injected failure/.test(e.message));
      assert.deepEqual(fake.snapshot(), stateA, "undone");
      assert.equal(await store.pending(), undefined, "no journal: nothing was interrupted");
      const stored = await store.read();
      assert.equal(stored.current?.source, "a.yaml");
      assert.equal(rollbackTarget(stored)?.source, "p0.yaml");
      await applyAndRecord(nf, rollbackTarget(stored)!.state, store, lock, "rollback");
      assert.deepEqual(fake.snapshot(), stateP0);
    });
  });
}

test("the journal of an earlier killed apply stays when the apply that would finish it fails and is undone", async () => {
  await withStore(async (store, lock) => {
    const fake = dockerHost();
    const nf = new Netfilter(fake, "nft");
    await appliedTwice(fake, store, lock);
    const killed = fake.hangNext(restoring("ip6tables"));
    void applyAndRecord(nf, b, store, lock, "b.yaml");
    await killed;
    const nextProcess = new MemoryLock();
    fake.failNext(restoring("iptables"), { code: 1, stderr: "injected failure" });
    await assert.rejects(applyAndRecord(nf, p0, store, nextProcess, "p0.yaml"), ApplyError);
    assert.equal((await store.pending())?.source, "b.yaml", "still interrupted: B is still part-way in the kernel");
    assert.equal(rollbackTarget(await store.read())?.source, "a.yaml");
  });
});

test("rollback after an apply killed part-way keeps the previous state: the killed apply never became one", async () => {
  await withStore(async (store, lock) => {
    const fake = dockerHost();
    const nf = new Netfilter(fake, "nft");
    const { stateP0, stateA } = await appliedTwice(fake, store, lock);
    const killed = fake.hangNext(restoring("ip6tables"));
    void applyAndRecord(nf, b, store, lock, "b.yaml");
    await killed;
    const nextProcess = new MemoryLock();
    const target = rollbackTarget(await store.read())!;
    assert.equal(target.source, "a.yaml");
    await applyAndRecord(nf, target.state, store, nextProcess, "rollback to a.yaml");
    assert.deepEqual(fake.snapshot(), stateA);
    const stored = await store.read();
    assert.equal(stored.pending, undefined);
    assert.equal(stored.previous?.source, "p0.yaml", "previous is not overwritten with a copy of current");
    await applyAndRecord(nf, rollbackTarget(stored)!.state, store, nextProcess, "rollback");
    assert.deepEqual(fake.snapshot(), stateP0);
  });
});

test("a reboot (an empty kernel) or a flush put right by a re-apply is no change: rollback still goes to the state before the last change", async () => {
  await withStore(async (store, lock) => {
    const fake = dockerHost();
    const { stateP0 } = await appliedTwice(fake, store, lock);
    // The reboot: the kernel holds Docker's rules again and nothing of dockwall's; the record stays.
    const rebooted = dockerHost();
    const nf = new Netfilter(rebooted, "nft");
    const putBack = await applyAndRecord(nf, a, store, lock, "a.yaml");
    assert.equal(putBack.changed, true);
    assert.equal((await store.read()).previous?.source, "p0.yaml", "previous is not the empty kernel of the boot");
    // Another tool flushes dockwall's host chain; watch puts it back.
    await rebooted.run("iptables-nft-restore", ["--noflush"], { input: "*filter\n:DOCKWALL-INPUT-OUTSIDE - [0:0]\nCOMMIT\n" });
    assert.equal((await applyAndRecord(nf, a, store, lock, "a.yaml")).changed, true);
    const stored = await store.read();
    assert.equal(stored.previous?.source, "p0.yaml", "previous is not the flushed chain");
    await applyAndRecord(nf, rollbackTarget(stored)!.state, store, lock, "rollback");
    assert.deepEqual(rebooted.snapshot(), stateP0);
  });
});

test("a new policy applied after a reboot: previous is the state dockwall last applied, not the empty kernel", async () => {
  await withStore(async (store, lock) => {
    await appliedTwice(dockerHost(), store, lock);
    const rebooted = dockerHost();
    const nf = new Netfilter(rebooted, "nft");
    await applyAndRecord(nf, a, store, lock, "a.yaml");
    const stateA = rebooted.snapshot();
    const fresh = dockerHost();
    const nfFresh = new Netfilter(fresh, "nft");
    await applyAndRecord(nfFresh, b, store, lock, "b.yaml");
    const stored = await store.read();
    assert.equal(stored.previous?.source, "a.yaml");
    await applyAndRecord(nfFresh, rollbackTarget(stored)!.state, store, lock, "rollback");
    assert.deepEqual(fresh.snapshot(), stateA);
  });
});
