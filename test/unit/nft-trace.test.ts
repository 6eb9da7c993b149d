/**
 * The tracer over nftables: Docker 29's own `docker-bridges` tables, as `nft -j list ruleset` prints
 * them (test/unit/nft-rulesets/: Docker's generated documents of test/lab/docker-rules and
 * ../shared/docker-rules loaded with `nft -f` in a scratch network namespace, the lab's addresses as
 * docker29.ts rewrites them), alone and beside iptables rules; and what it must not understand.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { RuleWalker, type TraceResult } from "../../src/trace/trace.js";
import { parseSave } from "../../src/backends/iptables/save-parser.js";
import { memberSets, traceResolving } from "../../src/trace/sets.js";
import { parseNftRuleset, type NftRuleset } from "../../src/trace/nft/ruleset.js";
import { audit, type AuditTarget } from "../../src/trace/audit.js";
import { readLiveRules } from "../../src/trace/live.js";
import { Netfilter } from "../../src/backends/netfilter.js";
import { untracedPublishedPorts } from "../../src/trace/untraced-backend.js";
import type { Probe, TraceHost } from "../../src/trace/packet.js";
import type { Family } from "../../src/policy/types.js";
import { FakeNetfilter } from "./fake-netfilter.js";

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../..");
const ruleset = (name: string) => readFileSync(path.join(REPO, "test/unit/nft-rulesets", `${name}.json`), "utf8");

/** The lab's Docker 29 host (docker29.ts): eth0 outside, bridge1 with web 198.18.2.2, docker0 empty. */
const HOST: TraceHost = {
  interfaces: [
    { name: "lo", addresses: ["127.0.0.1/8", "::1/128"] },
    { name: "eth0", addresses: ["198.18.0.1/24", "2001:db8::1/64"] },
    { name: "bridge1", addresses: ["198.18.2.1/24", "2001:db8:2::1/64"] },
    { name: "docker0", addresses: ["198.19.0.1/16", "2001:db8:1::1/64"] },
    { name: "vethweb", addresses: [] },
  ],
};
const HOST_ADDR = { ipv4: "198.18.0.1", ipv6: "2001:db8::1" };
const WEB = { ipv4: "198.18.2.2", ipv6: "2001:db8:2::2" };
const STRANGER = { ipv4: "198.18.0.20", ipv6: "2001:db8::20" };
const ADMIN = { ipv4: "198.18.0.30", ipv6: "2001:db8::30" };

function walker(nft: NftRuleset, family: Family, iptables = ""): RuleWalker {
  return new RuleWalker(parseSave(iptables), memberSets(new Map()), HOST, undefined, nft.families[family]);
}

function probe(family: Family, src: string, dst: string, dport: number, proto: "tcp" | "udp" = "tcp"): Probe {
  return { family, proto, src, dst, dport, inIface: "eth0" };
}

const lastRule = (r: TraceResult) => r.steps.at(-1)?.rule ?? "";

/**
 * dockwall's kind of rules, written by iptables-nft into filter FORWARD (`DOCKER-USER` does not exist
 * on Docker's nftables back end): a published port by host port for one source only.
 */
const ADMINS_ONLY = (family: Family) => `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKWALL-FORWARD - [0:0]
-A FORWARD -j DOCKWALL-FORWARD
-A DOCKWALL-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
-A DOCKWALL-FORWARD -s ${family === "ipv4" ? `${ADMIN.ipv4}/32` : `${ADMIN.ipv6}/128`} -p tcp -m conntrack --ctorigdstport 8080 -j RETURN
-A DOCKWALL-FORWARD -p tcp -m conntrack --ctorigdstport 8080 -j DROP
COMMIT
`;

const PORTMAP = parseNftRuleset(ruleset("usernet-portmap"), { iptablesNft: true });

