/**
 * audit traces the host's real interfaces, whatever the policy names: a policy that filters only an
 * interface the host does not have leaves the real one open, and audit must say so. Also an
 * interface with no address of its own, and an address reached through another interface.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { FakeNetfilter } from "./fake-netfilter.js";
import { DOCKER_20_10_SAVE } from "./docker-layout.js";
import { Netfilter } from "../../src/backends/netfilter.js";
import { apply } from "../../src/apply/apply.js";
import { render } from "../../src/backends/rendered.js";
import { compile } from "../../src/compile/index.js";
import { parseSave } from "../../src/backends/iptables/save-parser.js";
import { RuleWalker } from "../../src/trace/trace.js";
import { memberSets } from "../../src/trace/sets.js";
import { unenslavedUpLinks } from "../../src/trace/live.js";
import { parseIpsetSave } from "../../src/backends/ipset.js";
import { audit, destinationKinds, type AuditTarget } from "../../src/trace/audit.js";
import type { TraceHost } from "../../src/trace/packet.js";
import type { Facts } from "../../src/facts/types.js";
import { policy } from "./fixtures.js";

const host: TraceHost = {
  interfaces: [
    { name: "lo", addresses: ["127.0.0.1/8", "::1/128"] },
    { name: "eth0", addresses: ["198.18.0.1/24", "2001:db8:a::1/64"] },
    { name: "docker0", addresses: ["172.17.0.1/16"] },
  ],
};

const socket = (port: number, bind = "0.0.0.0"): AuditTarget => ({ kind: "host", proto: "tcp", port, family: "ipv4", bind, what: "host socket" });
const TARGETS: AuditTarget[] = [
  { kind: "container", proto: "tcp", port: 8080, family: "ipv4", bind: "0.0.0.0", what: "container web 80/tcp" },
  socket(22),
  socket(9100),
];

/** dockwall's rules for the fixture policy (SSH and 8080 public, the office trusted) with `interfaces` as given, applied to Docker 20.10's. */
async function auditApplied(interfaces: string[] | undefined): Promise<string[]> {
  // The compile sees the named interface (it existed when the rules were made: renamed since, or a typo
  // the checks let through); the host traced has only eth0.
  const facts: Facts = {
    docker: { reachable: true, containers: [], networks: [{ id: "n", name: "bridge", driver: "bridge", bridge: "docker0", subnets: ["172.17.0.0/16"] }] },
    host: { interfaces: [...host.interfaces, ...(interfaces ?? []).map((name) => ({ name, addresses: [] }))], iptables: "nft" },
  };
  const fake = new FakeNetfilter();
  fake.loadSave("ipv4", DOCKER_20_10_SAVE);
  const nf = new Netfilter(fake, "nft");
  await apply(nf, render(compile(policy({ containers: [], ...(interfaces ? { interfaces } : {}) }), facts)));
  const sets = memberSets(parseIpsetSave((await fake.run("ipset", ["save"])).stdout, () => true));
  const w = new RuleWalker(parseSave(fake.saveText("ipv4")), sets, host);
  const rows = await audit(TARGETS, { ipv4: w, ipv6: w }, host, ["docker0"]);
  return rows.map((r) => `${r.target.port} ${r.reach.who === "some" ? r.reach.sources.join(",") : r.reach.who}`);
}

test("a policy that filters only an interface the host does not have: audit reports the ports open on eth0", async () => {
  // The same policy without `interfaces:` guards eth0: only SSH is public, the rest is the office's.
  assert.deepEqual(await auditApplied(undefined), ["8080 group office", "22 anyone", "9100 group office"]);
  // Filtering only nonexistent0, every port is open on the real interface (what a real connection finds).
  assert.deepEqual(await auditApplied(["nonexistent0"]), ["8080 anyone", "22 anyone", "9100 anyone"]);
});

function walker(rules: string, on: TraceHost): RuleWalker {
  const save = `*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n${rules}COMMIT\n`;
  return new RuleWalker(parseSave(save), memberSets(new Map()), on);
}

test("an interface with no address of its own is traced, to the host's other addresses", async () => {
  // wan1 has no address, yet Linux takes a packet for 198.18.0.1 that comes in on it.
  const withWan: TraceHost = { interfaces: [...host.interfaces, { name: "wan1", addresses: [] }] };
  const w = walker("-A INPUT -i eth0 -j DROP\n", withWan);
  const rows = await audit([socket(9100)], { ipv4: w, ipv6: w }, withWan, ["docker0"]);
  assert.deepEqual(rows[0]!.reach, { who: "anyone" });
});

test("a socket bound to one interface's address is reachable through another", async () => {
  const two: TraceHost = { interfaces: [...host.interfaces, { name: "eth1", addresses: ["198.18.1.1/24"] }] };
  // Only eth1 is guarded; a packet for 198.18.1.1 arriving on eth0 is taken all the same (the weak host model).
  const w = walker("-A INPUT -i eth1 -j DROP\n", two);
  const rows = await audit([socket(5432, "198.18.1.1"), socket(5433, "192.0.2.99")], { ipv4: w, ipv6: w }, two, ["docker0"]);
  assert.deepEqual(
    rows.map((r) => r.reach),
    [{ who: "anyone" }, { who: "nobody" }],
    "reachable through eth0; an address the host does not have is reachable nowhere",
  );
});

