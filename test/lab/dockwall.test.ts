/**
 * End-to-end: dockwall against a real dockerd (20.10 and 28), real netfilter and real connections, in all four
 * of Docker 20.10's modes and two of 28's (IPv6 through docker-proxy or Docker's own ip6tables DNAT; ip_forward on or off
 * before dockerd starts, which decides Docker's FORWARD policy). Every behaviour a user relies on is
 * asserted with probes from the trusted client, the admin and a stranger, over IPv4 and IPv6.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import path from "node:path";
import { Lab, type LabOptions } from "./lab.js";
import { dockwallOk, mismatches } from "./checks.js";
import { disagreements } from "./tracer-agreement.js";
import { ADMINS_LIST, LAB_POLICY, OPEN_WITHOUT_DOCKWALL, POLICY_TARGETS, writeLabPolicy } from "./expectations.js";

const MODES: LabOptions[] = [
  { docker: "20.10", ipv6Mode: "proxy", ipForwardBeforeDocker: false },
  { docker: "20.10", ipv6Mode: "proxy", ipForwardBeforeDocker: true },
  { docker: "20.10", ipv6Mode: "ip6tables", ipForwardBeforeDocker: false },
  { docker: "20.10", ipv6Mode: "ip6tables", ipForwardBeforeDocker: true },
  // Docker 28: its own IPv6 DNAT (--ipv6) with ip_forward off, and IPv6 through docker-proxy (no
  // --ipv6, the default most hosts run) with it on: both IPv6 paths and both FORWARD policies.
  { docker: "28", ipv6Mode: "ip6tables", ipForwardBeforeDocker: false },
  { docker: "28", ipv6Mode: "proxy", ipForwardBeforeDocker: true },
];
const FAMILIES = ["ipv4", "ipv6"] as const;

/** Docker's own chains (everything not dockwall's), to show they are never rewritten. */
async function dockerChains(lab: Lab): Promise<string> {
  const parts: string[] = [];
  for (const family of FAMILIES) {
    const text = await lab.hostIptablesSave(family);
    parts.push(
      ...text
        .split("\n")
        .filter((l) => /^-A DOCKER/.test(l) || /^:DOCKER/.test(l))
        .map((l) => `${family} ${l.replace(/\[\d+:\d+\]/, "")}`),
    );
  }
  return parts.sort().join("\n");
}

