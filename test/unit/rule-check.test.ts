/**
 * rule-check.ts accepts exactly what render.ts writes: everything the renderer emits passes (golden
 * policies, and random rules of every shape), and lines it never writes are refused with a reason.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import fc from "fast-check";
import { acceptedQuickly, explainedProblem, familyProblems, ruleProblem, type RuleContext } from "../../src/backends/iptables/rule-check.js";
import { renderRule, type RenderedFamily } from "../../src/backends/iptables/render.js";
import { render } from "../../src/backends/rendered.js";
import { compile } from "../../src/compile/index.js";
import { loadPolicyText } from "../../src/policy/load.js";
import type { Facts } from "../../src/facts/types.js";
import type { Family } from "../../src/policy/types.js";
import type { CtState, Match, Rule, Verdict } from "../../src/ruleset/types.js";
import { desiredFor } from "./apply-fixtures.js";
import { policy } from "./fixtures.js";

const goldenRoot = path.resolve("test/golden");

for (const name of readdirSync(goldenRoot).sort()) {
  test(`everything the renderer writes for the golden policy ${name} passes the rule check`, async (t) => {
    const dir = path.join(goldenRoot, name);
    const file = path.join(dir, "policy.yaml");
    const loaded = await loadPolicyText(readFileSync(file, "utf8"), file, (p) => readFile(p, "utf8"));
    if (!loaded.ok) return t.skip("the policy is refused: nothing is rendered");
    let ruleset;
    try {
      ruleset = compile(loaded.policy, JSON.parse(readFileSync(path.join(dir, "facts.json"), "utf8")) as Facts);
    } catch {
      return t.skip("compile refuses the policy with these facts: nothing is rendered");
    }
    const desired = render(ruleset);
    for (const f of ["ipv4", "ipv6"] as const) {
      const sets = new Set(desired.sets.filter((s) => s.family === f).map((s) => s.name));
      assert.deepEqual(familyProblems(desired[f], f, sets), []);
      assert.ok(desired[f].chains.flatMap((c) => c.rules).length > 5, "the check saw rules");
    }
  });
}

// ---- every shape renderRule writes ---------------------------------------------------------------

const octet = fc.nat(255);
const v4Cidr = fc.tuple(octet, octet, octet, octet, fc.integer({ min: 0, max: 32 })).map(([a, b, c, d, p]) => {
  const n = (((a << 24) | (b << 16) | (c << 8) | d) >>> 0) & (p === 0 ? 0 : (~0 << (32 - p)) >>> 0);
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/${p}`;
});
const v6Cidr = fc.constantFrom("2001:db8::/32", "2001:db8:1::/48", "::1/128", "fe80::/10", "2001:db8::5/128", "::/0");
const ports = fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 100 })).map(([from, w]) => ({ from, to: Math.min(65535, from + w) }));
const iface = fc.constantFrom("eth0", "lo", "docker0", "br-+", "wg+", "veth1a2b", "eth0.100", "en_p1");
const text = fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !/[\x00-\x1f\x7f]/.test(s));
const ctStates = fc.subarray(["INVALID", "NEW", "RELATED", "ESTABLISHED", "DNAT"] as CtState[], { minLength: 1 });

function ruleOf(family: Family): fc.Arbitrary<Rule> {
  const cidr = family === "ipv4" ? v4Cidr : v6Cidr;
  const host = family === "ipv4" ? fc.constantFrom("127.0.0.0/8", "198.51.100.7") : fc.constantFrom("::1", "2001:db8::7");
  const protoMatch: fc.Arbitrary<Partial<Match>> = fc.oneof(
    fc.constant({}),
    fc.record({ proto: fc.constantFrom("tcp" as const, "udp" as const), dport: fc.option(ports, { nil: undefined }) }),
    family === "ipv4"
      ? fc.record({ proto: fc.constant("icmp" as const), icmpType: fc.option(fc.nat(255), { nil: undefined }) })
      : fc.record({ proto: fc.constant("ipv6-icmp" as const), icmpType: fc.option(fc.nat(255), { nil: undefined }) }),
    fc.constant({ proto: "esp" as const }),
  );
  const rest = fc.record(
    {
      src: cidr,
      dst: cidr,
      inIface: iface,
      outIface: iface,
      srcSet: fc.constant(family === "ipv4" ? "dw4-office" : "dw6-office"),
      ctstate: ctStates,
      ctorigdst: host,
      ctorigdstport: ports,
      limit: fc.constantFrom("10/minute", "5/second", "1/hour", "100/day"),
    },
    { requiredKeys: [] },
  );
  const verdict: fc.Arbitrary<Verdict> = fc.oneof(
    fc.constant({ kind: "RETURN" as const }),
    fc.constant({ kind: "DROP" as const }),
    fc.constantFrom("tcp-reset" as const, family === "ipv4" ? ("icmp-port-unreachable" as const) : ("icmp6-port-unreachable" as const)).map((w) => ({ kind: "REJECT" as const, with: w })),
    text.filter((prefix) => prefix.length <= 29).map((prefix) => ({ kind: "LOG" as const, prefix })),
    fc.constant({ kind: "goto" as const, chain: "DOCKWALL-INPUT-OUTSIDE" }),
  );
  const entry = fc.constantFrom("host-3f2a9c1b", "container-0a1b2c3d-2", "default", "replies", "neighbour-discovery");
  return fc.tuple(protoMatch, rest, verdict, fc.option(text, { nil: undefined }), entry).map(([p, r, v, comment, e]) => {
    const match = { ...r, ...p } as Match;
    for (const k of Object.keys(match) as (keyof Match)[]) if (match[k] === undefined) delete match[k];
    return { match, verdict: v, entry: e, ...(comment !== undefined ? { comment } : {}) };
  });
}

for (const family of ["ipv4", "ipv6"] as const) {
  test(`every ${family} rule renderRule can write passes the rule check`, () => {
    const ctx: RuleContext = { family, chains: new Set(["DOCKWALL-INPUT-OUTSIDE"]), sets: new Set([family === "ipv4" ? "dw4-office" : "dw6-office"]) };
    fc.assert(
      fc.property(ruleOf(family), (rule) => {
        const line = renderRule(rule);
        assert.equal(ruleProblem(line, ctx), undefined, line);
      }),
      { numRuns: 3000 },
    );
  });
}

/** A rendered line with a few words changed: what a hand edit or a crafted file holds. */
function mutated(family: Family): fc.Arbitrary<string> {
  const vocabulary = ["-j", "-g", "ACCEPT", "RETURN", "-m", "tcp", "conntrack", "--ctstate", "NEW", "-s", "198.18.0.0/15", "2001:db8::/32", "-p", "udp", "!", '"x y"', '"', "--dport", "80", "0", "-i", "eth0", "DOCKWALL-INPUT-OUTSIDE", "DOCKER", "--comment", "comment", "src", ""];
  const edit = fc.oneof(
    fc.tuple(fc.constant("replace"), fc.nat(30), fc.constantFrom(...vocabulary)),
    fc.tuple(fc.constant("insert"), fc.nat(30), fc.constantFrom(...vocabulary)),
    fc.tuple(fc.constant("delete"), fc.nat(30), fc.constant("")),
  );
  return fc.tuple(ruleOf(family).map(renderRule), fc.array(edit, { minLength: 1, maxLength: 3 })).map(([line, edits]) => {
    const words = line.split(" ");
    for (const [kind, at, word] of edits) {
      const i = at % (words.length + 1);
      if (kind === "replace") words[Math.min(i, words.length - 1)] = word;
      else if (kind === "insert") words.splice(i, 0, word);
      else words.splice(i, 1);
    }
    return words.join(" ");
  });
}

