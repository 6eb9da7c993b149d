/**
 * `plan` and the output of `apply`, `remove` and `rollback` against the stateful fake: the summary
 * first, then the rule diff; `--json` with its format; `--detailed-exitcode`'s codes; the summary by
 * default and the rule diff with --verbose.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { planReport } from "../../src/cli/plan.js";
import { changeLines } from "../../src/cli/summary.js";
import { compilePolicy } from "../../src/pipeline.js";
import { applyAndRecord } from "../../src/apply/transaction.js";
import { Netfilter } from "../../src/backends/netfilter.js";
import { emptyState } from "../../src/backends/rendered.js";
import { ProcessRunner } from "../../src/exec/runner.js";
import { PLAN_FORMAT, type PlanJson } from "../../src/plan/json.js";
import type { StateStore } from "../../src/apply/state-store.js";
import type { MemoryLock } from "../../src/apply/lock.js";
import type { FakeNetfilter } from "./fake-netfilter.js";
import { dockerHost, withStore } from "./apply-fixtures.js";
import { reachableNoFacts } from "./fixtures.js";

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../dockwall.cjs");

const POLICY = (port: number, office: string[]) => `groups:
  office: [${office.join(", ")}]
host:
  - port: ${port}
  - port: 9100
    from: [office]
`;

interface Host {
  fake: FakeNetfilter;
  store: StateStore;
  lock: MemoryLock;
  file: string;
  plan(json?: boolean): Promise<{ changed: boolean; lines: string[] }>;
  apply(): Promise<{ lines: string[]; verbose: string[] }>;
}

async function withHost(body: (h: Host) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-plan-"));
  try {
    await withStore(async (store, lock) => {
      const fake = dockerHost();
      const nf = new Netfilter(fake, "nft");
      const file = path.join(dir, "dockwall.yaml");
      const ctx = { runner: fake, store, lock };
      const compiled = () => compilePolicy(file, fake, undefined, Promise.resolve(reachableNoFacts));
      await body({
        fake,
        store,
        lock,
        file,
        plan: (json = false) => planReport({ config: file, json }, ctx, Promise.resolve(reachableNoFacts)),
        apply: async () => {
          const c = await compiled();
          const r = await applyAndRecord(nf, c.desired, store, lock, file, { origin: c.origin });
          return { lines: changeLines(r.before, c.desired, r.summary, false), verbose: changeLines(r.before, c.desired, r.summary, true) };
        },
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("plan opens with what the change means at policy level, then the rule diff; no colour when not on a terminal", async () => {
  await withHost(async (h) => {
    await writeFile(h.file, POLICY(22, ["198.51.100.7"]));
    const first = await h.plan();
    assert.equal(first.changed, true);
    assert.deepEqual(first.lines.slice(0, 4), [
      "puts dockwall in front of IPv4 and IPv6: from outside, everything not opened below is refused (drop)",
      "opens ping to anyone",
      "opens 22/tcp to anyone",
      "opens 9100/tcp to group office",
    ]);
    const diffAt = first.lines.indexOf("rule diff:");
    assert.ok(diffAt > 0 && first.lines[diffAt - 1] === "", first.lines.join("\n"));
    assert.ok(first.lines.includes("+ ipv4 filter DOCKWALL-INPUT-OUTSIDE: create chain (6 rules)"), first.lines.join("\n"));
    assert.ok(first.lines.every((l) => !l.includes("\x1b")), "no escape sequences into a pipe");

    await h.apply();
    assert.deepEqual(await h.plan(), { changed: false, lines: ["no changes: the kernel already holds this policy"] });

    await writeFile(h.file, POLICY(2222, ["198.51.100.7", "198.51.100.8", "2001:db8::8"]));
    const next = await h.plan();
    assert.deepEqual(next.lines.slice(0, next.lines.indexOf("")), [
      "opens 2222/tcp to anyone",
      "closes 22/tcp (was open to anyone)",
      "group office: +2 members: +198.51.100.8, +2001:db8::8",
    ]);
    assert.ok(
      next.lines.some((l) => /^ {4}\+ -p tcp -m tcp --dport 2222 -m comment --comment "\[host-[0-9a-f]{8}\] host 2222\/tcp" -j RETURN$/.test(l)),
      next.lines.join("\n"),
    );
    assert.ok(next.lines.includes("~ set dw4-office: 1 members added, 0 removed"), next.lines.join("\n"));
  });
});

test("plan --json: a format version, whether anything would change, the summary and the diff as data", async () => {
  await withHost(async (h) => {
    await writeFile(h.file, POLICY(22, ["198.51.100.7"]));
    await h.apply();
    const same = JSON.parse((await h.plan(true)).lines.join("\n")) as PlanJson;
    assert.deepEqual(same, { format: PLAN_FORMAT, changed: false, summary: [], diff: { chains: [], jumps: [], sets: [] } });

    await writeFile(h.file, POLICY(2222, ["198.51.100.8"]));
    const r = await h.plan(true);
    assert.equal(r.changed, true);
    const plan = JSON.parse(r.lines.join("\n")) as PlanJson;
    assert.equal(plan.format, 1);
    assert.deepEqual(
      plan.summary.map((c) => [c.kind, c.text]),
      [
        ["opens", "opens 2222/tcp to anyone"],
        ["closes", "closes 22/tcp (was open to anyone)"],
        ["group", "group office: +1 -1 members: +198.51.100.8, -198.51.100.7"],
      ],
    );
    assert.deepEqual(plan.summary[0], {
      kind: "opens",
      target: { kind: "host", proto: "tcp", ports: "2222", text: "2222/tcp" },
      sources: ["anyone"],
      already: [],
      text: "opens 2222/tcp to anyone",
    });
    const chain = plan.diff.chains.find((c) => c.family === "ipv4" && c.chain === "DOCKWALL-INPUT-OUTSIDE");
    assert.deepEqual(chain, {
      family: "ipv4",
      table: "filter",
      chain: "DOCKWALL-INPUT-OUTSIDE",
      change: "update",
      added: ['-p tcp -m tcp --dport 2222 -m comment --comment "[host-ee80f947] host 2222/tcp" -j RETURN'],
      removed: ['-p tcp -m tcp --dport 22 -m comment --comment "[host-c7a38d82] host 22/tcp" -j RETURN'],
    });
    assert.deepEqual(plan.diff.sets, [{ name: "dw4-office", family: "ipv4", change: "update", added: ["198.51.100.8"], removed: ["198.51.100.7"] }]);
  });
});

test("plan after drift: a rule deleted by hand is a rule change that opens or closes nothing, and a jump pushed down still gets a line", async () => {
  await withHost(async (h) => {
    await writeFile(h.file, POLICY(22, ["198.51.100.7"]));
    await h.apply();
    const nf = new Netfilter(h.fake, "nft");
    await nf.restore("ipv4", '*filter\n-D DOCKWALL-INPUT-OUTSIDE -m conntrack --ctstate INVALID -m comment --comment "[invalid]" -j DROP\nCOMMIT\n');
    const drift = await h.plan();
    assert.equal(drift.lines[0], "and 1 rule change that opens or closes nothing: the kernel differs from the policy there (see the rule diff)");
    await h.apply();
    await nf.restore("ipv4", "*filter\n-I INPUT 1 -s 192.0.2.1/32 -j ACCEPT\nCOMMIT\n");
    const moved = await h.plan();
    assert.equal(moved.changed, true);
    assert.equal(moved.lines[0], "opens and closes nothing: the rules are brought back to what the policy says (see the rule diff)");
    assert.ok(moved.lines.includes("~ ipv4 filter INPUT -> DOCKWALL-INPUT: jump not first"), moved.lines.join("\n"));
  });
});

test("apply, remove and rollback print the policy-level summary, and the rule diff after it with --verbose", async () => {
  await withHost(async (h) => {
    await writeFile(h.file, POLICY(22, ["198.51.100.7"]));
    await h.apply();
    await writeFile(h.file, POLICY(2222, ["198.51.100.7"]));
    const applied = await h.apply();
    assert.deepEqual(applied.lines, ["opens 2222/tcp to anyone", "closes 22/tcp (was open to anyone)"]);
    assert.deepEqual(applied.verbose.slice(0, 4), ["opens 2222/tcp to anyone", "closes 22/tcp (was open to anyone)", "", "rule diff:"]);
    assert.ok(applied.verbose.includes("~ ipv4 filter DOCKWALL-INPUT-OUTSIDE: 1 rules added, 1 removed"), applied.verbose.join("\n"));

    const nf = new Netfilter(h.fake, "nft");
    const target = (await h.store.rollbackTarget())!;
    const back = await applyAndRecord(nf, target.state, h.store, h.lock, "rollback");
    assert.deepEqual(changeLines(back.before, target.state, back.summary, false), ["opens 22/tcp to anyone", "closes 2222/tcp (was open to anyone)"]);

    const removed = await applyAndRecord(nf, emptyState(), h.store, h.lock, "remove");
    assert.deepEqual(changeLines(removed.before, emptyState(), removed.summary, false), [
      "takes dockwall out of IPv4 and IPv6: it refuses nothing there any more, the host's own rules and Docker's decide alone",
      "group office: -1 member (none left): -198.51.100.7",
    ]);
  });
});

test("plan --detailed-exitcode: every error is exit 1 (2 means changes); without it errors keep their codes", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-plan-"));
  try {
    const file = path.join(dir, "dockwall.yaml");
    await writeFile(file, POLICY(22, ["198.51.100.7"]));
    // No iptables on PATH and no Docker: the plan fails reading the kernel, which is exit 2 ("failed") by default.
    const env = { PATH: "/nonexistent", DOCKER_HOST: `unix://${dir}/docker.sock` };
    const run = (...args: string[]) => new ProcessRunner().run(process.execPath, [CLI, "--state-dir", path.join(dir, "state"), "plan", "-c", file, ...args], { env });
    const plain = await run();
    assert.equal(plain.code, 2, plain.stderr);
    assert.match(plain.stderr, /command not found/);
    const detailed = await run("--detailed-exitcode");
    assert.equal(detailed.code, 1, detailed.stderr);
    assert.match(detailed.stderr, /command not found/, "reported as without the flag");
    assert.doesNotMatch(detailed.stderr, /\n\s+at /, "no stack trace");
    const invalid = await new ProcessRunner().run(process.execPath, [CLI, "--state-dir", path.join(dir, "state"), "plan", "-c", path.join(dir, "none.yaml"), "--detailed-exitcode"], { env });
    assert.equal(invalid.code, 1, invalid.stderr);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("the new options are on the commands: plan --json and --detailed-exitcode, --verbose on apply, remove and rollback", async () => {
  const help = async (cmd: string) => (await new ProcessRunner().run(process.execPath, [CLI, cmd, "--help"])).stdout;
  const plan = await help("plan");
  assert.match(plan, /--json\s/);
  assert.match(plan, /--detailed-exitcode\s+exit 0 when nothing would change, 2 when something would,\s+1 on any error/);
  for (const cmd of ["apply", "remove", "rollback"]) assert.match(await help(cmd), /--verbose\s+after what the change means at policy level/, cmd);
});