for (const family of ["ipv4", "ipv6"] as Family[]) {
  test(`Docker 29 nftables (${family}): Docker alone publishes 8080 to anyone by DNAT, and drops direct routing to its container`, () => {
    const w = walker(PORTMAP, family);
    const published = w.trace(probe(family, STRANGER[family], HOST_ADDR[family], 8080));
    assert.equal(published.verdict, "accept", published.reason);
    assert.equal(published.path, "forward");
    assert.deepEqual(published.dnat, { dst: WEB[family], dport: 80 });
    assert.match(published.steps.map((s) => `${s.chain} ${s.action}`).join("\n"), /nat-prerouting-and-output DNAT to .*\nfilter-FORWARD vmap: jump filter-forward-in__bridge1\nfilter-forward-in__bridge1 ACCEPT/);
    assert.equal(published.steps[0]!.table, `${family === "ipv4" ? "ip" : "ip6"} docker-bridges`);

    for (const port of [80, 9000]) {
      const direct = w.trace(probe(family, STRANGER[family], WEB[family], port));
      assert.equal(direct.verdict, "drop");
      assert.match(lastRule(direct), /DROP DIRECT ACCESS/);
    }
    // A port Docker does not publish, on the host's address: nothing DNATs it, the input path has no nft chain.
    const host = w.trace(probe(family, STRANGER[family], HOST_ADDR[family], 22));
    assert.equal(host.verdict, "accept");
    assert.equal(host.path, "input");
    // UDP to the published TCP port: `tcp dport` does not match a UDP packet, whatever the operator.
    assert.equal(w.trace(probe(family, STRANGER[family], HOST_ADDR[family], 8080, "udp")).path, "input");
  });

  test(`Docker 29 nftables (${family}): an iptables drop is final beside Docker's accept, whichever base chain runs first`, () => {
    const w = walker(PORTMAP, family, ADMINS_ONLY(family));
    const stranger = w.trace(probe(family, STRANGER[family], HOST_ADDR[family], 8080));
    assert.equal(stranger.verdict, "drop");
    assert.equal(stranger.steps.at(-1)!.chain, "DOCKWALL-FORWARD");
    const admin = w.trace(probe(family, ADMIN[family], HOST_ADDR[family], 8080));
    assert.equal(admin.verdict, "accept", admin.reason);
    // Both base chains of the forward hook were walked: iptables' filter FORWARD and Docker's filter-FORWARD.
    assert.ok(admin.steps.some((s) => s.chain === "DOCKWALL-FORWARD") && admin.steps.some((s) => s.chain === "filter-forward-in__bridge1" && s.action === "ACCEPT"));

    // Docker's forward chain moved before iptables' mangle and filter: its accept runs first and ends only its own chain.
    const early = parseNftRuleset(ruleset("usernet-portmap").replace('"hook": "forward", "prio": 0', '"hook": "forward", "prio": -200'), { iptablesNft: true });
    const first = walker(early, family, ADMINS_ONLY(family)).trace(probe(family, STRANGER[family], HOST_ADDR[family], 8080));
    assert.equal(first.verdict, "drop");
    const order = first.steps.map((s) => s.chain);
    assert.ok(order.indexOf("filter-forward-in__bridge1") < order.indexOf("DOCKWALL-FORWARD"), order.join(" "));
  });
}

test("Docker 29 nftables: a port published on 127.0.0.1 is DNATed for loopback only, and dropped from outside", () => {
  const w = walker(parseNftRuleset(ruleset("usernet-portmap-lo"), { iptablesNft: true }), "ipv4");
  const remote = w.trace(probe("ipv4", STRANGER.ipv4, "127.0.0.1", 8080));
  assert.equal(remote.verdict, "drop");
  assert.match(lastRule(remote), /DROP REMOTE LOOPBACK/);
  // To the host's own address the DNAT does not apply (it names 127.0.0.1): not forwarded to the container.
  const outside = w.trace(probe("ipv4", STRANGER.ipv4, HOST_ADDR.ipv4, 8080));
  assert.equal(outside.path, "input");
  assert.equal(outside.dnat, undefined);
});

