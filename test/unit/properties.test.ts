/**
 * Property tests (fast-check): address and port parsing agree with an independent model, and
 * compile + render accept every valid policy, deterministically, with Docker's chains never named.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { memberSpelling, parseCidr, scannedV4Member, scanV4 } from "../../src/policy/addresses.js";
import { parsePort, mergePortRanges } from "../../src/policy/ports.js";
import { loadPolicyText } from "../../src/policy/load.js";
import { formatPolicyError } from "../../src/policy/errors.js";
import { compile } from "../../src/compile/index.js";
import { render } from "../../src/backends/rendered.js";
import { restorePayload } from "../../src/backends/iptables/diff.js";
import { memberDelta } from "../../src/backends/ipset.js";
import type { Facts } from "../../src/facts/types.js";

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join("."));
const v6 = fc.ipV6();

test("IPv4 CIDRs: the network address is the input with host bits cleared, as ipaddr.js computes it", () => {
  fc.assert(
    fc.property(v4, fc.integer({ min: 0, max: 32 }), (addr, prefix) => {
      const r = parseCidr(`${addr}/${prefix}`);
      assert.ok(r.ok);
      const expected = ipaddr.IPv4.networkAddressFromCIDR(`${addr}/${prefix}`).toString();
      assert.equal(r.cidr.cidr, `${expected}/${prefix}`);
      assert.equal(r.cidr.family, "ipv4");
      assert.equal(r.hostBits !== undefined, expected !== addr);
    }),
  );
});

test("the group-file fast path accepts only what parseCidr accepts unchanged, and spells it the same", () => {
  // Near-misses too: leading zeros, big octets, missing parts, odd prefixes, stray characters.
  const octet = fc.oneof(fc.nat(255).map(String), fc.constantFrom("00", "01", "256", "999", "1000", "", "a", "-1"));
  const prefix = fc.oneof(fc.constant(""), fc.nat(40).map((p) => `/${p}`), fc.constantFrom("/", "/01", "/3x", "//8", "/ 8", "/123"));
  const candidate = fc.oneof(
    fc.tuple(octet, octet, octet, octet, prefix).map(([a, b, c, d, p]) => `${a}.${b}.${c}.${d}${p}`),
    fc.tuple(v4, prefix, fc.constantFrom("", ".", " ", "x", ".1")).map(([a, p, tail]) => `${a}${p}${tail}`),
  );
  fc.assert(
    fc.property(candidate, (text) => {
      const key = scanV4(text);
      if (key < 0) return;
      const fast = scannedV4Member(text, key);
      const slow = parseCidr(text);
      assert.ok(slow.ok, text);
      assert.equal(slow.hostBits, undefined, text);
      assert.equal(fast, memberSpelling(slow.cidr), text);
      const [addr, prefix] = slow.cidr.cidr.split("/");
      assert.equal(key, ipaddr.IPv4.parse(addr!).toByteArray().reduce((v, b) => v * 256 + b, 0) * 64 + Number(prefix), text);
    }),
    { numRuns: 5000 },
  );
  // And it does take the common spellings (otherwise the property above holds vacuously).
  const member = (t: string) => (scanV4(t) < 0 ? undefined : scannedV4Member(t, scanV4(t)));
  assert.equal(member("198.18.0.1"), "198.18.0.1");
  assert.equal(member("198.18.0.1/32"), "198.18.0.1");
  assert.equal(member("198.18.0.0/15"), "198.18.0.0/15");
  assert.equal(member("0.0.0.0/0"), "0.0.0.0/0");
  assert.equal(member("198.18.0.1/24"), undefined);
  assert.equal(member("198.018.0.1"), undefined);
});

test("set member delta: what a naive set difference says, for lists in any order", () => {
  const distinctList = fc.uniqueArray(fc.integer({ min: 0, max: 40 }).map((n) => `198.18.0.${n}`), { maxLength: 30 });
  // Often the second list is the first with a few changes, as a group file edit makes it.
  const edited = distinctList.chain((before) =>
    fc.tuple(fc.constant(before), fc.oneof(distinctList, fc.shuffledSubarray(before), fc.subarray(before).map((kept) => [...kept, "198.19.0.1"]))),
  );
  fc.assert(
    fc.property(edited, ([before, after]) => {
      const { added, removed } = memberDelta(before, after);
      assert.deepEqual(new Set(added), new Set(after.filter((m) => !before.includes(m))));
      assert.deepEqual(new Set(removed), new Set(before.filter((m) => !after.includes(m))));
      assert.equal(added.length + removed.length, new Set(added).size + new Set(removed).size);
    }),
    { numRuns: 2000 },
  );
});

test("IPv6 CIDRs: normalised to RFC 5952 with host bits cleared; normalising is idempotent", () => {
  fc.assert(
    fc.property(v6, fc.integer({ min: 0, max: 128 }), (addr, prefix) => {
      const parsed = ipaddr.IPv6.parse(addr);
      fc.pre(!parsed.isIPv4MappedAddress());
      const r = parseCidr(`${addr}/${prefix}`);
      assert.ok(r.ok, `${addr}/${prefix}`);
      const expected = ipaddr.IPv6.networkAddressFromCIDR(`${addr}/${prefix}`).toString();
      assert.equal(r.cidr.cidr, `${expected}/${prefix}`);
      const again = parseCidr(r.cidr.cidr);
      assert.ok(again.ok);
      assert.equal(again.cidr.cidr, r.cidr.cidr);
      assert.equal(again.hostBits, undefined);
    }),
  );
});

test("prefix lengths beyond the family's width are refused", () => {
  fc.assert(
    fc.property(v4, fc.integer({ min: 33, max: 999 }), (addr, prefix) => {
      assert.equal(parseCidr(`${addr}/${prefix}`).ok, false);
    }),
  );
  fc.assert(
    fc.property(v6, fc.integer({ min: 129, max: 999 }), (addr, prefix) => {
      assert.equal(parseCidr(`${addr}/${prefix}`).ok, false);
    }),
  );
});

test("arbitrary text is either refused or parses to something that parses to itself", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 45 }), (text) => {
      const r = parseCidr(text);
      if (!r.ok) return;
      const again = parseCidr(r.cidr.cidr);
      assert.ok(again.ok);
      assert.equal(again.cidr.cidr, r.cidr.cidr);
    }),
  );
});

test("ports: 1-65535 accepted in decimal, everything else refused; ranges need from <= to; only the canonical spelling passes", () => {
  fc.assert(
    fc.property(fc.integer({ min: -100000, max: 200000 }), (n) => {
      assert.equal(parsePort(String(n)).ok, n >= 1 && n <= 65535);
    }),
  );
  // A port is accepted only in the spelling dockwall prints back: no 0x50, 010, +80, " 80", 80.0, 8e1.
  const before = fc.constantFrom("", " ", "+", "-", "0", "00", "0x", "0o");
  const after = fc.constantFrom("", " ", ".0", "e0", "\n");
  fc.assert(
    fc.property(before, fc.integer({ min: 1, max: 65535 }), after, (a, n, b) => {
      assert.equal(parsePort(`${a}${n}${b}`).ok, a === "" && b === "", `${a}${n}${b}`);
    }),
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 12 }), (text) => {
      const r = parsePort(text);
      if (r.ok) assert.equal(r.range.from === r.range.to && !text.includes("-") ? `${r.range.from}` : `${r.range.from}-${r.range.to}`, text);
    }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), (a, b) => {
      const r = parsePort(`${a}-${b}`);
      assert.equal(r.ok, a <= b);
      if (r.ok) assert.deepEqual(r.range, { from: a, to: b });
    }),
  );
});

test("merged port ranges cover exactly the same ports, sorted and disjoint", () => {
  const range = fc.tuple(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 20 })).map(([f, w]) => ({ from: f, to: f + w }));
  fc.assert(
    fc.property(fc.array(range, { maxLength: 8 }), (ranges) => {
      const merged = mergePortRanges(ranges);
      const covered = (rs: { from: number; to: number }[]) => {
        const s = new Set<number>();
        for (const r of rs) for (let p = r.from; p <= r.to; p++) s.add(p);
        return [...s].sort((a, b) => a - b);
      };
      assert.deepEqual(covered(merged), covered(ranges));
      for (let i = 1; i < merged.length; i++) assert.ok(merged[i]!.from > merged[i - 1]!.to + 1);
    }),
  );
});

// ---- compile accepts every valid policy --------------------------------------------------------

const source = fc.oneof(
  fc.constant("any"),
  fc.constantFrom("office", "admins"),
  v4.map((a) => `"${a}"`),
  fc.tuple(v6, fc.integer({ min: 16, max: 128 })).filter(([a]) => !ipaddr.IPv6.parse(a).isIPv4MappedAddress()).map(([a, p]) => `"${a}/${p}"`),
);
const port = fc.oneof(
  fc.integer({ min: 1, max: 65535 }).map(String),
  fc.tuple(fc.integer({ min: 1, max: 65000 }), fc.integer({ min: 0, max: 500 })).map(([a, w]) => `"${a}-${a + w}"`),
);
const entry = (withContainer: boolean) =>
  fc.record({
    ports: fc.array(port, { minLength: 1, maxLength: 3 }),
    proto: fc.constantFrom("tcp", "udp", "[tcp, udp]", undefined),
    from: fc.option(fc.array(source, { minLength: 1, maxLength: 3 }), { nil: undefined }),
    container: withContainer ? fc.option(fc.constantFrom("django", "api", "gone"), { nil: undefined }) : fc.constant(undefined),
  }).map((e) =>
    [
      `  - port: [${e.ports.join(", ")}]`,
      e.proto ? `    proto: ${e.proto}` : "",
      e.from ? `    from: [${e.from.join(", ")}]` : "",
      e.container ? `    container: ${e.container}` : "",
    ].filter(Boolean).join("\n"),
  );
const policyText = fc
  .record({
    host: fc.array(entry(false), { minLength: 1, maxLength: 4 }),
    containers: fc.array(entry(true), { maxLength: 4 }),
    trusted: fc.array(source, { maxLength: 2 }),
    icmp: fc.constantFrom("allow", "drop"),
    def: fc.constantFrom("drop", "reject"),
    drops: fc.boolean(),
    interfaces: fc.option(fc.constantFrom("[eth0]", "[eth0, wg+]"), { nil: undefined }),
  })
  .map((p) =>
    [
      "groups:",
      '  office: [203.0.113.0/24, "2001:db8:1::/48"]',
      "  admins: [192.0.2.10, 198.51.100.0/25]",
      p.interfaces ? `interfaces: ${p.interfaces}` : "",
      p.trusted.length ? `trusted: [${p.trusted.join(", ")}]` : "",
      "host:",
      ...p.host,
      p.containers.length ? "containers:" : "",
      ...p.containers,
      `icmp: ${p.icmp}`,
      `default: ${p.def}`,
      `log: { drops: ${p.drops}, rate: 5/second }`,
      "",
    ].filter((l) => l !== "").join("\n"),
  );

const facts: Facts = {
  docker: {
    reachable: true,
    containers: [
      {
        id: "a1", name: "django", running: true, networks: ["bridge"], addresses: ["172.17.0.3"],
        published: [{ hostIp: "0.0.0.0", hostPort: 8001, containerPort: 8000, proto: "tcp" }],
      },
    ],
    networks: [{ id: "n1", name: "bridge", driver: "bridge", bridge: "docker0", subnets: ["172.17.0.0/16"] }],
  },
  host: { interfaces: [{ name: "eth0", addresses: ["198.51.100.1/24"] }], iptables: "nft" },
} as Facts;

test("every valid policy compiles and renders, deterministically, without naming Docker's chains", async () => {
  await fc.assert(
    fc.asyncProperty(policyText, async (text) => {
      const loaded = await loadPolicyText(text, "p.yaml", async () => "");
      if (!loaded.ok) assert.fail(`${text}\n${loaded.errors.map(formatPolicyError).join("\n")}`);
      const once = render(compile(loaded.policy, facts));
      const twice = render(compile(loaded.policy, facts));
      assert.deepEqual(once, twice);
      for (const family of ["ipv4", "ipv6"] as const) {
        const payload = restorePayload(once[family], new Map());
        assert.ok(payload !== null);
        assert.doesNotMatch(payload, /^(:DOCKER|-[AIDFX] DOCKER)/m);
        // The first rule of each outside chain lets replies through; the last one refuses.
        for (const chain of once[family].chains.filter((c) => c.name.endsWith("-OUTSIDE"))) {
          assert.match(chain.rules[0] ?? "", /ctstate RELATED,ESTABLISHED|icmpv6-type/);
          assert.match(chain.rules.at(-1)!, /-j (DROP|REJECT)/);
        }
      }
    }),
    { numRuns: 200 },
  );
});
