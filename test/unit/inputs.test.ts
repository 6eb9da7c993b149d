/**
 * Reusing a recorded compile: with the same files and facts it is the recorded state; with changed
 * group files it must equal a full compile exactly (desired state, warnings and recorded inputs).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { compilePolicy, PolicyInvalid, type Compiled, type CompiledBefore } from "../../src/pipeline.js";
import { noCommands, reachableNoFacts as facts } from "./fixtures.js";


const POLICY = `groups:
  big: { file: big.list }
  more: { file: more.list }
  office: [198.19.200.0/24]
trusted: [office]
host:
  - port: 22
containers:
  - port: 8080
    from: [big, more]
`;

async function withFiles(body: (dir: string, policy: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-inputs-"));
  try {
    await writeFile(path.join(dir, "big.list"), "198.18.0.1\n198.18.0.2\n2001:db8::1\n");
    await writeFile(path.join(dir, "more.list"), "198.18.1.0/24\n");
    const policy = path.join(dir, "dockwall.yaml");
    await writeFile(policy, POLICY);
    await body(dir, policy);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const compileFull = (policy: string) => compilePolicy(policy, noCommands, undefined, Promise.resolve(facts));
const compileAfter = (policy: string, c: Compiled) => {
  const before: CompiledBefore = { ...c.origin, desired: c.desired };
  return compilePolicy(policy, noCommands, before, Promise.resolve(facts));
};

test("nothing changed: the recorded desired state is taken as it is", async () => {
  await withFiles(async (_dir, policy) => {
    const first = await compileFull(policy);
    const again = await compileAfter(policy, first);
    assert.equal(again.desired, first.desired);
    assert.deepEqual(again.origin, first.origin);
  });
});

test("a changed group file gives exactly what a full compile gives", async () => {
  await withFiles(async (dir, policy) => {
    const first = await compileFull(policy);
    await appendFile(path.join(dir, "big.list"), "198.18.0.3\n198.18.2.9/24\n2001:db8::2\n");
    const incremental = await compileAfter(policy, first);
    const full = await compileFull(policy);
    assert.notDeepEqual(incremental.desired, first.desired);
    assert.deepEqual(incremental.desired, full.desired);
    assert.deepEqual(incremental.warnings, full.warnings);
    assert.match(incremental.warnings.join("\n"), /big\.list:5:1: "198\.18\.2\.9\/24" has host bits set/);
    assert.deepEqual(incremental.origin, full.origin);
    // And built on again, unchanged, it is stable.
    assert.deepEqual((await compileAfter(policy, incremental)).desired, full.desired);
  });
});

test("a changed policy file is compiled in full", async () => {
  await withFiles(async (_dir, policy) => {
    const first = await compileFull(policy);
    await appendFile(policy, "  - port: 9090\n");
    const after = await compileAfter(policy, first);
    assert.deepEqual(after.desired, (await compileFull(policy)).desired);
    assert.ok(after.desired.ipv4.chains.some((c) => c.rules.some((r) => r.includes("9090"))));
  });
});

test("a changed group file with errors is refused with every error at its line", async () => {
  await withFiles(async (dir, policy) => {
    const first = await compileFull(policy);
    await appendFile(path.join(dir, "more.list"), "198.18.300.1\nnot-an-address\n");
    await assert.rejects(compileAfter(policy, first), (e: unknown) => {
      assert.ok(e instanceof PolicyInvalid);
      assert.deepEqual(
        e.errors.map((l) => l.replace(dir, "DIR")),
        ['DIR/more.list:2:1: "198.18.300.1": octet 300 is larger than 255', 'DIR/more.list:3:1: "not-an-address" is not an IPv4 or IPv6 address or CIDR'],
      );
      return true;
    });
  });
});

test("the sets handed out early are the very objects the compiled desired state holds", async () => {
  await withFiles(async (_dir, policy) => {
    let early: unknown;
    const compiled = await compilePolicy(policy, noCommands, undefined, Promise.resolve(facts), (sets) => (early = sets));
    assert.equal(early, compiled.desired.sets);
    assert.deepEqual(
      compiled.desired.sets.map((s) => `${s.name} ${s.members.length}`),
      ["dw4-big 2", "dw6-big 1", "dw4-more 1", "dw6-more 0", "dw4-office 1", "dw6-office 0"],
    );
  });
});

test("an invalid policy hands out no sets", async () => {
  await withFiles(async (dir, policy) => {
    await appendFile(path.join(dir, "big.list"), "198.18.0.300\n");
    let called = false;
    await assert.rejects(
      compilePolicy(policy, noCommands, undefined, Promise.resolve(facts), () => (called = true)),
      PolicyInvalid,
    );
    assert.equal(called, false);
  });
});