test("Docker 29 nftables, routed mode: the container's published port is open at its own address, its other ports dropped, ICMP accepted", () => {
  const w = walker(parseNftRuleset(ruleset("usernet-portmap-routed"), { iptablesNft: true }), "ipv4");
  assert.equal(w.trace(probe("ipv4", STRANGER.ipv4, WEB.ipv4, 80)).verdict, "accept");
  const other = w.trace(probe("ipv4", STRANGER.ipv4, WEB.ipv4, 9000));
  assert.equal(other.verdict, "drop");
  assert.match(lastRule(other), /UNPUBLISHED PORT DROP/);
  const ping = w.trace({ family: "ipv4", proto: "icmp", src: STRANGER.ipv4, dst: WEB.ipv4, inIface: "eth0" });
  assert.equal(ping.verdict, "accept");
  assert.ok(ping.steps.some((s) => s.action === "ACCEPT" && /ip protocol icmp counter accept comment "ICMP"/.test(s.rule)));
});

test("nat-unprotected: Docker's accept of every port (UNPROTECTED) is traced as such", () => {
  const w = walker(parseNftRuleset(ruleset("usernet-portmap-natunprot"), { iptablesNft: true }), "ipv4");
  assert.equal(w.trace(probe("ipv4", STRANGER.ipv4, WEB.ipv4, 9000)).verdict, "accept");
});

test("ct state before conntrack (a chain at raw priority) reads invalid, as nft does; after it, new", () => {
  const withRule = (chain: string) => {
    const doc = JSON.parse(ruleset("usernet-portmap")) as { nftables: unknown[] };
    const expr = [{ match: { op: "in", left: { ct: { key: "state" } }, right: "invalid" } }, { drop: null }];
    doc.nftables.push({ rule: { family: "ip", table: "docker-bridges", chain, handle: 99, expr } });
    return walker(parseNftRuleset(JSON.stringify(doc), { iptablesNft: true }), "ipv4").trace(probe("ipv4", STRANGER.ipv4, HOST_ADDR.ipv4, 8080));
  };
  assert.equal(withRule("raw-PREROUTING").verdict, "drop");
  assert.equal(withRule("filter-FORWARD").verdict, "accept");
});

test("audit on Docker 29's nftables back end: the published port is anyone's alone, one source's beside dockwall's rules", async () => {
  const target: AuditTarget = { kind: "container", proto: "tcp", port: 8080, family: "ipv4", bind: "0.0.0.0", what: "container web 80/tcp" };
  const walkers = (iptables: (f: Family) => string) => ({ ipv4: walker(PORTMAP, "ipv4", iptables("ipv4")), ipv6: walker(PORTMAP, "ipv6", iptables("ipv6")) });
  const alone = await audit([target], walkers(() => ""), HOST, ["docker0", "bridge1"]);
  assert.deepEqual(alone[0]!.reach, { who: "anyone" });
  const guarded = await audit([target, { ...target, family: "ipv6" }], walkers(ADMINS_ONLY), HOST, ["docker0", "bridge1"]);
  assert.deepEqual(guarded.map((r) => r.reach), [{ who: "some", sources: [ADMIN.ipv4] }, { who: "some", sources: [ADMIN.ipv6] }]);
});

