/**
 * The fast member checks of state-schema.ts agree with the full one (isAddressOrNetwork, built on
 * parseCidr): they accept only what it accepts, and they do accept ipset's spelling (so the fast
 * path is the one taken).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { membersProblem, quickV6Member } from "../../src/apply/state-schema.js";
import { isAddressOrNetwork } from "../../src/backends/iptables/rule-check.js";
import { memberSpelling, parseCidr } from "../../src/policy/addresses.js";

/** ipset's spelling of a random network: what dockwall records. */
const v6Member = fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })).map(([a, p]) => {
  const r = parseCidr(`${a}/${p}`);
  return r.ok ? memberSpelling(r.cidr) : "::";
});
/** Near misses: what a hand edit or a crafted file might hold. */
const v6Text = fc.oneof(
  v6Member,
  v6Member.map((m) => m.toUpperCase()),
  v6Member.map((m) => m.replace(/:([0-9a-f]{1,3})(?=:|$)/, ":0$1")),
  v6Member.map((m) => `${m}/128`),
  v6Member.map((m) => m.replace("::", ":0:")),
  v6Member.map((m) => m.replace(/:0:/, "::")),
  fc.tuple(v6Member, fc.constantFrom(":", "::", "/", "/01", "/129", " ", "x", ".1", ":1")).map(([m, t]) => m + t),
  fc.constantFrom("::ffff:1.2.3.4", "::ffff:102:304", "::1.2.3.4", ":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "::", "::/0", "1:0:0:1::/64", "1::1:0:0:1"),
  fc.stringMatching(/^[0-9a-f:]{1,20}(\/\d{1,3})?$/),
);

test("the IPv6 fast path accepts only what the full check accepts", () => {
  fc.assert(
    fc.property(v6Text, (m) => {
      if (quickV6Member(m)) assert.ok(isAddressOrNetwork(m, "ipv6"), m);
    }),
    { numRuns: 20_000 },
  );
});

test("the IPv6 fast path accepts every member as ipset spells it", () => {
  fc.assert(
    fc.property(v6Member, (m) => {
      assert.equal(quickV6Member(m), isAddressOrNetwork(m, "ipv6"), m);
      assert.ok(quickV6Member(m), m);
    }),
    { numRuns: 20_000 },
  );
});

const v4Text = fc.oneof(
  fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join(".")),
  fc.tuple(fc.nat(255), fc.nat(255), fc.integer({ min: 0, max: 40 })).map(([a, b, p]) => `${a}.${b}.0.0/${p}`),
  fc.constantFrom("010.0.0.1", "1.2.3", "1.2.3.4/32", "1.2.3.4 ", "256.1.1.1", "1.2.3.4/", "0.0.0.0/0", "10.0.0.0/8", "::1", ""),
);

test("a list of members is accepted in bulk exactly when each member passes the full check", () => {
  for (const family of ["ipv4", "ipv6"] as const) {
    fc.assert(
      fc.property(fc.array(family === "ipv4" ? v4Text : v6Text, { minLength: 1, maxLength: 8 }), (list) => {
        const each = list.every((m) => isAddressOrNetwork(m, family));
        assert.equal(membersProblem(list.join("\n"), family, list.length) === undefined, each, JSON.stringify(list));
      }),
      { numRuns: 5000 },
    );
  }
});

test("a member list's problem names the member and its place; counts must agree", () => {
  assert.match(membersProblem("198.18.0.1\n198.18.0.1/24", "ipv4", 2)!, /member 2 "198.18.0.1\/24" is not an ipv4 address/);
  assert.match(membersProblem("198.18.0.1\nadd dw4-x 1.2.3.4", "ipv4", 2)!, /member 2/);
  assert.match(membersProblem("2001:db8::1\n2001:db8::1\u001b[2J", "ipv6", 2)!, /member 2 "2001:db8::1\\x1b\[2J"/);
  assert.match(membersProblem("198.18.0.1", "ipv4", 2)!, /count 2, but 1 members/);
  assert.match(membersProblem("", "ipv4", 1)!, /count 1, but no members/);
  assert.equal(membersProblem("", "ipv6", 0), undefined);
});

test("a set of 4.5 million IPv4 members (a 64 MiB group file holds that many) is checked, not a stack overflow", () => {
  const members: string[] = [];
  for (let i = 0; i < 4_500_000; i++) members.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  assert.equal(membersProblem(members.join("\n"), "ipv4", members.length), undefined);
  members[members.length - 1] = "10.0.0.1/8";
  assert.match(membersProblem(members.join("\n"), "ipv4", members.length)!, /member 4500000 "10.0.0.1\/8"/);
});
