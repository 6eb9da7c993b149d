/**
 * The policy-level summary of a change (src/plan/): opens, closes, changed sources, group member
 * deltas, capping, no change; read from the rules on both sides, so drift and hand-made rules are
 * counted, never hidden; an unrecognised rule never reads as an opening.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { render, emptyState, type DesiredState } from "../../src/backends/rendered.js";
import { compile } from "../../src/compile/index.js";
import type { Facts } from "../../src/facts/types.js";
import type { Policy, Source } from "../../src/policy/types.js";
import { summarise } from "../../src/plan/summarise.js";
import { ruleMeaning } from "../../src/plan/rule-meaning.js";
import { describeSummary, diffLine, lineText, summaryLines, useColour } from "../../src/plan/describe.js";
import { lazySet } from "../../src/ruleset/members.js";
import { loc, policy } from "./fixtures.js";

const facts: Facts = {
  docker: {
    reachable: true,
    containers: [{ id: "c1", name: "web", running: true, published: [{ hostIp: "0.0.0.0", hostPort: 8080, containerPort: 80, proto: "tcp" }], addresses: [], networks: [] }],
    networks: [],
  },
  host: { interfaces: [{ name: "eth0", addresses: [] }, { name: "eth1", addresses: [] }], iptables: "nft" },
};

const state = (p: Policy): DesiredState => render(compile(p, facts));
const text = (before: DesiredState, after: DesiredState): string[] =>
  describeSummary(summarise(before, after), { rulesHint: "see the rule diff" }).map((l) => lineText(l, false));
const any: Source = { kind: "any" };
const office: Source = { kind: "group", name: "office" };
const addr = (cidr: string): Source => ({ kind: "cidr", cidr: { family: cidr.includes(":") ? "ipv6" : "ipv4", cidr } });
const host = (port: number, from: Source[] = [any], proto: "tcp" | "udp" = "tcp") => ({ ports: [{ from: port, to: port }], protos: [proto], from, loc });

test("no change: an empty summary, and plan's fallback says nothing either", () => {
  assert.deepEqual(summarise(state(policy()), state(policy())), []);
  assert.deepEqual(summaryLines([], false, { rulesHint: "x" }), []);
});

test("a port opened and one closed read as such, in the policy's words", () => {
  const before = state(policy({ host: [host(22)] }));
  const after = state(policy({ host: [host(2222)] }));
  assert.deepEqual(text(before, after), ["opens 2222/tcp to anyone", "closes 22/tcp (was open to anyone)"]);
});

test("a published port by container name, to a group: host port, container and its port, the group", () => {
  const before = state(policy({ containers: [] }));
  const after = state(policy({ containers: [{ container: "web", ports: [{ from: 80, to: 80 }], protos: ["tcp"], from: [office], loc }] }));
  // The docker-proxy rule (filter) and the DNAT one (mangle), in both families: one opening.
  assert.deepEqual(text(before, after), ["opens 8080 (web:80/tcp) to group office"]);
  assert.deepEqual(text(after, before), ["closes 8080 (web:80/tcp) (was open to group office)"]);
});

test("changed sources: what is added and what goes, with what the port stays open to", () => {
  const before = state(policy({ host: [host(22, [office, addr("198.51.100.7/32")])] }));
  const after = state(policy({ host: [host(22, [office, addr("198.51.100.9/32"), addr("2001:db8:5::/48")])] }));
  assert.deepEqual(text(before, after), [
    "opens 22/tcp to 198.51.100.9, 2001:db8:5::/48 (open to group office already)",
    "closes 22/tcp to 198.51.100.7 (still open to group office, 198.51.100.9, 2001:db8:5::/48)",
  ]);
});

test("group member deltas: both families as one group, counted and listed, capped with 'and N more'", () => {
  const group = (ipv4: string[], ipv6: string[] = []) => policy({ groups: [{ name: "office", ipv4, ipv6 }] });
  const before = state(group(["203.0.113.1", "203.0.113.2"], ["2001:db8:1::1"]));
  const after = state(group(["203.0.113.2", "198.51.100.7"], ["2001:db8:1::1", "2001:db8:1::2"]));
  assert.deepEqual(text(before, after), ["group office: +2 -1 members: +198.51.100.7, +2001:db8:1::2, -203.0.113.1"]);
  const many = Array.from({ length: 12 }, (_, i) => `198.51.100.${i + 10}`);
  assert.deepEqual(text(before, state(group(["203.0.113.1", "203.0.113.2", ...many], ["2001:db8:1::1"]))), [
    "group office: +12 members: +198.51.100.10, +198.51.100.11, +198.51.100.12, +198.51.100.13, +198.51.100.14 and 7 more",
  ]);
});

test("group members read back lazily from the record compare like any others", () => {
  const after = state(policy());
  const recorded: DesiredState = { ...after, sets: after.sets.map((s) => lazySet(s.name, s.family, [...s.members, ...(s.family === "ipv4" ? ["192.0.2.1"] : [])].join("\n"), s.members.length + (s.family === "ipv4" ? 1 : 0))) };
  assert.deepEqual(text(recorded, after), ["group office: -1 member: -192.0.2.1"]);
});

test("sources are capped too", () => {
  const many = Array.from({ length: 8 }, (_, i) => addr(`198.51.100.${i + 1}/32`));
  assert.deepEqual(text(state(policy({ host: [] })), state(policy({ host: [host(22, many)] }))), [
    "opens 22/tcp to 198.51.100.1, 198.51.100.2, 198.51.100.3, 198.51.100.4, 198.51.100.5 and 3 more",
  ]);
});

test("the first apply puts dockwall in front and lists what it opens; remove takes it out without claiming to close anything", () => {
  const full = state(policy());
  assert.deepEqual(text(emptyState(), full), [
    "puts dockwall in front of IPv4 and IPv6: from outside, everything not opened below is refused (drop)",
    "opens ping to anyone",
    "opens every port (trusted) to group office",
    "opens 22/tcp to anyone",
    "opens published 8080/tcp to anyone",
    "group office: +3 members (new): +203.0.113.0/24, +198.18.0.5, +2001:db8:1::/48",
  ]);
  // What a policy chose beyond the usual is said on the way in too (no group: none is used).
  assert.deepEqual(text(emptyState(), state(policy({ interfaces: ["eth0"], trusted: [], host: [], containers: [], icmp: "drop" }))).slice(1), ["filters traffic in on eth0"]);
  assert.deepEqual(text(full, emptyState()), [
    "takes dockwall out of IPv4 and IPv6: it refuses nothing there any more, the host's own rules and Docker's decide alone",
    "group office: -3 members (none left): -203.0.113.0/24, -198.18.0.5, -2001:db8:1::/48",
  ]);
});

test("settings: default, log, interfaces, routes, ping, swarm", () => {
  const before = state(policy());
  const after = state(
    policy({
      default: "reject",
      log: { drops: true, rate: "5/minute" },
      interfaces: ["eth0"],
      routes: [{ in: "eth0", out: "eth1", loc }],
      icmp: "drop",
      swarm: { peers: [office] },
    }),
  );
  assert.deepEqual(text(before, after), [
    "opens the swarm ports to group office",
    "opens forwarding from eth0 to eth1",
    "closes ping (was open to anyone)",
    "filters traffic in on eth0 (was every interface but loopback and Docker's bridges)",
    "Docker bridges passed untouched: -docker+ -br-+",
    "refuses the rest by reject (was drop)",
    "logs refused packets at 5/minute",
  ]);
});

test("rules that change but open or close nothing (drift: a docker-proxy rule deleted by hand) are counted, not hidden", () => {
  const after = state(policy());
  const chain = after.ipv4.chains.find((c) => c.name === "DOCKWALL-INPUT-OUTSIDE")!;
  const drifted: DesiredState = {
    ...after,
    ipv4: { ...after.ipv4, chains: after.ipv4.chains.map((c) => (c === chain ? { ...c, rules: c.rules.filter((r) => !r.includes("via docker-proxy")) } : c)) },
  };
  assert.deepEqual(text(drifted, after), ["and 1 rule change that opens or closes nothing: the kernel differs from the policy there (see the rule diff)"]);
  // A change only the kernel's order shows (a jump put back first) still gets a line.
  assert.deepEqual(
    summaryLines([], true, { rulesHint: "--verbose shows them" }).map((l) => lineText(l, false)),
    ["opens and closes nothing: the rules are brought back to what the policy says (--verbose shows them)"],
  );
});

test("a hand-made rule is never read as an opening: it is counted as a rule change when it goes", () => {
  const after = state(policy());
  const withExtra = (rule: string): DesiredState => ({
    ...after,
    ipv4: { ...after.ipv4, chains: after.ipv4.chains.map((c) => (c.name === "DOCKWALL-INPUT-OUTSIDE" ? { ...c, rules: [rule, ...c.rules] } : c)) },
  });
  for (const rule of [
    '-p tcp -m tcp --dport 22 -m comment --comment "host 22/tcp" -j DROP',
    '-p tcp -m tcp ! --dport 22 -m comment --comment "host 22/tcp" -j RETURN',
    '-p tcp -m tcp --dport 3306 -m comment --comment "host 3306/tcp" -m mac --mac-source 00:11:22:33:44:55 -j RETURN',
    "-p tcp -m tcp --dport 3306 -j ACCEPT",
  ]) {
    assert.equal(ruleMeaning("ipv4", "DOCKWALL-INPUT-OUTSIDE", rule).kind, "unknown", rule);
    assert.deepEqual(text(withExtra(rule), after), ["and 1 rule change that opens or closes nothing: the kernel differs from the policy there (see the rule diff)"], rule);
  }
});

test("text read back from the kernel cannot drive the terminal", () => {
  const after = state(policy({ groups: [{ name: "office", ipv4: ["203.0.113.1"], ipv6: [] }] }));
  const hostile: DesiredState = { ...after, sets: after.sets.map((s) => (s.family === "ipv4" ? { ...s, members: ["203.0.113.1", "\x1b[2J"] } : s)) };
  const lines = text(hostile, after);
  assert.ok(lines.every((l) => !l.includes("\x1b")), lines.join("\n"));
  assert.deepEqual(lineText(diffLine("    + -m comment --comment \x1b[31m -j DROP"), false), "    + -m comment --comment \\u001b[31m -j DROP");
});

test("colour: green additions and red removals on a terminal only; none piped, with NO_COLOR set, or with TERM=dumb", () => {
  assert.equal(useColour(true, { TERM: "xterm-256color" }), true);
  assert.equal(useColour(false, {}), false);
  assert.equal(useColour(undefined, {}), false);
  assert.equal(useColour(true, { NO_COLOR: "1" }), false);
  assert.equal(useColour(true, { NO_COLOR: "" }), true, "no-color.org: an empty NO_COLOR is not set");
  assert.equal(useColour(true, { TERM: "dumb" }), false);
  const [opens, closes] = describeSummary(summarise(state(policy({ host: [host(22)] })), state(policy({ host: [host(2222)] }))), { rulesHint: "" });
  assert.equal(lineText(opens!, true), "\x1b[32mopens 2222/tcp to anyone\x1b[0m");
  assert.equal(lineText(closes!, true), "\x1b[31mcloses 22/tcp\x1b[0m (was open to anyone)");
  assert.equal(lineText(diffLine("    - -p tcp"), true), "\x1b[31m    - -p tcp\x1b[0m");
});

test("every rule the compiler writes has a meaning: none of a rich policy's rules is unknown", () => {
  const rich = state(
    policy({
      default: "reject",
      log: { drops: true, rate: "10/minute" },
      routes: [{ in: "eth0", out: "eth1", loc }],
      swarm: { peers: [office, addr("2001:db8:9::/48")] },
      host: [host(22, [office, addr("198.51.100.7/32")]), { ports: [{ from: 8000, to: 8010 }], protos: ["tcp", "udp"], from: [any], loc }],
      containers: [
        { ports: [{ from: 9000, to: 9005 }], protos: ["tcp"], from: [office], loc },
        { container: "web", ports: [{ from: 80, to: 80 }], protos: ["tcp"], from: [addr("2001:db8:7::1/128")], loc },
      ],
    }),
  );
  const withBinding = render(
    compile(policy({ containers: [{ container: "api", ports: [{ from: 9000, to: 9000 }], protos: ["udp"], from: [any], loc }] }), {
      ...facts,
      docker: { ...facts.docker, containers: [{ id: "c2", name: "api", running: true, published: [{ hostIp: "198.51.100.1", hostPort: 9001, containerPort: 9000, proto: "udp" }], addresses: [], networks: [] }] },
    }),
  );
  for (const s of [rich, withBinding, state(policy({ interfaces: ["eth0"] }))]) {
    for (const f of ["ipv4", "ipv6"] as const) {
      for (const c of s[f].chains) for (const r of c.rules) assert.notEqual(ruleMeaning(f, c.name, r).kind, "unknown", `${f} ${c.name} ${r}`);
    }
  }
  assert.deepEqual(text(state(policy({ containers: [] })), withBinding), ["opens 198.51.100.1:9001 (api:9000/udp) to anyone"]);
});