for (const family of ["ipv4", "ipv6"] as const) {
  test(`the fast path and the word-by-word check agree (${family}): rendered lines pass both, and the fast path accepts nothing the other refuses`, () => {
    const ctx: RuleContext = { family, chains: new Set(["DOCKWALL-INPUT-OUTSIDE"]), sets: new Set([family === "ipv4" ? "dw4-office" : "dw6-office"]) };
    fc.assert(
      fc.property(ruleOf(family).map(renderRule), (line) => {
        assert.ok(acceptedQuickly(line, ctx), line);
        assert.equal(explainedProblem(line, ctx), undefined, line);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(mutated(family), (line) => {
        if (acceptedQuickly(line, ctx)) assert.equal(explainedProblem(line, ctx), undefined, line);
      }),
      { numRuns: 20_000 },
    );
  });
}

// ---- what it never writes ---------------------------------------------------------------------------

const ctx4: RuleContext = { family: "ipv4", chains: new Set(["DOCKWALL-INPUT-OUTSIDE"]), sets: new Set(["dw4-office"]) };

const refused: [string, RegExp][] = [
  ["-j ACCEPT", /target \(-j ACCEPT\)/],
  ["-s 198.18.0.0/15 -j ACCEPT", /target/],
  ["-j RETURN\n-A INPUT -j ACCEPT", /control character/],
  ["-j RETURN\nCOMMIT", /control character/],
  ["-j RETURN\r", /control character/],
  ["-j DOCKER-USER", /target/],
  ["-g DOCKER-USER", /-g DOCKER-USER is not a dockwall chain/],
  ["-g DOCKWALL-ELSEWHERE", /not a dockwall chain of this table/],
  ["-j RETURN -j ACCEPT", /"-j ACCEPT" is not something dockwall writes/],
  ["-m comment --comment dockwall -j RETURN -m comment --comment x", /is not something dockwall writes/],
  ['-m comment --comment "plain" -j RETURN', /not quoted as iptables prints it/],
  ["-s 198.18.0.5 -j RETURN", /-s 198.18.0.5 is not an ipv4 address/],
  ["-s 198.18.0.5/24 -j RETURN", /not an ipv4 address/],
  ["-s 2001:db8::/32 -j RETURN", /not an ipv4 address/],
  ["-m set --match-set dw4-other src -j RETURN", /the state has no such set/],
  ["-m set --match-set dw6-office src -j RETURN", /not a dockwall ipv4 set/],
  ["-m set --match-set dw4-office dst -j RETURN", /must match src/],
  ["-p tcp -m multiport --dports 1:65535 -j RETURN", /target/],
  ["-p tcp -m tcp --dport 80:22 -j RETURN", /not a port or port range/],
  ["-p tcp -m tcp --dport 0x50 -j RETURN", /not a port/],
  ["-p sctp -j RETURN", /-p sctp is not a protocol/],
  ["-p ipv6-icmp -j RETURN", /not a protocol dockwall writes for ipv4/],
  ["! -s 198.18.0.0/15 -j RETURN", /target/],
  ["-i -j RETURN", /not an interface name|target/],
  ["-i eth0/1 -j RETURN", /not an interface name/],
  ["-m conntrack --ctstate ESTABLISHED,RELATED -j RETURN", /not a state list/],
  ["-m conntrack --ctstate NEW,UNTRACKED -j RETURN", /not a state list/],
  ["-m conntrack --ctorigdstport 80 -j RETURN", /--ctdir ORIGINAL/],
  ["-j LOG --log-prefix x --log-level 7", /is not something dockwall writes/],
  ["-j REJECT --reject-with icmp-host-prohibited", /--reject-with icmp-host-prohibited/],
  ["-j REJECT --reject-with icmp6-port-unreachable", /not one dockwall writes for ipv4/],
  ['-m comment --comment "open -j RETURN', /unterminated quote/],
  ["-j  RETURN", /double or leading space/],
  ["", /target \(nothing\)/],
  // The kernel keeps 29 bytes of a prefix: a longer one would be cut, and never read back equal.
  [`-j LOG --log-prefix ${"p".repeat(30)}`, /--log-prefix p{30} is longer than 29 bytes/],
  [`-j LOG --log-prefix "${"é".repeat(15)}"`, /is longer than 29 bytes/],
  [`-m comment --comment ${"c".repeat(256)} -j RETURN`, /--comment is longer than 255 bytes/],
];

for (const [line, why] of refused) {
  test(`refused: ${JSON.stringify(line)}`, () => {
    const problem = ruleProblem(line, ctx4);
    assert.ok(problem !== undefined, "refused");
    assert.match(problem, why);
  });
}

test("a family state with chains, tables or jumps dockwall never writes is refused, each problem named", () => {
  const good = desiredFor(policy()).ipv4;
  const sets = new Set(["dw4-office"]);
  assert.deepEqual(familyProblems(good, "ipv4", sets), []);
  const crafted: RenderedFamily = {
    family: "ipv4",
    chains: [
      ...good.chains,
      { table: "filter", name: "INPUT", rules: ["-j ACCEPT"] },
      { table: "nat" as "filter", name: "DOCKWALL-NAT", rules: [] },
      { table: "filter", name: "DOCKWALL-INPUT", rules: [] },
      { table: "filter", name: "DOCKWALL-X\n*nat", rules: [] },
    ],
    jumps: [
      ...good.jumps,
      { table: "filter", from: "OUTPUT", to: "DOCKWALL-INPUT", spec: "-m comment --comment dockwall -j DOCKWALL-INPUT" },
      { table: "filter", from: "INPUT", to: "DOCKWALL-INPUT", spec: "-j ACCEPT" },
      { table: "filter", from: "INPUT", to: "DOCKWALL-FORWARD", spec: "-m comment --comment dockwall -j DOCKWALL-FORWARD" },
    ],
  };
  const problems = familyProblems(crafted, "ipv4", sets);
  const expected = [
    /chain INPUT is not a dockwall chain/,
    /chain DOCKWALL-NAT is in table nat/,
    /chain filter DOCKWALL-INPUT is there twice/,
    /chain DOCKWALL-X\\x0a\*nat is not a dockwall chain/,
    /filter INPUT rule 1 "-j ACCEPT": its target/,
    /jump filter OUTPUT -> DOCKWALL-INPUT: dockwall jumps only filter INPUT -> DOCKWALL-INPUT and mangle FORWARD -> DOCKWALL-FORWARD/,
    /jump filter INPUT -> DOCKWALL-INPUT: "-j ACCEPT" is not the jump dockwall writes/,
    /jump filter INPUT -> DOCKWALL-FORWARD: dockwall jumps only/,
  ];
  for (const e of expected) assert.ok(problems.some((p) => e.test(p)), `${e} in ${problems.join(" | ")}`);
  assert.equal(problems.length, expected.length);
});

test("a jump is one the renderer writes: into DOCKWALL-INPUT from filter INPUT, into DOCKWALL-FORWARD from mangle FORWARD, nothing else", () => {
  const good = desiredFor(policy()).ipv4;
  const sets = new Set(["dw4-office"]);
  const spec = (to: string) => `-m comment --comment dockwall -j ${to}`;
  const crafted = (table: "filter" | "mangle", from: string, to: string): RenderedFamily => ({ ...good, jumps: [...good.jumps, { table, from, to, spec: spec(to) }] });
  for (const [table, from, to] of [
    ["filter", "FORWARD", "DOCKWALL-INPUT"],
    ["mangle", "INPUT", "DOCKWALL-FORWARD"],
    ["filter", "INPUT", "DOCKWALL-INPUT-OUTSIDE"],
    ["mangle", "FORWARD", "DOCKWALL-FORWARD-OUTSIDE"],
  ] as const) {
    const problems = familyProblems(crafted(table, from, to), "ipv4", sets);
    assert.ok(problems.some((p) => p.startsWith(`jump ${table} ${from} -> ${to}: dockwall jumps only`)), `${table} ${from} -> ${to}: ${problems.join(" | ")}`);
  }
  assert.deepEqual(good.jumps.map((j) => `${j.table} ${j.from} -> ${j.to}`).sort(), ["filter INPUT -> DOCKWALL-INPUT", "mangle FORWARD -> DOCKWALL-FORWARD"]);
});

test("a LOG prefix of 29 bytes and a comment of 255 are accepted, one byte more is refused, by both checks", () => {
  for (const [ok, bad] of [
    [`-j LOG --log-prefix ${"p".repeat(29)}`, `-j LOG --log-prefix ${"p".repeat(30)}`],
    [`-m comment --comment ${"c".repeat(255)} -j RETURN`, `-m comment --comment ${"c".repeat(256)} -j RETURN`],
  ]) {
    assert.equal(acceptedQuickly(ok!, ctx4), true);
    assert.equal(explainedProblem(ok!, ctx4), undefined);
    assert.equal(acceptedQuickly(bad!, ctx4), false);
    assert.notEqual(explainedProblem(bad!, ctx4), undefined);
  }
});