for (const mode of MODES) {
  const name = `IPv6 via ${mode.ipv6Mode === "proxy" ? "docker-proxy" : "Docker's ip6tables DNAT"}, ip_forward ${mode.ipForwardBeforeDocker ? "on" : "off"} before dockerd`;
  describe(`dockwall on Docker ${mode.docker}: ${name}`, () => {
    let lab: Lab;
    let policy: string;
    let dockerBefore: string;

    before(async () => {
      lab = await Lab.create(mode);
      policy = await writeLabPolicy(lab.workDir);
    });
    after(async () => {
      await lab?.destroy();
    });

    it("without dockwall, a stranger reaches the database and the host over IPv4 and IPv6", async () => {
      assert.deepEqual(await mismatches(lab, OPEN_WITHOUT_DOCKWALL), []);
      dockerBefore = await dockerChains(lab);
    });

    it("Docker's rules alone: the tracer's verdict is the real outcome on every probe", async () => {
      const { wrong, compared, open } = await disagreements(lab);
      assert.deepEqual(wrong, []);
      assert.ok(open > compared / 2, `most of the matrix is open without a firewall (${open} of ${compared})`);
    });

    it("apply opens exactly what the policy says, over IPv4 and IPv6", async () => {
      const out = await dockwallOk(lab, ["apply", "-c", policy]);
      assert.match(out, /applied/);
      assert.deepEqual(await mismatches(lab, POLICY_TARGETS), []);
    });

    it("dockwall's rules beside Docker's: the tracer's verdict is the real outcome on every probe", async () => {
      const { wrong, compared, open } = await disagreements(lab);
      assert.deepEqual(wrong, []);
      assert.ok(open > 0 && open < compared, `the policy both lets in and keeps out (${open} of ${compared} open)`);
    });

    it("Docker's chains are untouched by apply", async () => {
      assert.equal(await dockerChains(lab), dockerBefore);
    });

    it("a re-apply changes nothing and says so", async () => {
      const before4 = await lab.hostIptablesSave("ipv4");
      const out = await dockwallOk(lab, ["apply", "-c", policy]);
      assert.match(out, /no changes/);
      const strip = (s: string) => s.replace(/^#.*$/gm, "").replace(/\[\d+:\d+\]/g, "");
      assert.equal(strip(await lab.hostIptablesSave("ipv4")), strip(before4));
      const status = await lab.dockwall(["status", "--json"]);
      assert.equal(status.code, 0, status.stdout + status.stderr);
      assert.equal(JSON.parse(status.stdout).inSync, true);
    });

    it("replies and the containers' own outgoing connections keep working", async () => {
      // The stranger cannot connect in, but a container and the host can connect out to it.
      const listener = lab.spawnIn(lab.clients.stranger.ns, "socat", ["TCP-LISTEN:7777,fork,reuseaddr", "SYSTEM:echo outside"]);
      try {
        await new Promise((r) => setTimeout(r, 300));
        const fromContainer = await lab.docker(["exec", "web", "socat", "-T2", "-", `TCP:${lab.clients.stranger.ipv4}:7777,connect-timeout=2`]);
        assert.match(fromContainer.stdout, /outside/, `container -> outside: ${fromContainer.stderr}`);
        const fromHost = await lab.exec(lab.hostNs, "socat", ["-T2", "-", `TCP:${lab.clients.stranger.ipv4}:7777,connect-timeout=2`]);
        assert.match(fromHost.stdout, /outside/, `host -> outside: ${fromHost.stderr}`);
      } finally {
        listener.kill();
      }
    });

    it("a container started after apply is closed to strangers, open to trusted sources", async () => {
      await lab.startContainer({ name: "cache", args: ["-p", "6379:6379"], command: lab.serviceCommand(6379, "cache", "tcp") });
      assert.deepEqual(
        await mismatches(lab, [{ what: "cache 6379 started after apply", proto: "tcp", port: 6379, allowed: ["trusted"] }]),
        [],
      );
    });

    it("an established connection survives a re-apply that changes the rules", async () => {
      const conn = lab.openConnection(lab.clients.trusted, "ipv4", 5432);
      try {
        assert.equal(await conn.exchange("one"), "one");
        // Drop the trusted group's IPv4 range: new connections from it are refused from now on...
        const changed = LAB_POLICY.replace("office: [198.18.0.8/29, ", "office: [");
        await writeFile(policy, changed);
        assert.match(await dockwallOk(lab, ["apply", "-c", policy]), /applied/);
        // ...but the connection that is already open keeps working.
        assert.equal(await conn.exchange("two"), "two");
        assert.equal(await lab.probe(lab.clients.trusted, "ipv4", "tcp", 5432), false);
      } finally {
        conn.close();
        await writeFile(policy, LAB_POLICY);
        await dockwallOk(lab, ["apply", "-c", policy]);
      }
    });

    it("rollback restores the previous rules exactly", async () => {
      const applied = await lab.hostIptablesSave("ipv4");
      const opened = LAB_POLICY.replace("  - port: 8080          # web (8080 -> 80): public", "  - port: [8080, 5432]");
      await writeFile(policy, opened);
      await dockwallOk(lab, ["apply", "-c", policy]);
      assert.equal(await lab.probe(lab.clients.stranger, "ipv4", "tcp", 5432), true, "the opened policy lets the stranger in");
      await dockwallOk(lab, ["rollback"]);
      assert.equal(await lab.probe(lab.clients.stranger, "ipv4", "tcp", 5432), false, "rolled back: closed again");
      const strip = (s: string) => s.replace(/^#.*$/gm, "").replace(/\[\d+:\d+\]/g, "");
      assert.equal(strip(await lab.hostIptablesSave("ipv4")), strip(applied));
      await writeFile(policy, LAB_POLICY);
    });

    it("interfaces: a name the host lacks, or a typo of eth0, is refused with its line and a stranger still cannot reach what was closed; eth0, an interface without an address and a wildcard for later apply", async () => {
      const { stranger } = lab.clients;
      const closed = [
        { client: stranger, family: "ipv4" as const, proto: "tcp" as const, port: 9100 },
        { client: stranger, family: "ipv6" as const, proto: "tcp" as const, port: 9100 },
        { client: stranger, family: "ipv4" as const, proto: "tcp" as const, port: 5432 },
        { client: stranger, family: "ipv6" as const, proto: "tcp" as const, port: 5432 },
      ];
      const escaped = policy.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      try {
        await dockwallOk(lab, ["apply", "-c", policy]);
        assert.deepEqual(await lab.probeMany(closed), [false, false, false, false], "closed under the lab policy");
        // The lab's outside interface is eth0: nonexistent0 is a name no host has, eth1 a typo of eth0.
        for (const name of ["nonexistent0", "eth1"]) {
          await writeFile(policy, `interfaces: [${name}]\n${LAB_POLICY}`);
          const r = await lab.dockwall(["apply", "-c", policy]);
          assert.deepEqual(await lab.probeMany(closed), [false, false, false, false], `a stranger after apply with interfaces: [${name}]`);
          assert.equal(r.code, 1, r.stdout + r.stderr);
          assert.match(r.stderr, new RegExp(`^${escaped}:1:14: interface "${name}" does not exist on this host`, "m"));
        }
        // An interface that exists without an address (as a WireGuard interface before it is configured;
        // getifaddrs does not list it), and a wildcard for interfaces that come later.
        const added = await lab.exec(lab.hostNs, "ip", ["link", "add", "wgx0", "type", "veth", "peer", "name", "wgx1"]);
        assert.equal(added.code, 0, added.stderr);
        await writeFile(policy, `interfaces: [eth0, wgx0, "tun+"]\n${LAB_POLICY}`);
        const r = await lab.dockwall(["apply", "-c", policy]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stderr, /:1:26: "tun\+" matches no interface of this host yet/);
        assert.deepEqual(await mismatches(lab, POLICY_TARGETS), []);
      } finally {
        await lab.exec(lab.hostNs, "ip", ["link", "del", "wgx0"]);
        await writeFile(policy, LAB_POLICY);
        await dockwallOk(lab, ["apply", "-c", policy]);
      }
    });

    it("a 60,000-member group file, loaded by ipset processes side by side: the kernel holds exactly its members, and the matrix holds", async () => {
      assert.ok(availableParallelism() >= 2, "loading side by side needs at least 2 CPUs");
      // 198.19.0.0 - 198.19.234.95: test addresses no client of the lab uses.
      const filler = Array.from({ length: 60_000 }, (_, i) => `198.19.${i >> 8}.${i & 255}`);
      const list = path.join(lab.workDir, "admins.list");
      await writeFile(list, ADMINS_LIST + filler.join("\n") + "\n");
      try {
        assert.match(await dockwallOk(lab, ["apply", "-c", policy]), /applied/);
        const saved = await lab.exec(lab.hostNs, "ipset", ["save", "dw4-admins"]);
        const members = saved.stdout.split("\n").flatMap((l) => (l.startsWith("add ") ? [l.split(" ")[2]] : []));
        assert.deepEqual(members.sort(), ["198.18.0.30", ...filler].sort());
        assert.deepEqual(await mismatches(lab, POLICY_TARGETS), []);
      } finally {
        await writeFile(list, ADMINS_LIST);
        await dockwallOk(lab, ["apply", "-c", policy]);
      }
    });

    it("dockerd restarts and new networks do not open anything", async () => {
      await lab.restartDockerd();
      await lab.docker(["network", "create", "--subnet", "172.31.0.0/24", "later"]);
      assert.deepEqual(await mismatches(lab, POLICY_TARGETS), []);
      await lab.restartDockerd();
      assert.deepEqual(await mismatches(lab, POLICY_TARGETS), []);
    });

    it("with Docker stopped, apply still closes the host and published ports; a rule naming a container waits for Docker", async () => {
      await lab.stopDockerd();
      const r = await lab.dockwall(["apply", "-c", policy]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout + r.stderr, /django.*stays closed/);
      const { stranger, admin } = lab.clients;
      assert.deepEqual(
        await lab.probeMany([
          { client: stranger, family: "ipv4", proto: "tcp", port: 9100 },
          { client: admin, family: "ipv4", proto: "tcp", port: 9100 },
          { client: stranger, family: "ipv6", proto: "tcp", port: 22 },
        ]),
        [false, true, true],
      );
      await lab.restartDockerd();
      // Docker is back with its containers: published-port rules hold, the by-name rule is still closed.
      const probes = [
        { client: admin, family: "ipv4" as const, proto: "tcp" as const, port: 8001 },
        { client: stranger, family: "ipv4" as const, proto: "tcp" as const, port: 5432 },
        { client: stranger, family: "ipv6" as const, proto: "tcp" as const, port: 5432 },
        { client: stranger, family: "ipv4" as const, proto: "tcp" as const, port: 8080 },
      ];
      assert.deepEqual(await lab.probeMany(probes), [false, false, false, true]);
      await dockwallOk(lab, ["apply", "-c", policy]);
      assert.deepEqual(await lab.probeMany(probes), [true, false, false, true]);
    });

    it("remove takes dockwall out and Docker's behaviour comes back, its chains untouched", async () => {
      const out = await dockwallOk(lab, ["remove"]);
      assert.match(out, /removed/);
      for (const family of FAMILIES) {
        assert.doesNotMatch(await lab.hostIptablesSave(family), /DOCKWALL/);
      }
      const sets = await lab.exec(lab.hostNs, "ipset", ["list", "-n"]);
      assert.doesNotMatch(sets.stdout, /^dw[46]-/m);
      assert.deepEqual(await mismatches(lab, OPEN_WITHOUT_DOCKWALL), []);
    });
  });
}
