/**
 * explain names the policy line behind the deciding dockwall rule: traced over the fake kernel after
 * an apply, with the entries the record keeps; and says plainly when it cannot (an older record, an
 * untagged rule, an entry the record does not list, a key left to its default).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeNetfilter } from "./fake-netfilter.js";
import { DOCKER_20_10_SAVE } from "./docker-layout.js";
import { Netfilter } from "../../src/backends/netfilter.js";
import { apply } from "../../src/apply/apply.js";
import { render, type DesiredState } from "../../src/backends/rendered.js";
import { compile } from "../../src/compile/index.js";
import { parseSave } from "../../src/backends/iptables/save-parser.js";
import { parseIpsetSave } from "../../src/backends/ipset.js";
import { RuleWalker } from "../../src/trace/trace.js";
import { memberSets } from "../../src/trace/sets.js";
import { decisionLine, dockwallDecision, stepOrigin } from "../../src/trace/provenance.js";
import type { Facts } from "../../src/facts/types.js";
import type { Opening } from "../../src/policy/types.js";
import { policy } from "./fixtures.js";
import { withStore } from "./apply-fixtures.js";
import { appliedEntries } from "../../src/trace/applied-entries.js";
import { digest } from "../../src/inputs.js";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

const FILE = "/etc/dockwall/dockwall.yaml";
const host = { interfaces: [{ name: "lo", addresses: ["127.0.0.1/8"] }, { name: "eth0", addresses: ["198.18.0.1/24"] }, { name: "docker0", addresses: ["172.17.0.1/16"] }] };
const facts: Facts = { docker: { reachable: true, containers: [], networks: [] }, host: { interfaces: [], iptables: "nft" } };
const ssh: Opening = { ports: [{ from: 22, to: 22 }], protos: ["tcp"], from: [{ kind: "any" }], loc: { file: FILE, line: 7, col: 5 } };

async function traced(state: DesiredState, dport: number) {
  const fake = new FakeNetfilter();
  fake.loadSave("ipv4", DOCKER_20_10_SAVE);
  await apply(new Netfilter(fake, "nft"), state);
  const sets = parseIpsetSave((await fake.run("ipset", ["save"])).stdout, () => true);
  const w = new RuleWalker(parseSave(fake.saveText("ipv4")), memberSets(sets), host);
  return w.trace({ family: "ipv4", proto: "tcp", src: "198.18.9.9", dst: "198.18.0.1", dport, inIface: "eth0" });
}

const entriesOf = (state: DesiredState) => new Map((state.entries ?? []).map((e) => [e.id, e]));

test("a connection dockwall lets through names the entry's line; one it refuses names the default's", async () => {
  const state = render(compile(policy({ host: [ssh], containers: [], keyLocations: { default: { file: FILE, line: 12, col: 1 } } }), facts));
  const allowed = dockwallDecision((await traced(state, 22)).steps, entriesOf(state));
  assert.equal(decisionLine(allowed!), `allowed by ${FILE}:7 (host 22/tcp)`);
  const refused = await traced(state, 5432);
  assert.equal(refused.verdict, "drop");
  const d = dockwallDecision(refused.steps, entriesOf(state))!;
  assert.equal(d.step, refused.steps.length - 1, "the deciding rule is the last step");
  assert.equal(decisionLine(d), `refused by ${FILE}:12 (default drop)`);
  assert.deepEqual(d.origin, { kind: "policy", id: "default", file: FILE, line: 12, col: 1 });
});

test("without a line to name, explain says why: a key's default, a built-in rule, an older record, an entry not listed", async () => {
  const state = render(compile(policy({ host: [ssh], containers: [] }), facts));
  const refused = (await traced(state, 5432)).steps;
  assert.equal(decisionLine(dockwallDecision(refused, entriesOf(state))!, FILE), `refused by "default:", which ${FILE} leaves to its default (default drop)`);
  assert.equal(dockwallDecision(refused, undefined)!.origin.kind, "unlisted", "no entries (an older record): nothing is guessed");
  const other = new Map([...entriesOf(state)].filter(([id]) => !id.startsWith("host-")));
  assert.match(decisionLine(dockwallDecision((await traced(state, 22)).steps, other)!), /^allowed by entry host-[0-9a-f]{8} \(host 22\/tcp\); the applied record does not list it/);
  const fromBridge = dockwallDecision([{ table: "filter", chain: "DOCKWALL-INPUT", index: 2, rule: '-A DOCKWALL-INPUT -i docker+ -m comment --comment "[bridges] from Docker bridges" -j RETURN', action: "RETURN" }], entriesOf(state))!;
  assert.equal(decisionLine(fromBridge), "allowed by a rule dockwall always writes, [bridges] (from Docker bridges)");
  const untagged = { table: "filter", chain: "DOCKWALL-INPUT-OUTSIDE", index: 9, rule: '-A DOCKWALL-INPUT-OUTSIDE -m comment --comment "default drop" -j DROP', action: "DROP" };
  assert.match(decisionLine(dockwallDecision([untagged], entriesOf(state))!), /without an entry tag \(default drop\) \(applied by an older dockwall/);
});

test("only dockwall's chains are read: a tag-like comment in another chain names nothing", () => {
  const step = { table: "filter", chain: "DOCKER-USER", index: 1, rule: '-A DOCKER-USER -m comment --comment "[default] x" -j DROP', action: "DROP" };
  assert.equal(stepOrigin(step, new Map()), undefined);
  assert.equal(dockwallDecision([step], new Map()), undefined);
});

test("the applied entries come from the record, with a note when the file has changed since, or the record has none", async () => {
  await withStore(async (store) => {
    assert.match((await appliedEntries(store)).note ?? "", /nothing has been applied/);
    const dir = await mkdtemp(path.join(tmpdir(), "dockwall-explain-"));
    try {
      const file = path.join(dir, "dockwall.yaml");
      const text = "host:\n  - port: 22\n";
      await writeFile(file, text);
      const state = render(compile(policy({ host: [{ ...ssh, loc: { file, line: 2, col: 5 } }], containers: [] }), facts));
      const origin = { inputs: { code: "test", policy: { path: file, digest: digest(text) }, groupFiles: [], facts: "f" }, warnings: [] };
      await store.record({ at: "2026-12-01T10:00:00.000Z", source: file, variant: "nft", state, origin });
      const now = await appliedEntries(store);
      assert.equal(now.note, undefined);
      assert.equal(now.policyFile, file);
      assert.equal([...now.entries!.values()].find((e) => e.id.startsWith("host-"))?.line, 2);
      await writeFile(file, "# moved\n" + text);
      assert.match((await appliedEntries(store)).note ?? "", /has changed since it was applied \(2026-12-01T10:00:00.000Z\): the lines are as it was then/);
      const { entries: _gone, ...older } = state;
      await store.record({ at: "2026-12-01T10:00:00.000Z", source: file, variant: "nft", state: older, origin });
      const none = await appliedEntries(store);
      assert.equal(none.entries, undefined);
      assert.match(none.note ?? "", /predates them/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
