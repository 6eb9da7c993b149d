/**
 * The tracer on Docker's own layouts (20.10 and 28), alone and with dockwall's rules applied by the
 * stateful fake: verdicts and the path, and `unknown` (never a guess) for what it does not understand.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeNetfilter } from "./fake-netfilter.js";
import { DOCKER_20_10_SAVE, DOCKER_28_SAVE } from "./docker-layout.js";
import { Netfilter } from "../../src/backends/netfilter.js";
import { apply } from "../../src/apply/apply.js";
import { render } from "../../src/backends/rendered.js";
import { compile } from "../../src/compile/index.js";
import { parseSave } from "../../src/backends/iptables/save-parser.js";
import { parseIpsetSave } from "../../src/backends/ipset.js";
import { RuleWalker } from "../../src/trace/trace.js";
import { words, parseRule } from "../../src/trace/rule.js";
import { AddressSet } from "../../src/trace/address-set.js";
import type { Probe } from "../../src/trace/packet.js";
import type { Facts } from "../../src/facts/types.js";
import { loc, policy } from "./fixtures.js";
import { audit, outsideInterfaces, sourceKinds } from "../../src/trace/audit.js";
import { auditTargets, declaredPublic } from "../../src/cli/audit.js";
import { parseProcNet } from "../../src/facts/sockets.js";
import { SshConnectionUnreadable, sshSession, traceSessionAfter } from "../../src/trace/lockout.js";
import { readLiveTables } from "../../src/trace/live.js";
import { memberSets, traceResolving } from "../../src/trace/sets.js";

const host = {
  interfaces: [
    { name: "lo", addresses: ["127.0.0.1/8", "::1/128"] },
    { name: "eth0", addresses: ["198.18.0.1/24", "2001:db8:a::1/64"] },
    { name: "docker0", addresses: ["172.17.0.1/16"] },
    { name: "bridge1", addresses: ["192.0.2.1/24"] },
  ],
};

const facts: Facts = { docker: { reachable: true, containers: [], networks: [] }, host: { interfaces: [], iptables: "nft" } };

async function walker(save: string, withDockwall: boolean): Promise<RuleWalker> {
  const fake = new FakeNetfilter();
  fake.loadSave("ipv4", save);
  if (withDockwall) await apply(new Netfilter(fake, "nft"), render(compile(policy({ containers: [] }), facts)));
  const sets = parseIpsetSave((await fake.run("ipset", ["save"])).stdout, () => true);
  return new RuleWalker(parseSave(fake.saveText("ipv4")), memberSets(sets), host);
}

const probe = (src: string, dport: number, over: Partial<Probe> = {}): Probe => ({
  family: "ipv4",
  proto: "tcp",
  src,
  dst: "198.18.0.1",
  dport,
  inIface: "eth0",
  ...over,
});

test("Docker 20.10 alone: a stranger reaches the published port, through DNAT and Docker's ACCEPT", async () => {
  const w = await walker(DOCKER_20_10_SAVE, false);
  const r = w.trace(probe("198.18.9.9", 8080));
  assert.equal(r.verdict, "accept");
  assert.equal(r.path, "forward");
  assert.deepEqual(r.dnat, { dst: "172.17.0.2", dport: 80 });
  assert.ok(r.steps.some((s) => s.chain === "DOCKER" && s.table === "filter" && s.action === "ACCEPT"));
  // A port nobody published: INPUT's policy ACCEPT (no firewall at all).
  assert.equal(w.trace(probe("198.18.9.9", 5555)).path, "input");
  // Routed straight to the container's address (no DNAT): Docker 20.10's own rule lets it in.
  const direct = w.trace(probe("198.18.9.9", 80, { dst: "172.17.0.2" }));
  assert.equal(direct.verdict, "accept");
  assert.equal(direct.dnat, undefined);
  // To a port the container did not publish: FORWARD's policy DROP.
  assert.equal(w.trace(probe("198.18.9.9", 81, { dst: "172.17.0.2" })).verdict, "drop");
});

test("Docker 20.10 with dockwall: the stranger is dropped by dockwall's rule, the office gets in", async () => {
  const w = await walker(DOCKER_20_10_SAVE, true);
  const stranger = w.trace(probe("198.18.9.9", 8080));
  assert.equal(stranger.verdict, "drop");
  const last = stranger.steps.at(-1)!;
  assert.equal(last.chain, "DOCKWALL-FORWARD-OUTSIDE");
  assert.match(last.rule, /default drop/);
  const office = w.trace(probe("203.0.113.7", 8080));
  assert.equal(office.verdict, "accept");
  assert.ok(office.steps.some((s) => /--match-set dw4-office src/.test(s.rule) && s.action === "RETURN"));
  // SSH is open to anyone, another host port is not.
  assert.equal(w.trace(probe("198.18.9.9", 22)).verdict, "accept");
  assert.equal(w.trace(probe("198.18.9.9", 23)).verdict, "drop");
  // Ping is allowed by the policy; from Docker's bridge everything is.
  assert.equal(w.trace(probe("198.18.9.9", 0, { proto: "icmp", icmpType: 8 })).verdict, "accept");
  assert.equal(w.trace(probe("172.17.0.2", 23, { inIface: "docker0", dst: "172.17.0.1" })).verdict, "accept");
});

test("Docker 28 alone: raw PREROUTING drops direct routing and remote access to a loopback-published port", async () => {
  const w = await walker(DOCKER_28_SAVE, false);
  assert.equal(w.trace(probe("198.18.9.9", 8080)).verdict, "accept");
  const direct = w.trace(probe("198.18.9.9", 80, { dst: "192.0.2.2" }));
  assert.equal(direct.verdict, "drop");
  assert.equal(direct.steps.at(-1)!.table, "raw");
  assert.equal(w.trace(probe("198.18.9.9", 8081, { dst: "127.0.0.1" })).verdict, "drop");
});

test("Docker 28 with dockwall: closed to the stranger, open to the office", async () => {
  const w = await walker(DOCKER_28_SAVE, true);
  assert.equal(w.trace(probe("198.18.9.9", 8080)).verdict, "drop");
  assert.equal(w.trace(probe("203.0.113.7", 8080)).verdict, "accept");
});

test("a match the tracer does not understand makes the verdict unknown and names the rule", async () => {
  const save = DOCKER_20_10_SAVE.replace("-A DOCKER-USER -j RETURN", "-A DOCKER-USER -m recent --name x --rcheck -j DROP\n-A DOCKER-USER -j RETURN");
  const w = await walker(save, false);
  const r = w.trace(probe("198.18.9.9", 8080));
  assert.equal(r.verdict, "unknown");
  assert.match(r.reason!, /DOCKER-USER rule 1 .*-m recent/);
  // A rule that is not reached does not matter: the host path never meets it.
  assert.equal(w.trace(probe("198.18.9.9", 22)).verdict, "accept");
});

test("negation, interface wildcards, multiport, port ranges, gotos and RETURN from a built-in chain", () => {
  const save = `*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
-A INPUT -i eth+ ! -s 198.18.0.0/16 -j DROP
-A INPUT -p tcp -m multiport --dports 22,80,8000:8010 -j A
-A INPUT -p udp -m udp --dport 53 -j RETURN
-A INPUT -j ACCEPT
-A A -s 198.18.1.0/24 -g B
-A A -j ACCEPT
-A B -p tcp -m tcp ! --dport 8000:8010 -j REJECT --reject-with icmp-port-unreachable
COMMIT
`;
  const w = new RuleWalker(parseSave(save), memberSets(new Map()), host);
  assert.equal(w.trace(probe("203.0.113.1", 22)).verdict, "drop");
  assert.equal(w.trace(probe("198.18.2.1", 80)).verdict, "accept");
  assert.equal(w.trace(probe("198.18.1.1", 80)).verdict, "reject");
  // B ends without a verdict: reached by a goto from A, it returns where A would have, after
  // INPUT's jump to A (to its ACCEPT), not into A (whose ACCEPT would say the same, so check the path).
  const fromB = w.trace(probe("198.18.1.1", 8005));
  assert.equal(fromB.verdict, "accept");
  assert.deepEqual(fromB.steps.at(-1), { table: "filter", chain: "INPUT", index: 4, rule: "-A INPUT -j ACCEPT", action: "ACCEPT" });
  assert.equal(w.trace(probe("198.18.2.1", 53, { proto: "udp" })).verdict, "drop", "RETURN in INPUT means its policy");
  assert.equal(w.trace(probe("198.18.2.1", 9999)).verdict, "accept");
});

test("rule words are split as iptables-save quotes them", () => {
  assert.deepEqual(words('-m comment --comment "a \\"b\\" c" -j LOG --log-prefix "x: "'), ["-m", "comment", "--comment", 'a "b" c', "-j", "LOG", "--log-prefix", "x: "]);
  assert.equal(parseRule("-m physdev --physdev-in veth0 -j DROP").unknown, "-m physdev");
  assert.equal(parseRule("-p tcp -m tcp --dport 22 --tcp-option 8 -j DROP").unknown, "-m tcp --tcp-option");
});

test("address sets match members by prefix", () => {
  const s = new AddressSet(["198.18.0.0/15", "203.0.113.7", "10.1.2.128/25"], "ipv4");
  assert.ok(s.has("198.19.255.1"));
  assert.ok(s.has("203.0.113.7"));
  assert.ok(!s.has("203.0.113.8"));
  assert.ok(s.has("10.1.2.200"));
  assert.ok(!s.has("10.1.2.100"));
  const v6 = new AddressSet(["2001:db8:1::/48"], "ipv6");
  assert.ok(v6.has("2001:db8:1:ffff::1"));
  assert.ok(!v6.has("2001:db8:2::1"));
  assert.equal(AddressSet.firstAddress("198.18.0.0/15"), "198.18.0.1");
});

test("audit: a stand-in for each set and address the rules name, a stranger to all, and who gets in", async () => {
  const w = await walker(DOCKER_20_10_SAVE, true);
  const kinds = await sourceKinds(w, "ipv4", ["172.17.0.1/16", "192.0.2.1/24"]);
  assert.deepEqual(kinds.map((k) => k.label), ["anyone", "group office"]);
  assert.ok(!kinds[0]!.address.startsWith("203.0.113."), "the stranger is outside every set");
  const rows = await audit(
    [
      { kind: "container", proto: "tcp", port: 8080, family: "ipv4", bind: "0.0.0.0", what: "container web 80/tcp" },
      { kind: "host", proto: "tcp", port: 22, family: "ipv4", bind: "0.0.0.0", what: "host socket" },
      { kind: "host", proto: "tcp", port: 9100, family: "ipv4", bind: "0.0.0.0", what: "host socket" },
      { kind: "host", proto: "tcp", port: 6379, family: "ipv4", bind: "127.0.0.1", what: "host socket" },
    ],
    { ipv4: w, ipv6: w },
    host,
    ["bridge1"],
  );
  assert.deepEqual(
    rows.map((r) => r.reach),
    [{ who: "some", sources: ["group office"] }, { who: "anyone" }, { who: "some", sources: ["group office"] }, { who: "local only" }],
  );
  assert.deepEqual(outsideInterfaces(host, ["bridge1"]).map((i) => i.name), ["eth0"]);
});

test("audit targets: published ports per family, docker-proxy's sockets folded in, a [::] socket counted for IPv4 too", () => {
  const containers = [
    { id: "1", name: "db", running: true, addresses: [], networks: [], published: [
      { hostIp: "0.0.0.0", hostPort: 5432, containerPort: 5432, proto: "tcp" as const },
      { hostIp: "::", hostPort: 5432, containerPort: 5432, proto: "tcp" as const },
    ] },
  ];
  const sockets = [
    { proto: "tcp" as const, family: "ipv4" as const, address: "0.0.0.0", port: 5432, inode: 11 },
    { proto: "tcp" as const, family: "ipv6" as const, address: "::", port: 22, inode: 12 },
  ];
  const t = auditTargets(containers, sockets);
  assert.deepEqual(t.map((x) => `${x.port} ${x.family} ${x.kind}`), ["22 ipv4 host", "22 ipv6 host", "5432 ipv4 container", "5432 ipv6 container"]);
  const p = policy({ containers: [{ container: "db", ports: [{ from: 5432, to: 5432 }], protos: ["tcp"], from: [{ kind: "any" }], loc }] });
  assert.equal(declaredPublic(p, t[2]!, containers), true);
  assert.equal(declaredPublic(p, t[0]!, containers), true, "22/tcp is public in the fixture policy");
  assert.equal(declaredPublic(undefined, t[2]!, containers), false);
});

test("listening sockets are read from /proc/net as the kernel prints them", () => {
  const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100A8C0:0016 0200A8C0:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0`;
  assert.deepEqual(parseProcNet(tcp, "tcp", "ipv4"), [
    { proto: "tcp", family: "ipv4", address: "0.0.0.0", port: 22, inode: 1 },
    { proto: "tcp", family: "ipv4", address: "127.0.0.1", port: 8080, inode: 2 },
  ]);
  const tcp6 = `  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A
   1: B80D0120000000000000000001000000:01BB 00000000000000000000000000000000:0000 0A`;
  assert.deepEqual(parseProcNet(tcp6, "tcp", "ipv6").map((s) => `${s.address} ${s.port}`), [":: 22", "2001:db8::1 443"]);
});

test("lock-out guard: the SSH session is traced through the rules as they will be after apply", async () => {
  const fake = new FakeNetfilter();
  fake.loadSave("ipv4", DOCKER_20_10_SAVE);
  const nf = new Netfilter(fake, "nft");
  // dockwall is already applied with SSH open; the next policy closes it.
  await apply(nf, render(compile(policy(), facts)));
  const live = await readLiveTables(nf, host);
  const session = sshSession("198.18.9.9 51000 198.18.0.1 22")!;
  assert.deepEqual(session, { client: "198.18.9.9", server: "198.18.0.1", port: 22, family: "ipv4" });
  assert.equal((await traceSessionAfter(live, render(compile(policy(), facts)), session)).verdict, "accept");
  const closed = render(compile(policy({ host: [] }), facts));
  const r = await traceSessionAfter(live, closed, session);
  assert.equal(r.verdict, "drop");
  assert.match(r.steps.at(-1)!.rule, /default drop/);
  assert.equal(r.inIface, "eth0");
  // From the office (trusted) the same policy lets the session back in; the live kernel was not changed.
  assert.equal((await traceSessionAfter(live, closed, sshSession("::ffff:203.0.113.9 51000 198.18.0.1 22")!)).verdict, "accept");
  assert.equal((await traceResolving(new RuleWalker(live.tables.ipv4, live.sets, host), probe("198.18.9.9", 22))).verdict, "accept");
  assert.equal(sshSession(undefined), undefined);
  assert.equal(sshSession(""), undefined);
});

test("lock-out guard: an SSH_CONNECTION that is set but cannot be read refuses, saying why and that --force applies anyway", () => {
  assert.deepEqual(sshSession("2001:db8::9 51000 2001:db8::1 2222"), { client: "2001:db8::9", server: "2001:db8::1", port: 2222, family: "ipv6" });
  const cases: [string, RegExp][] = [
    ["garbage", /1 field, expected 4/],
    ["   ", /0 fields, expected 4/],
    ["198.18.9.9 51000 198.18.0.1", /3 fields, expected 4/],
    ["198.18.9.9 51000 198.18.0.1 22 extra", /5 fields, expected 4/],
    ["198.18.9.300 51000 198.18.0.1 22", /the client address "198\.18\.9\.300" is not an IPv4 or IPv6 address/],
    ["198.18.9.9 51000 127.1 22", /the server address "127\.1" is not an IPv4 or IPv6 address/],
    ["198.18.9.9 51000 198.18.0.1 0", /the server port "0" is not a port \(1-65535\)/],
    ["198.18.9.9 51000 198.18.0.1 65536", /the server port "65536" is not a port/],
    ["198.18.9.9 51000 198.18.0.1 0x16", /the server port "0x16" is not a port/],
    ["198.18.9.9 51000 198.18.0.1 22.0", /the server port "22\.0" is not a port/],
    ["198.18.9.9 -1 198.18.0.1 22", /the client port "-1" is not a port/],
  ];
  for (const [value, why] of cases) {
    assert.throws(
      () => sshSession(value),
      (e: unknown) => e instanceof SshConnectionUnreadable && why.test(e.message) && /nothing was applied/.test(e.message) && /--force/.test(e.message),
      value,
    );
  }
  // A value with a newline is shown escaped, never raw.
  assert.throws(() => sshSession("198.18.9.9 1\nfake: line"), (e: unknown) => e instanceof Error && !e.message.includes("1\nfake") && e.message.includes(String.raw`"198.18.9.9 1\nfake: line"`));
});