test("readLiveRules reads nft beside iptables; where nft cannot be read, Docker's nftables back end stays untraced", async () => {
  const fake = new FakeNetfilter();
  fake.loadSave("ipv4", ADMINS_ONLY("ipv4"));
  fake.loadNftJson(ruleset("usernet-portmap"));
  const live = await readLiveRules(new Netfilter(fake, "nft"), HOST);
  assert.equal(live.nft.unreadable, undefined);
  assert.equal((await traceResolving(live.walkers.ipv4, probe("ipv4", STRANGER.ipv4, HOST_ADDR.ipv4, 8080))).verdict, "drop");
  const admin = await traceResolving(live.walkers.ipv4, probe("ipv4", ADMIN.ipv4, HOST_ADDR.ipv4, 8080));
  assert.deepEqual([admin.verdict, admin.dnat], ["accept", { dst: WEB.ipv4, dport: 80 }]);

  const without = await readLiveRules(new Netfilter(new FakeNetfilter(), "nft"), HOST);
  assert.match(without.nft.unreadable ?? "", /nft: command not found/);
  const row = { target: { kind: "container" as const, proto: "tcp" as const, port: 8080, family: "ipv4" as const, bind: "0.0.0.0", what: "web" }, reach: { who: "nobody" as const } };
  assert.equal(untracedPublishedPorts([row], "nftables", without.nft)[0]!.reach.who, "unknown");
  assert.equal(untracedPublishedPorts([row], "nftables", live.nft)[0]!.reach.who, "nobody");
});

test("the tables iptables-nft owns are left to iptables-save; read as nft only where dockwall reads iptables-legacy", () => {
  // The portmap ruleset as nft lists it with iptables-nft's filter table beside Docker's (a DROP of everything forwarded).
  const doc = JSON.parse(ruleset("usernet-portmap")) as { nftables: unknown[] };
  doc.nftables.push(
    { table: { family: "ip", name: "filter", handle: 9 } },
    { chain: { family: "ip", table: "filter", name: "FORWARD", handle: 1, type: "filter", hook: "forward", prio: 0, policy: "drop" } },
  );
  const text = JSON.stringify(doc);
  const sent = probe("ipv4", STRANGER.ipv4, HOST_ADDR.ipv4, 8080);
  assert.equal(walker(parseNftRuleset(text, { iptablesNft: true }), "ipv4").trace(sent).verdict, "accept");
  assert.equal(walker(parseNftRuleset(text, { iptablesNft: false }), "ipv4").trace(sent).verdict, "drop");
});

/** Every probe the tests above make, for the fail-closed checks below. */
const PROBES: Probe[] = (["ipv4", "ipv6"] as Family[]).flatMap((f) => [
  probe(f, STRANGER[f], HOST_ADDR[f], 8080),
  probe(f, STRANGER[f], WEB[f], 80),
  probe(f, STRANGER[f], HOST_ADDR[f], 22),
  probe(f, STRANGER[f], HOST_ADDR[f], 8080, "udp"),
]);

test("fail closed: a rule the tracer does not understand, reached, makes the verdict unknown; each rule of Docker's table replaced in turn", () => {
  const doc = JSON.parse(ruleset("usernet-portmap")) as { nftables: Record<string, Record<string, unknown>>[] };
  const rules = doc.nftables.map((o, i) => (o.rule ? i : -1)).filter((i) => i >= 0);
  const original = PROBES.map((p) => walker(PORTMAP, p.family).trace(p).verdict);
  const odd: unknown[] = [{ queue: { num: 1 } }, { "mangle": { key: { meta: { key: "mark" } }, value: 1 } }, { match: { op: "==", left: { meta: { key: "mark" } }, right: 1 } }, "accept", 42, null, { xt: { type: "target", name: "MARK" } }];
  let unknowns = 0;
  for (const [n, at] of rules.entries()) {
    const changed = structuredClone(doc);
    changed.nftables[at]!.rule!.expr = [odd[n % odd.length]];
    const parsed = parseNftRuleset(JSON.stringify(changed), { iptablesNft: true });
    PROBES.forEach((p, i) => {
      const r = walker(parsed, p.family).trace(p);
      // Where the packet reached the odd rule: unknown; elsewhere: as before. Never another verdict.
      assert.ok(r.verdict === original[i] || r.verdict === "unknown", `rule ${n}: ${r.verdict} for ${JSON.stringify(p)}`);
      if (r.verdict === "unknown") unknowns++;
    });
  }
  assert.ok(unknowns > 0);
});

