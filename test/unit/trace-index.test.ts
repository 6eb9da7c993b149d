/**
 * The tracer's source index (source-index.ts) changes nothing but speed: on random rule sets (runs
 * of `-s` rules, negations, nested prefixes, set matches before and after the `-s`, rules the tracer
 * does not understand, jumps, gotos, RETURN) every trace and every audit row is the same as the
 * plain walk's, which tests every rule in turn.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseSave } from "../../src/backends/iptables/save-parser.js";
import { RuleWalker } from "../../src/trace/trace.js";
import { memberSets } from "../../src/trace/sets.js";
import { audit, type AuditTarget } from "../../src/trace/audit.js";
import type { Family } from "../../src/policy/types.js";
import type { Probe } from "../../src/trace/packet.js";

const host = {
  interfaces: [
    { name: "lo", addresses: ["127.0.0.1/8", "::1/128"] },
    { name: "eth0", addresses: ["198.18.0.1/24", "2001:db8:a::1/64"] },
    { name: "eth1", addresses: ["198.18.1.1/24", "2001:db8:b::1/64"] },
  ],
};

/** Sources and CIDRs drawn from a few nested networks, so that rules overlap and share prefixes. */
const CIDRS: Record<Family, string[]> = {
  ipv4: ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3", "10.1.2.3/32", "10.1.2.4/31", "10.2.0.0/15", "192.0.2.7", "0.0.0.0/0"],
  ipv6: ["2001:db8:1::/48", "2001:db8:1:2::/64", "2001:db8:1:2::3", "2001:db8:1:2::3/128", "2001:db8:2::/47", "::/0"],
};
const SOURCES: Record<Family, string[]> = {
  ipv4: ["10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.9.9", "10.3.0.1", "10.9.9.9", "192.0.2.7", "203.0.113.9"],
  ipv6: ["2001:db8:1:2::3", "2001:db8:1:2::4", "2001:db8:1:9::1", "2001:db8:3::1", "2001:db8:ffff::1"],
};

const SET_MEMBERS: Record<Family, string[]> = { ipv4: ["10.1.2.0/24", "192.0.2.7"], ipv6: ["2001:db8:1:2::/64"] };

/** `arb` with weight `present`, nothing with weight `absent`. */
function maybe<T>(arb: fc.Arbitrary<T>, present: number, absent: number): fc.Arbitrary<T | undefined> {
  return fc.oneof({ weight: present, arbitrary: arb }, { weight: absent, arbitrary: fc.constant(undefined) });
}

/** One rule's text for a chain that may jump to `callees` (a chain never reaches itself: no loops). */
function ruleArb(family: Family, callees: string[]): fc.Arbitrary<string> {
  const source = fc.tuple(fc.boolean(), fc.constantFrom(...CIDRS[family])).map(([neg, c]) => `${neg ? "! " : ""}-s ${c}`);
  const iface = fc.constantFrom("-i eth0", "! -i eth0", "-i eth+", "-i eth1");
  const proto = fc.constantFrom("-p tcp -m tcp --dport 22", "-p tcp -m tcp --dport 80:90", "-p udp");
  // "s" is in the kernel; "missing" is not, so a rule testing it is unknown when reached.
  const set = fc.tuple(fc.boolean(), fc.constantFrom("s", "s", "missing")).map(([neg, name]) => `-m set ${neg ? "! " : ""}--match-set ${name} src`);
  const target = fc.constantFrom("-j ACCEPT", "-j DROP", "-j REJECT", "-j RETURN", "-j LOG", "", ...callees.flatMap((c) => [`-j ${c}`, `-g ${c}`]));
  return fc
    .record({
      setFirst: maybe(set, 1, 3),
      source: maybe(source, 3, 1),
      iface: maybe(iface, 1, 1),
      proto: maybe(proto, 1, 1),
      setAfter: maybe(set, 1, 3),
      unknown: maybe(fc.constant("-m quota --quota 100"), 1, 10),
      target,
    })
    .map((r) => [r.setFirst, r.source, r.iface, r.proto, r.setAfter, r.unknown, r.target].filter((x) => x !== undefined && x !== "").join(" "));
}

/** A filter table: INPUT may call A or B, A may call B, B calls nothing. Mostly `-s` rules, as scripts write them. */
function rulesetArb(family: Family): fc.Arbitrary<string> {
  const chain = (name: string, callees: string[]) =>
    fc.array(fc.oneof({ weight: 3, arbitrary: fc.tuple(fc.constantFrom(...CIDRS[family]), fc.constantFrom("-j RETURN", "-j DROP", "-j ACCEPT", "")).map(([c, t]) => `-s ${c} ${t}`.trim()) }, { weight: 2, arbitrary: ruleArb(family, callees) }), { maxLength: 12 }).map((rules) => rules.map((r) => `-A ${name} ${r}`));
  return fc
    .tuple(chain("INPUT", ["A", "B"]), chain("A", ["B"]), chain("B", []), fc.constantFrom("ACCEPT", "DROP"))
    .map(([input, a, b, policy]) => ["*filter", `:INPUT ${policy} [0:0]`, ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]", ":A - [0:0]", ":B - [0:0]", ...input, ...a, ...b, "COMMIT", ""].join("\n"));
}

function walkers(family: Family, save: string): { fast: RuleWalker; plain: RuleWalker } {
  const sets = memberSets(new Map([["s", { name: "s", type: "hash:net", family, members: SET_MEMBERS[family] }]]));
  return { fast: new RuleWalker(parseSave(save), sets, host), plain: new RuleWalker(parseSave(save), sets, host, { skipBySource: false }) };
}

for (const family of ["ipv4", "ipv6"] as const) {
  test(`${family}: every trace through random rules is the same with the source index as without`, () => {
    const probe = fc.record({
      src: fc.constantFrom(...SOURCES[family]),
      dport: fc.constantFrom(22, 85, 443),
      proto: fc.constantFrom("tcp" as const, "udp" as const),
      inIface: fc.constantFrom("eth0", "eth1"),
    });
    fc.assert(
      fc.property(rulesetArb(family), fc.array(probe, { minLength: 1, maxLength: 8 }), (save, probes) => {
        const { fast, plain } = walkers(family, save);
        for (const p of probes) {
          const full: Probe = { family, dst: family === "ipv4" ? "198.18.0.1" : "2001:db8:a::1", ...p };
          assert.deepEqual(fast.trace(full), plain.trace(full));
        }
      }),
      { numRuns: 1500 },
    );
  });
}

test("audit over random rules: the same rows with the source index as without", async () => {
  const targets: AuditTarget[] = [22, 85, 443].flatMap((port) =>
    (["ipv4", "ipv6"] as const).map((family): AuditTarget => ({ kind: "host", proto: "tcp", port, family, bind: family === "ipv4" ? "0.0.0.0" : "::", what: "host socket" })),
  );
  await fc.assert(
    fc.asyncProperty(rulesetArb("ipv4"), rulesetArb("ipv6"), async (v4, v6) => {
      const a = walkers("ipv4", v4);
      const b = walkers("ipv6", v6);
      const fast = await audit(targets, { ipv4: a.fast, ipv6: b.fast }, host, []);
      const plain = await audit(targets, { ipv4: a.plain, ipv6: b.plain }, host, []);
      assert.deepEqual(fast, plain);
    }),
    { numRuns: 300 },
  );
});