test("a rule that guards one address of the host: the others are traced too, one per kind of destination", async () => {
  const bridges: TraceHost = {
    interfaces: [...host.interfaces, { name: "br-1", addresses: ["172.18.0.1/16"] }, { name: "br-2", addresses: ["172.19.0.1/16"] }, { name: "eth1", addresses: ["198.18.1.1/24"] }],
  };
  // 9100 is dropped only when addressed to eth0's address: a stranger on eth0 reaches it at docker0's gateway address.
  const w = walker("-A INPUT -d 198.18.0.1/32 -p tcp -m tcp --dport 9100 -j DROP\n", bridges);
  assert.deepEqual((await audit([socket(9100)], { ipv4: w, ipv6: w }, bridges, ["docker0"]))[0]!.reach, { who: "anyone" });
  // Every address but eth0's is alike to these rules: one of them stands for all.
  assert.deepEqual(await destinationKinds(w, "ipv4", bridges), ["198.18.0.1", "172.17.0.1"]);
  const sets = walker("-A INPUT -m set --match-set inside dst -j DROP\n", bridges);
  assert.equal((await audit([socket(9100)], { ipv4: sets, ipv6: sets }, bridges, ["docker0"]))[0]!.reach.who, "unknown", "a set the kernel does not hold: unknown, never a guess");
});

test("links from ip -j link: up and without a master (bridge ports and bond members are not where packets arrive)", () => {
  const json = JSON.stringify([
    { ifname: "lo", flags: ["LOOPBACK", "UP", "LOWER_UP"] },
    { ifname: "wan1", flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"] },
    { ifname: "ifb0", flags: ["BROADCAST", "NOARP"] },
    { ifname: "veth1a2b3c4", flags: ["BROADCAST", "UP"], master: "docker0" },
    { ifname: "eno1", flags: ["UP"], master: "bond0" },
    { flags: ["UP"] },
    "garbage",
    null,
  ]);
  assert.deepEqual(unenslavedUpLinks(json), ["lo", "wan1"]);
  assert.deepEqual(unenslavedUpLinks("not json"), []);
  assert.deepEqual(unenslavedUpLinks('{"ifname":"x"}'), []);
});

test("audit over random rules that tell the host's addresses apart: one destination per kind finds what every address finds", async () => {
  const multi: TraceHost = {
    interfaces: [
      { name: "lo", addresses: ["127.0.0.1/8"] },
      { name: "eth0", addresses: ["198.18.0.1/24"] },
      { name: "eth1", addresses: ["198.18.1.1/24", "198.18.1.2/24"] },
      { name: "docker0", addresses: ["172.17.0.1/16"] },
      { name: "br-1", addresses: ["172.18.0.1/16"] },
    ],
  };
  const dst = fc.constantFrom("198.18.0.1", "198.18.1.1", "198.18.1.0/24", "198.18.0.0/23", "172.17.0.1", "172.16.0.0/12", "192.0.2.1");
  const match = fc.oneof(
    fc.tuple(fc.constantFrom("", "! "), dst).map(([neg, d]) => `${neg}-d ${d}`),
    fc.tuple(fc.constantFrom("", "! "), dst).map(([neg, d]) => `-m conntrack ${neg}--ctorigdst ${d}`),
    fc.constantFrom("-m set --match-set gateways dst", "-m set ! --match-set gateways dst", "-p tcp -m tcp --dport 22", "-i eth1", "-s 203.0.113.0/24"),
  );
  const rule = fc.tuple(fc.array(match, { minLength: 1, maxLength: 3 }), fc.constantFrom("ACCEPT", "DROP", "RETURN")).map(([m, t]) => `${m.join(" ")} -j ${t}`);
  const ruleset = fc.tuple(fc.array(rule, { maxLength: 6 }), fc.array(rule, { maxLength: 4 }), fc.constantFrom("ACCEPT", "DROP"), dst).map(
    ([input, forward, policy, dnatTo]) =>
      [
        "*nat", ":PREROUTING ACCEPT [0:0]", ":DOCKER - [0:0]",
        "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
        `-A DOCKER -d ${dnatTo} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80`,
        "COMMIT", "*filter", `:INPUT ${policy} [0:0]`, ":FORWARD DROP [0:0]",
        ...input.map((r) => `-A INPUT ${r}`),
        ...forward.map((r) => `-A FORWARD ${r}`),
        "-A FORWARD -d 172.17.0.2/32 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
        "COMMIT", "",
      ].join("\n"),
  );
  const targets = [socket(22), socket(9100), socket(5432, "198.18.1.2"), { ...TARGETS[0]! }];
  const sets = memberSets(new Map([["gateways", { name: "gateways", type: "hash:ip", family: "ipv4" as const, members: ["172.17.0.1", "172.18.0.1"] }]]));
  await fc.assert(
    fc.asyncProperty(ruleset, async (save) => {
      const w = new RuleWalker(parseSave(save), sets, multi);
      const walkers = { ipv4: w, ipv6: w };
      assert.deepEqual(await audit(targets, walkers, multi, ["docker0"]), await audit(targets, walkers, multi, ["docker0"], { destinationKinds: false }));
    }),
    { numRuns: 400 },
  );
});
