/**
 * `status` against the stateful fake: the jumps and chains it reports are the kernel's whatever the
 * state directory holds (a record of `remove`, no record at all), drift says what is missing from the
 * kernel and what is extra in it, the repair hint names the policy file that was applied (absolute),
 * the confirm line is shown only for the window that is really pending, and `--json` has a format.
 */
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { FakeNetfilter } from "./fake-netfilter.js";
import { desiredFor, dockerHost, withStore } from "./apply-fixtures.js";
import { policy } from "./fixtures.js";
import { applyAndRecord } from "../../src/apply/transaction.js";
import { applyPolicy } from "../../src/apply-policy.js";
import { openWindow } from "../../src/apply/confirm.js";
import { Netfilter } from "../../src/backends/netfilter.js";
import { emptyState } from "../../src/backends/rendered.js";
import { StateStore } from "../../src/apply/state-store.js";
import { MemoryLock } from "../../src/apply/lock.js";
import type { Runner } from "../../src/exec/runner.js";
import { readStatus, statusExitCode, STATUS_FORMAT } from "../../src/status/report.js";
import { humanStatus } from "../../src/status/human.js";

const FILE = "/etc/dockwall/dockwall.yaml";
const OUTSIDE = "DOCKWALL-INPUT-OUTSIDE";

before(() => {
  // applyPolicy reads Docker's facts: not reachable here.
  process.env.DOCKER_HOST = "unix:///nonexistent/dockwall-test/docker.sock";
});

/** A host whose iptables is the legacy variant, as the fake answers `iptables --version`. */
function legacyHost(fake: FakeNetfilter): Runner {
  return {
    run: (cmd, args, opts) => (cmd === "iptables" && args[0] === "--version" ? Promise.resolve({ code: 0, stdout: "iptables v1.8.9 (legacy)\n", stderr: "" }) : fake.run(cmd, args, opts)),
  };
}

async function restore(fake: FakeNetfilter, family: "ipv4" | "ipv6", payload: string): Promise<void> {
  const r = await fake.run(family === "ipv4" ? "iptables-nft-restore" : "ip6tables-nft-restore", ["--noflush"], { input: payload });
  assert.equal(r.code, 0, r.stderr);
}

