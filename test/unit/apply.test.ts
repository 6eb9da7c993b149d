/**
 * The apply transaction against the stateful fake: Docker's chains are never named, jumps stay
 * first, IPv4/IPv6/sets change together or not at all, re-apply is a no-op, rollback is exact.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeNetfilter } from "./fake-netfilter.js";
import { Netfilter } from "../../src/backends/netfilter.js";
import { apply, ApplyError } from "../../src/apply/apply.js";
import { parseIpsetHeaders } from "../../src/backends/ipset.js";
import { applyAndRecord } from "../../src/apply/transaction.js";
import { MemoryLock } from "../../src/apply/lock.js";
import { rollbackTarget } from "../../src/apply/state-store.js";
import { emptyState } from "../../src/backends/rendered.js";
import { desiredFor, dockerHost, withStore } from "./apply-fixtures.js";
import { loc, policy } from "./fixtures.js";

function dockerRules(fake: FakeNetfilter): string {
  const save = fake.saveText("ipv4");
  return save
    .split("\n")
    .filter((l) => /^(-A|:)DOCKER/.test(l) || /^-A FORWARD/.test(l) || /^-A (PREROUTING|OUTPUT|POSTROUTING)/.test(l))
    .filter((l) => !/DOCKWALL/.test(l))
    .join("\n");
}

test("apply adds dockwall's chains and jumps, and never touches Docker's chains", async () => {
  const fake = dockerHost();
  const before = dockerRules(fake);
  const result = await apply(new Netfilter(fake, "nft"), desiredFor(policy()));
  assert.equal(result.changed, true);
  assert.equal(dockerRules(fake), before);
  assert.equal(fake.rules("ipv4", "filter", "INPUT")[0], "-m comment --comment dockwall -j DOCKWALL-INPUT");
  assert.equal(fake.rules("ipv4", "mangle", "FORWARD")[0], "-m comment --comment dockwall -j DOCKWALL-FORWARD");
  assert.equal(fake.rules("ipv6", "mangle", "FORWARD")[0], "-m comment --comment dockwall -j DOCKWALL-FORWARD");
  assert.ok(fake.set("dw4-office"));
  for (const call of fake.calls.filter((c) => c.cmd.includes("restore") && c.cmd.includes("tables"))) {
    assert.ok(call.args.includes("--noflush"), `every restore is --noflush: ${call.cmd} ${call.args.join(" ")}`);
    assert.doesNotMatch(call.input ?? "", /^:DOCKER/m, "Docker's chains are never declared (declaring flushes)");
    assert.doesNotMatch(call.input ?? "", /^-[FX] DOCKER/m);
  }
});

test("a re-apply of the same policy runs no writing command", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft");
  await apply(nf, desiredFor(policy()));
  const callsBefore = fake.calls.length;
  const result = await apply(nf, desiredFor(policy()));
  assert.equal(result.changed, false);
  const writes = fake.calls.slice(callsBefore).filter((c) => c.cmd.endsWith("restore") || c.args[0] === "restore" || c.args.includes("restore"));
  assert.deepEqual(writes, []);
});

test("a jump pushed down by Docker is moved back to the top, and only once", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft");
  await apply(nf, desiredFor(policy()));
  // What Docker 20.10 does to ip6tables FORWARD on restart: insert its rules above ours.
  await fake.run("iptables-nft-restore", ["--noflush"], { input: "*mangle\n-I FORWARD 1 -i docker0 -j ACCEPT\nCOMMIT\n" });
  assert.notEqual(fake.rules("ipv4", "mangle", "FORWARD")[0], "-m comment --comment dockwall -j DOCKWALL-FORWARD");
  const result = await apply(nf, desiredFor(policy()));
  assert.equal(result.changed, true);
  const forward = fake.rules("ipv4", "mangle", "FORWARD");
  assert.equal(forward[0], "-m comment --comment dockwall -j DOCKWALL-FORWARD");
  assert.equal(forward.filter((r) => r.includes("DOCKWALL")).length, 1);
  assert.ok(forward.includes("-i docker0 -j ACCEPT"), "the other tool's rule stays");
});

test("if IPv6 fails, IPv4 and the sets are put back: nothing half-applied", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft");
  await apply(nf, desiredFor(policy()));
  const before = fake.snapshot();
  const changed = policy({
    groups: [{ name: "office", ipv4: ["203.0.113.0/24"], ipv6: ["2001:db8:1::/48"] }],
    host: [{ ports: [{ from: 2222, to: 2222 }], protos: ["tcp"], from: [{ kind: "any" }], loc }],
  });
  fake.failNext((cmd, args) => cmd.startsWith("ip6tables") && cmd.endsWith("restore") && !args.includes("--test"), {
    code: 1,
    stderr: "ip6tables-restore: injected failure",
  });
  await assert.rejects(apply(nf, desiredFor(changed)), (e: unknown) => e instanceof ApplyError && e.rolledBack && /injected failure/.test(e.message));
  assert.deepEqual(fake.snapshot(), before);
});

test("a payload the kernel refuses at --test changes nothing, not even sets", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft");
  const before = fake.snapshot();
  fake.failNext((cmd, args) => cmd.startsWith("iptables") && args.includes("--test"), { code: 2, stderr: "bad rule" });
  await assert.rejects(apply(nf, desiredFor(policy())), ApplyError);
  assert.deepEqual(fake.snapshot(), before);
});

test("a failed ipset step changes nothing", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft");
  const before = fake.snapshot();
  fake.failNext((cmd, args) => cmd === "ipset" && args.includes("restore"), { code: 1, stderr: "ipset v7.17: Kernel error" });
  await assert.rejects(apply(nf, desiredFor(policy())), ApplyError);
  assert.deepEqual(fake.snapshot(), before);
});

test("small member changes go in as a delta, large ones as a swapped set; no rule changes", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft");
  await apply(nf, desiredFor(policy()));
  const rulesBefore = fake.saveText("ipv4").replace(/^#.*$/gm, "");
  const many = Array.from({ length: 3000 }, (_, i) => `198.18.${i >> 8}.${i & 255}`);
  await apply(nf, desiredFor(policy({ groups: [{ name: "office", ipv4: ["203.0.113.0/24", "198.18.0.5", "198.19.0.1"], ipv6: ["2001:db8:1::/48"] }] })));
  assert.ok(fake.set("dw4-office")!.members.has("198.19.0.1"));
  await apply(nf, desiredFor(policy({ groups: [{ name: "office", ipv4: many, ipv6: [] }] })));
  assert.equal(fake.set("dw4-office")!.members.size, 3000);
  assert.equal(fake.set("dw6-office")!.members.size, 0);
  assert.equal(fake.set("dw4-office.n"), undefined, "the scratch set is gone");
  assert.equal(fake.saveText("ipv4").replace(/^#.*$/gm, ""), rulesBefore);
});

test("a group nobody references any more loses its set, after the rules stop using it", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft");
  await apply(nf, desiredFor(policy()));
  await apply(nf, desiredFor(policy({ trusted: [] })));
  assert.equal(fake.set("dw4-office"), undefined);
  assert.equal(fake.set("dw6-office"), undefined);
});

test("remove takes everything of dockwall's out, and rollback brings back the exact state", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft");
  await withStore(async (store, lock) => {
    const pristine = fake.snapshot();
    await applyAndRecord(nf, desiredFor(policy()), store, lock, "p.yaml");
    const applied = fake.snapshot();
    await applyAndRecord(nf, emptyState(), store, lock, "remove");
    assert.deepEqual(fake.snapshot(), pristine);
    const stored = await store.read();
    await applyAndRecord(nf, stored.previous!.state, store, lock, "rollback");
    assert.deepEqual(fake.snapshot(), applied);
  });
});

test("two applies at once are serialised by the lock", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft");
  await withStore(async (store, lock) => {
    const a = desiredFor(policy());
    const b = desiredFor(policy({ host: [{ ports: [{ from: 2222, to: 2222 }], protos: ["tcp"], from: [{ kind: "any" }], loc }] }));
    await Promise.all([applyAndRecord(nf, a, store, lock, "a"), applyAndRecord(nf, b, store, lock, "b")]);
    const stored = await store.read();
    assert.equal(stored.current!.source, "b");
    assert.ok(fake.rules("ipv4", "filter", "DOCKWALL-INPUT-OUTSIDE").some((r) => r.includes("--dport 2222")));
  });
});

test("an apply killed between IPv4 and IPv6 is found by the next run: finished in full, and rollback goes to the state before it", async () => {
  await withStore(async (store, lock) => {
    const fake = dockerHost();
    const nf = new Netfilter(fake, "nft");
    const a = desiredFor(policy());
    await applyAndRecord(nf, a, store, lock, "a.yaml");
    const stateA = fake.snapshot();
    // B changes a rule and a set's members: sets, IPv4 and IPv6 are three kernel transactions.
    const b = desiredFor(
      policy({
        groups: [{ name: "office", ipv4: ["203.0.113.0/24"], ipv6: ["2001:db8:1::/48"] }],
        host: [{ ports: [{ from: 2222, to: 2222 }], protos: ["tcp"], from: [{ kind: "any" }], loc }],
      }),
    );
    const killed = fake.hangNext((cmd, args) => cmd.startsWith("ip6tables") && cmd.endsWith("restore") && !args.includes("--test"));
    void applyAndRecord(nf, b, store, lock, "b.yaml");
    await killed;
    await new Promise((r) => setImmediate(r));
    // What the kernel holds now is a mix: B's IPv4 rules, A's IPv6 rules. The journal says so.
    assert.ok(fake.rules("ipv4", "filter", "DOCKWALL-INPUT-OUTSIDE").some((r) => r.includes("--dport 2222")));
    assert.ok(!fake.rules("ipv6", "filter", "DOCKWALL-INPUT-OUTSIDE").some((r) => r.includes("--dport 2222")));
    const pending = await store.pending();
    assert.equal(pending?.source, "b.yaml");
    assert.equal((await store.current())?.source, "a.yaml");

    // The next run (a new process: the lock died with the old one) finishes B and records A as previous.
    const nextProcess = new MemoryLock();
    const next = await applyAndRecord(nf, b, store, nextProcess, "b.yaml");
    assert.equal(next.interrupted?.source, "b.yaml");
    assert.equal(await store.pending(), undefined);
    const clean = dockerHost();
    await apply(new Netfilter(clean, "nft"), b);
    assert.deepEqual(fake.snapshot(), clean.snapshot());
    const stored = await store.read();
    assert.equal(stored.previous?.source, "a.yaml");
    await applyAndRecord(nf, stored.previous!.state, store, nextProcess, "rollback");
    assert.deepEqual(fake.snapshot(), stateA);
  });
});

test("rollback after an apply killed part-way goes back to the state before that apply", async () => {
  await withStore(async (store, lock) => {
    const fake = dockerHost();
    const nf = new Netfilter(fake, "nft");
    await applyAndRecord(nf, desiredFor(policy()), store, lock, "a.yaml");
    const stateA = fake.snapshot();
    const b = desiredFor(policy({ host: [{ ports: [{ from: 2222, to: 2222 }], protos: ["tcp"], from: [{ kind: "any" }], loc }] }));
    const killed = fake.hangNext((cmd, args) => cmd.startsWith("ip6tables") && cmd.endsWith("restore") && !args.includes("--test"));
    void applyAndRecord(nf, b, store, lock, "b.yaml");
    await killed;
    await new Promise((r) => setImmediate(r));
    const stored = await store.read();
    assert.equal(stored.pending?.before.source, "a.yaml");
    assert.equal(rollbackTarget(stored)?.source, "a.yaml");
    await applyAndRecord(nf, rollbackTarget(stored)!.state, store, new MemoryLock(), "rollback");
    assert.deepEqual(fake.snapshot(), stateA);
    assert.equal(await store.pending(), undefined);
  });
});

const memberReads = (fake: FakeNetfilter) => fake.calls.filter((c) => c.cmd === "ipset" && c.args[0] === "save").length;

test("with an applied record, a no-op apply and a one-member change read no set members back", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft");
  await withStore(async (store, lock) => {
    await applyAndRecord(nf, desiredFor(policy()), store, lock, "p.yaml");
    fake.calls.length = 0;
    assert.equal((await applyAndRecord(nf, desiredFor(policy()), store, lock, "p.yaml")).changed, false);
    const grown = policy({ groups: [{ name: "office", ipv4: ["203.0.113.0/24", "198.18.0.5", "198.18.0.6"], ipv6: ["2001:db8:1::/48"] }] });
    const r = await applyAndRecord(nf, desiredFor(grown), store, lock, "p.yaml");
    assert.deepEqual(r.summary, ["~ set dw4-office: 1 members added, 0 removed"]);
    assert.equal(memberReads(fake), 0);
    assert.deepEqual([...fake.set("dw4-office")!.members].sort(), ["198.18.0.5", "198.18.0.6", "203.0.113.0/24"]);
  });
});

test("a set whose entry count changed behind dockwall's back is read in full and repaired", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft");
  await withStore(async (store, lock) => {
    await applyAndRecord(nf, desiredFor(policy()), store, lock, "p.yaml");
    fake.set("dw4-office")!.members.delete("198.18.0.5");
    fake.calls.length = 0;
    const r = await applyAndRecord(nf, desiredFor(policy()), store, lock, "p.yaml");
    assert.deepEqual(r.summary, ["~ set dw4-office: 1 members added, 0 removed"]);
    assert.equal(memberReads(fake), 1);
    assert.ok(fake.set("dw4-office")!.members.has("198.18.0.5"));
  });
});

test("a member swapped behind dockwall's back (same count) is repaired by --full-read, not by a plain apply", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft");
  await withStore(async (store, lock) => {
    await applyAndRecord(nf, desiredFor(policy()), store, lock, "p.yaml");
    const members = fake.set("dw4-office")!.members;
    members.delete("198.18.0.5");
    members.add("198.18.0.66");
    assert.equal((await applyAndRecord(nf, desiredFor(policy()), store, lock, "p.yaml")).changed, false);
    const r = await applyAndRecord(nf, desiredFor(policy()), store, lock, "p.yaml", { fullRead: true });
    assert.deepEqual(r.summary, ["~ set dw4-office: 1 members added, 1 removed"]);
    assert.deepEqual([...members].sort(), ["198.18.0.5", "203.0.113.0/24"]);
  });
});

test("ipset list -t headers are read as the kernel prints them (ipset 7.17)", () => {
  const text = [
    "Name: dw4-big",
    "Type: hash:net",
    "Revision: 7",
    "Header: family inet hashsize 1024 maxelem 131072 bucketsize 12 initval 0x43e6d343",
    "Size in memory: 504",
    "References: 0",
    "Number of entries: 1",
    "",
    "Name: dw6-big",
    "Type: hash:net",
    "Revision: 7",
    "Header: family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0xac147da4",
    "Size in memory: 1240",
    "References: 2",
    "Number of entries: 0",
    "",
    "Name: someone-else",
    "Type: hash:ip",
    "Header: family inet hashsize 1024 maxelem 65536",
    "Number of entries: 9",
    "",
  ].join("\n");
  assert.deepEqual(
    [...parseIpsetHeaders(text).values()],
    [
      { name: "dw4-big", type: "hash:net", family: "ipv4", maxelem: 131072, entries: 1 },
      { name: "dw6-big", type: "hash:net", family: "ipv6", maxelem: 65536, entries: 0 },
    ],
  );
});
