/**
 * Provenance: every rule dockwall renders names the policy entry it comes from, by an id that stays
 * when other entries come and go, and the applied record says where each entry was written.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { policy } from "./fixtures.js";
import { desiredFor, legacyHost, withStore } from "./apply-fixtures.js";
import { FakeNetfilter } from "./fake-netfilter.js";
import { applyPolicy } from "../../src/apply-policy.js";
import type { Runner } from "../../src/exec/runner.js";
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { policyEntries, BUILT_IN, KEY_ENTRIES } from "../../src/compile/entries.js";
import { entryOfComment, entryOfSpec, taggedComment, commentOfSpec } from "../../src/backends/iptables/entry-tag.js";
import { ruleProblem, acceptedQuickly, explainedProblem, type RuleContext } from "../../src/backends/iptables/rule-check.js";
import { parseRecordFile, FORMAT } from "../../src/apply/state-schema.js";
import type { Opening } from "../../src/policy/types.js";
import type { DesiredState } from "../../src/backends/rendered.js";

const at = (line: number) => ({ file: "/etc/dockwall/dockwall.yaml", line, col: 5 });
const ssh: Opening = { ports: [{ from: 22, to: 22 }], protos: ["tcp"], from: [{ kind: "any" }], loc: at(3) };
const web: Opening = { ports: [{ from: 80, to: 80 }, { from: 443, to: 443 }], protos: ["tcp"], from: [{ kind: "any" }], loc: at(4) };

test("an entry's id is made from what it says: other entries added before it, or its lists reordered, keep it", () => {
  const before = policyEntries(policy({ host: [ssh, web] }));
  const after = policyEntries(policy({ host: [{ ...web, loc: at(3) }, { ...ssh, loc: at(4) }, { ...ssh, ports: [{ from: 2222, to: 2222 }], loc: at(5) }] }));
  assert.equal(after.host[1], before.host[0]);
  assert.equal(after.host[0], before.host[1]);
  const reordered = policyEntries(policy({ host: [{ ...web, ports: [...web.ports].reverse() }] }));
  assert.equal(reordered.host[0], before.host[1]);
  // And where it now stands is what the record keeps.
  assert.deepEqual(after.sources.find((s) => s.id === before.host[0]), { id: before.host[0], ...at(4) });
  assert.match(before.host[0]!, /^host-[0-9a-f]{8}$/);
});

test("an entry that changes gets another id; two alike get distinct ones, in the order written", () => {
  const a = policyEntries(policy({ host: [ssh] }));
  const b = policyEntries(policy({ host: [{ ...ssh, from: [{ kind: "group", name: "office" }] }] }));
  assert.notEqual(a.host[0], b.host[0]);
  const twice = policyEntries(policy({ host: [ssh, { ...ssh, loc: at(9) }] }));
  assert.equal(twice.host[0], a.host[0]);
  assert.equal(twice.host[1], `${a.host[0]}-2`);
  const ids = twice.sources.map((s) => s.id);
  assert.equal(new Set(ids).size, ids.length);
});

test("every rendered rule carries its entry in the comment, and the state lists where each entry was written", () => {
  const p = policy({ host: [ssh, web], keyLocations: { trusted: at(1), default: at(20) } });
  const state = desiredFor(p);
  const listed = new Set((state.entries ?? []).map((e) => e.id));
  const builtIn = new Set<string>([...Object.values(BUILT_IN), ...KEY_ENTRIES]);
  for (const f of [state.ipv4, state.ipv6]) {
    for (const c of f.chains) {
      for (const rule of c.rules) {
        const id = entryOfSpec(rule);
        assert.ok(id !== undefined, `no entry tag: ${rule}`);
        assert.ok(listed.has(id) || builtIn.has(id), `${id} is not listed`);
      }
    }
  }
  assert.ok(listed.has("trusted") && listed.has("default") && !listed.has("icmp"), "keys written are listed, keys left to their default are not");
  const drop = state.ipv4.chains.find((c) => c.name === "DOCKWALL-INPUT-OUTSIDE")!.rules.at(-1)!;
  assert.equal(drop, '-m comment --comment "[default] default drop" -j DROP');
});

test("a tag survives a description too long for the kernel: the description is cut, the tag is whole", () => {
  const long = taggedComment("container-0a1b2c3d", `container ${"x".repeat(300)} 80/tcp`);
  assert.equal(Buffer.byteLength(long), 255);
  assert.equal(entryOfComment(long), "container-0a1b2c3d");
  assert.equal(taggedComment("replies"), "[replies]");
  assert.equal(entryOfComment("host 22/tcp"), undefined, "an older comment has no tag");
  assert.equal(commentOfSpec('-p tcp -m comment --comment "[host-1] say \\"hi\\"" -j RETURN'), '[host-1] say "hi"');
});

const ctx: RuleContext = { family: "ipv4", chains: new Set(["DOCKWALL-INPUT-OUTSIDE"]), sets: new Set() };

test("rule check: a tagged comment passes, an older untagged one still does, a malformed tag does not (both checks)", () => {
  for (const ok of ['-m comment --comment "[host-c7a38d82] host 22/tcp" -j RETURN', '-m comment --comment "[replies]" -j RETURN', '-m comment --comment "host 22/tcp" -j RETURN', "-m comment --comment replies -j RETURN"]) {
    assert.equal(ruleProblem(ok, ctx), undefined, ok);
    assert.ok(acceptedQuickly(ok, ctx), ok);
  }
  for (const bad of ['-m comment --comment "[Host-1] x" -j RETURN', '-m comment --comment "[host 1] x" -j RETURN', '-m comment --comment "[] x" -j RETURN', '-m comment --comment "[host-1]x" -j RETURN', '-m comment --comment "[host-1" -j RETURN']) {
    assert.equal(acceptedQuickly(bad, ctx), false, bad);
    assert.match(explainedProblem(bad, ctx) ?? "", /entry tag/, bad);
  }
});

function recordText(state: DesiredState, entries: unknown): string {
  const stored = { ...state, sets: state.sets.map((s) => ({ name: s.name, family: s.family, count: s.members.length, members: s.members.join("\n") })), entries };
  if (entries === undefined) delete (stored as { entries?: unknown }).entries;
  return JSON.stringify({ format: FORMAT, record: { at: "2026-12-01T10:00:00.000Z", source: "/etc/dockwall/dockwall.yaml", variant: "nft", state: stored } });
}

test("the record: its entries read back; a record without them (older) still loads", () => {
  const state = desiredFor(policy({ host: [ssh] }));
  const read = parseRecordFile(recordText(state, state.entries));
  assert.ok(read.ok, JSON.stringify(read));
  assert.deepEqual(read.value.state.entries, state.entries);
  const older = parseRecordFile(recordText(state, undefined));
  assert.ok(older.ok, JSON.stringify(older));
  assert.equal(older.value.state.entries, undefined);
});

test("the record: an entry that is not well formed, twice, or missing for a rule's tag is refused", () => {
  const state = desiredFor(policy({ host: [ssh] }));
  const good = state.entries!;
  const cases: [unknown, RegExp][] = [
    [[{ ...good[0], id: "Host-1" }], /not an entry id/],
    [[{ ...good[0], line: 0 }], /line: not a line/],
    [[{ ...good[0], col: 1.5 }], /col: not a line/],
    [[{ ...good[0], file: "a\nb" }], /control character/],
    [[{ ...good[0], file: "" }], /file: empty/],
    [[...good, good[0]], /there twice/],
    [[], /names entry host-[0-9a-f]{8}, which the record does not list/],
    ["x", /not a list/],
  ];
  for (const [entries, problem] of cases) {
    const read = parseRecordFile(recordText(state, entries));
    assert.ok(!read.ok, JSON.stringify(entries));
    assert.match(read.problems.join("\n"), problem);
  }
});

test("lines moved by an edit that changes no rule: the apply changes nothing in the kernel, and the record's lines follow the file", async () => {
  await withStore(async (store, lock) => {
    const fake = new FakeNetfilter();
    const runner = legacyHost(fake);
    const file = path.join(path.dirname(store.dir), `${path.basename(store.dir)}-policy.yaml`);
    try {
      await writeFile(file, "host:\n  - port: 22\n");
      await applyPolicy(file, { runner, store, lock });
      const line = async () => (await store.current())?.state.entries?.find((e) => e.id.startsWith("host-"))?.line;
      assert.equal(await line(), 2);
      await writeFile(file, "# SSH first\n\nhost:\n  - port: 22\n");
      const again = await applyPolicy(file, { runner, store, lock });
      assert.equal(again.result.changed, false);
      assert.equal(await line(), 4);
    } finally {
      await rm(file, { force: true });
    }
  });
});