test("after remove: no jumps and no chains in the kernel, and status says so (not 'jumps in place, first')", async () => {
  await withStore(async (store, lock) => {
    const fake = dockerHost();
    const nf = new Netfilter(fake, "nft");
    await applyAndRecord(nf, desiredFor(policy()), store, lock, FILE);
    await applyAndRecord(nf, emptyState(), store, lock, "remove");
    const r = await readStatus({ nf, store });
    for (const f of ["ipv4", "ipv6"] as const) {
      assert.equal(r.families[f].jumps.state, "none");
      assert.equal(r.families[f].jumpsFirst, false);
      assert.deepEqual(r.families[f].chains, {});
    }
    const text = humanStatus(r).join("\n");
    assert.doesNotMatch(text, /in place, first/);
    assert.match(text, /^ipv4: no dockwall chains; no jumps into dockwall's chains;/m);
    assert.match(text, /^applied .* from remove: no dockwall rules or sets/m);
    // The kernel holds what `remove` recorded: in sync, exit 0 as before.
    assert.equal(r.inSync, true);
    assert.equal(statusExitCode(r), 0);
  });
});

test("a fresh state directory while dockwall's rules are in the kernel: the jumps are reported in place, and the rules as unrecorded", async () => {
  await withStore(async (store, lock) => {
    const fake = dockerHost();
    const nf = new Netfilter(fake, "nft");
    await applyAndRecord(nf, desiredFor(policy()), store, lock, FILE);
    const fresh = new StateStore(path.join(store.dir, "fresh"));
    const r = await readStatus({ nf, store: fresh });
    assert.equal(r.applied, false);
    for (const f of ["ipv4", "ipv6"] as const) {
      assert.equal(r.families[f].jumps.state, "first", f);
      assert.deepEqual(
        r.families[f].jumps.found.map((j) => `${j.table} ${j.from} #${j.position} -> ${j.to}`),
        ["filter INPUT #1 -> DOCKWALL-INPUT", "mangle FORWARD #1 -> DOCKWALL-FORWARD"],
      );
    }
    assert.equal(r.unrecorded, true);
    const text = humanStatus(r).join("\n");
    assert.match(text, /^ipv4: .*; jumps in place, first;/m);
    assert.doesNotMatch(text, /NOT in place/);
    assert.match(text, /the kernel holds dockwall chains, jumps or sets that no record in \/.*\/fresh accounts for/);
    assert.equal(statusExitCode(r), 3, "nothing applied (by this state directory): exit 3 as before");
  });
});

test("a jump Docker pushed down, a duplicate and a stray jump: each named from the kernel, and the pushed-down jump is drift (missing at the top)", async () => {
  await withStore(async (store, lock) => {
    const fake = dockerHost();
    const nf = new Netfilter(fake, "nft");
    await applyAndRecord(nf, desiredFor(policy()), store, lock, FILE);
    await restore(fake, "ipv4", "*mangle\n-I FORWARD 1 -i docker0 -j ACCEPT\nCOMMIT\n*filter\n-A INPUT -m comment --comment dockwall -j DOCKWALL-INPUT\n-A FORWARD -j DOCKWALL-INPUT\nCOMMIT\n");
    const r = await readStatus({ nf, store });
    assert.equal(r.families.ipv4.jumps.state, "broken");
    assert.equal(r.families.ipv6.jumps.state, "first");
    const problems = r.families.ipv4.jumps.problems;
    assert.ok(problems.some((p) => /^filter INPUT -> DOCKWALL-INPUT duplicated \(#1, #\d+\)$/.test(p)), problems.join("\n"));
    assert.ok(problems.includes("mangle FORWARD -> DOCKWALL-FORWARD at #2, not first"), problems.join("\n"));
    assert.ok(problems.some((p) => /^filter FORWARD -> DOCKWALL-INPUT \(#\d+\) is not a jump dockwall makes$/.test(p)), problems.join("\n"));
    assert.match(humanStatus(r).join("\n"), /^ipv4: .*; jumps NOT in place: .*mangle FORWARD -> DOCKWALL-FORWARD at #2, not first/m);
    assert.deepEqual(
      r.drift.filter((d) => d.table === "mangle").map((d) => [d.chain, d.rule, d.kind, d.detail]),
      [["FORWARD", "-m comment --comment dockwall -j DOCKWALL-FORWARD", "missing", "not first"]],
    );
    assert.equal(statusExitCode(r), 3);
  });
});

test("a rule deleted by hand is missing, a rule added by hand is extra; a set member likewise; never '+ added'", async () => {
  await withStore(async (store, lock) => {
    const fake = dockerHost();
    const nf = new Netfilter(fake, "nft");
    await applyAndRecord(nf, desiredFor(policy()), store, lock, FILE);
    const deleted = fake.rules("ipv4", "filter", OUTSIDE).find((r) => r.includes("--dport 22"))!;
    assert.ok(deleted, "the policy opens 22/tcp");
    const added = "-p tcp -m tcp --dport 9999 -j RETURN";
    await restore(fake, "ipv4", `*filter\n-D ${OUTSIDE} ${deleted}\n-A ${OUTSIDE} ${added}\nCOMMIT\n`);
    await fake.run("ipset", ["restore"], { input: "del dw4-office 198.18.0.5\nadd dw4-office 192.0.2.77\n" });
    const r = await readStatus({ nf, store });
    assert.deepEqual(r.drift, [
      { family: "ipv4", table: "filter", chain: OUTSIDE, rule: deleted, kind: "missing" },
      { family: "ipv4", table: "filter", chain: OUTSIDE, rule: added, kind: "extra" },
    ]);
    assert.deepEqual(r.setDrift, [
      { family: "ipv4", set: "dw4-office", member: "198.18.0.5", kind: "missing" },
      { family: "ipv4", set: "dw4-office", member: "192.0.2.77", kind: "extra" },
    ]);
    const text = humanStatus(r);
    assert.ok(text.includes(`  missing: ipv4 filter ${OUTSIDE}: ${deleted}`), text.join("\n"));
    assert.ok(text.includes(`  extra: ipv4 filter ${OUTSIDE}: ${added}`), text.join("\n"));
    assert.ok(text.includes("  missing: 198.18.0.5 in set dw4-office (ipv4)"), text.join("\n"));
    assert.ok(text.includes("  extra: 192.0.2.77 in set dw4-office (ipv4)"), text.join("\n"));
    assert.ok(!text.some((l) => /^\s*\+/.test(l) || /added/.test(l)), text.join("\n"));
    assert.equal(statusExitCode(r), 3);
  });
});

test("a whole chain deleted is one line with its rule count; the JSON lists the chain and each of its rules", async () => {
  await withStore(async (store, lock) => {
    const fake = dockerHost();
    const nf = new Netfilter(fake, "nft");
    await applyAndRecord(nf, desiredFor(policy()), store, lock, FILE);
    const n = fake.rules("ipv6", "filter", OUTSIDE).length;
    // Emptied and removed: the jump from DOCKWALL-INPUT goes with the chain's entry point.
    await restore(fake, "ipv6", `*filter\n:${OUTSIDE} - [0:0]\n:DOCKWALL-INPUT - [0:0]\n-X ${OUTSIDE}\nCOMMIT\n`);
    const r = await readStatus({ nf, store });
    const whole = r.drift.filter((d) => d.chain === OUTSIDE);
    assert.deepEqual(whole[0], { family: "ipv6", table: "filter", chain: OUTSIDE, rule: null, kind: "missing" });
    assert.equal(whole.filter((d) => d.rule !== null && d.kind === "missing").length, n);
    const text = humanStatus(r);
    assert.ok(text.includes(`  missing: ipv6 filter chain ${OUTSIDE} (${n} rules)`), text.join("\n"));
    assert.equal(text.filter((l) => l.startsWith(`  missing: ipv6 filter ${OUTSIDE}:`)).length, 0, "its rules are not listed one by one");
  });
});

test("the repair hint and the record name the policy file that was applied, as an absolute path, though apply was given a relative one", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-status-"));
  const cwd = process.cwd();
  try {
    await writeFile(path.join(dir, "site.yaml"), "host:\n  - port: 22\n");
    const fake = new FakeNetfilter();
    const store = new StateStore(path.join(dir, "state"));
    process.chdir(dir);
    await applyPolicy("site.yaml", { runner: legacyHost(fake), store, lock: new MemoryLock() });
    process.chdir(cwd);
    assert.equal((await store.current())?.source, path.join(dir, "site.yaml"));
    const rule = fake.rules("ipv4", "filter", OUTSIDE).find((r) => r.includes("--dport 22"))!;
    await fake.run("iptables-legacy-restore", ["--noflush"], { input: `*filter\n-D ${OUTSIDE} ${rule}\nCOMMIT\n` });
    const r = await readStatus({ nf: new Netfilter(legacyHost(fake), "legacy"), store });
    assert.equal(r.policyFile, path.join(dir, "site.yaml"));
    assert.equal(r.repair, `dockwall apply --full-read -c ${path.join(dir, "site.yaml")}`);
    assert.equal(humanStatus(r).at(-1), `repair with: dockwall apply --full-read -c ${path.join(dir, "site.yaml")}`);
    assert.ok(path.isAbsolute(r.stateDir));
  } finally {
    process.chdir(cwd);
    await rm(dir, { recursive: true, force: true });
  }
});

test("status --json: a format version, drift as {family, table, chain, rule, kind}, absolute paths", async () => {
  await withStore(async (store, lock) => {
    const fake = dockerHost();
    const nf = new Netfilter(fake, "nft");
    await applyAndRecord(nf, desiredFor(policy()), store, lock, FILE);
    const r = JSON.parse(JSON.stringify(await readStatus({ nf, store }))) as Record<string, unknown>;
    assert.equal(r.format, STATUS_FORMAT);
    assert.equal(typeof r.format, "number");
    assert.equal(r.stateDir, store.dir);
    assert.deepEqual(r.drift, []);
    assert.deepEqual(r.setDrift, []);
    assert.equal(r.inSync, true);
    assert.equal(r.repair, undefined);
  });
});

test("AWAITING CONFIRMATION only for the window of the apply in place, with what it rolls back to; overdue when the deadline has passed", async () => {
  await withStore(async (store, lock) => {
    const fake = dockerHost();
    const nf = new Netfilter(fake, "nft");
    await applyAndRecord(nf, desiredFor(policy()), store, lock, "/etc/dockwall/a.yaml");
    await applyAndRecord(nf, desiredFor(policy({ host: [] })), store, lock, "/etc/dockwall/b.yaml");
    const b = (await store.current())!;
    const previous = (await store.previous())!;
    const w = await openWindow(store, b.at, "b.yaml", 120);
    const open = await readStatus({ nf, store, now: w.deadline - 60_000 });
    assert.deepEqual(open.awaitingConfirm, {
      until: new Date(w.deadline).toISOString(),
      appliedAt: b.at,
      source: "/etc/dockwall/b.yaml",
      overdue: false,
      rollsBackTo: { at: previous.at, source: "/etc/dockwall/a.yaml" },
    });
    assert.ok(
      humanStatus(open).includes(`AWAITING CONFIRMATION: the apply of /etc/dockwall/b.yaml at ${b.at} is rolled back to the state of ${previous.at} (/etc/dockwall/a.yaml) at ${new Date(w.deadline).toISOString()} unless \`dockwall confirm\` runs`),
      humanStatus(open).join("\n"),
    );
    const late = await readStatus({ nf, store, now: w.deadline + 1000 });
    assert.equal(late.awaitingConfirm?.overdue, true);
    assert.match(humanStatus(late).join("\n"), /^CONFIRMATION OVERDUE: .*\n  keep the rules with: dockwall confirm   or go back with: dockwall rollback$/m);
    // Another apply (without --confirm) supersedes the window: the keeper will not roll it back, so nothing is pending.
    await applyAndRecord(nf, desiredFor(policy()), store, lock, "/etc/dockwall/c.yaml");
    const superseded = await readStatus({ nf, store, now: w.deadline - 60_000 });
    assert.equal(superseded.awaitingConfirm, undefined);
    assert.doesNotMatch(humanStatus(superseded).join("\n"), /CONFIRMATION/);
  });
});