test("fail closed: odd JSON is unreadable or unknown, never a crash or an open path", () => {
  for (const text of ["", "not json", "[]", '{"nftables": 3}', "null"]) {
    assert.ok(parseNftRuleset(text, { iptablesNft: true }).unreadable, text);
  }
  // Objects of the wrong shape are skipped, not trusted.
  const junk = JSON.stringify({ nftables: [1, null, "x", [], { rule: 5 }, { chain: { family: 7 } }, { table: {} }, { rule: { family: "ip", table: "t", chain: "nowhere", expr: [] } }] });
  assert.deepEqual(parseNftRuleset(junk, { iptablesNft: true }).families.ipv4.baseChains, []);

  // A base chain the tracer cannot place (netdev ingress, bridge family): nothing of the family is traced.
  for (const chain of [
    { family: "netdev", table: "edge", name: "in", type: "filter", hook: "ingress", dev: "eth0", prio: 0, policy: "drop" },
    { family: "inet", table: "edge", name: "in", type: "route", hook: "prerouting", prio: 0, policy: "accept" },
    { family: "ip", table: "edge", name: "in", type: "filter", hook: "prerouting", prio: "raw", policy: "accept" },
  ]) {
    const doc = JSON.parse(ruleset("usernet-portmap")) as { nftables: unknown[] };
    doc.nftables.push({ table: { family: chain.family, name: "edge" } }, { chain });
    const r = walker(parseNftRuleset(JSON.stringify(doc), { iptablesNft: true }), "ipv4").trace(PROBES[0]!);
    assert.equal(r.verdict, "unknown");
    assert.match(r.reason ?? "", /nft chain .* edge in/);
  }

  // A verdict map or set Docker's rules name, gone or of a type not understood: unknown where used.
  const doc = JSON.parse(ruleset("usernet-portmap")) as { nftables: Record<string, Record<string, unknown>>[] };
  const gone = structuredClone(doc);
  gone.nftables = gone.nftables.filter((o) => o.map?.name !== "filter-forward-in-jumps");
  const r = walker(parseNftRuleset(JSON.stringify(gone), { iptablesNft: true }), "ipv4").trace(PROBES[0]!);
  assert.equal(r.verdict, "unknown");
  assert.match(r.reason ?? "", /map filter-forward-in-jumps is not in the table/);
  const concat = structuredClone(doc);
  for (const o of concat.nftables) if (o.map?.name === "filter-forward-in-jumps") o.map.type = ["ifname", "ipv4_addr"];
  assert.equal(walker(parseNftRuleset(JSON.stringify(concat), { iptablesNft: true }), "ipv4").trace(PROBES[0]!).verdict, "unknown");

  // Nesting deep enough to overflow a recursive reader, on the published port's path: unknown, not a crash.
  let deep = '"bridge1"';
  for (let i = 0; i < 100_000; i++) deep = `{"elem": {"val": ${deep}}}`;
  const raw = ruleset("usernet-portmap");
  const nested = raw.replace('"right": "bridge1"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}}', `"right": ${deep}}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}}`);
  assert.notEqual(nested, raw);
  const deepTrace = walker(parseNftRuleset(nested, { iptablesNft: true }), "ipv4").trace(PROBES[0]!);
  assert.equal(deepTrace.verdict, "unknown");

  // A chain that jumps to itself: a loop, unknown.
  const loop = structuredClone(doc);
  for (const o of loop.nftables) if (o.rule?.chain === "nat-prerouting-and-output") o.rule.expr = [{ jump: { target: "nat-prerouting-and-output" } }];
  assert.equal(walker(parseNftRuleset(JSON.stringify(loop), { iptablesNft: true }), "ipv4").trace(PROBES[0]!).verdict, "unknown");
});
