/**
 * Facts: the Engine API answers as Docker 20.10 gives them (served over a real unix socket), the
 * DOCKER_HOST forms, and which iptables variant holds Docker's chains.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { endpointFromEnv } from "../../src/facts/engine-api.js";
import { readDockerFacts, toContainerFacts, toNetworkFacts } from "../../src/facts/docker.js";
import { detectIptablesVariant, readInterfaces } from "../../src/facts/host.js";
import type { CommandResult, Runner } from "../../src/exec/runner.js";

const DJANGO = {
  Id: "4c1f0e9a2b3d5e6f",
  Names: ["/django"],
  State: "running",
  Ports: [
    { IP: "0.0.0.0", PrivatePort: 8000, PublicPort: 8001, Type: "tcp" },
    { IP: "::", PrivatePort: 8000, PublicPort: 8001, Type: "tcp" },
    { PrivatePort: 9000, Type: "tcp" },
    { IP: "127.0.0.1", PrivatePort: 53, PublicPort: 5353, Type: "udp" },
    { IP: "0.0.0.0", PrivatePort: 132, PublicPort: 132, Type: "sctp" },
  ],
  NetworkSettings: { Networks: { bridge: { IPAddress: "172.17.0.3", GlobalIPv6Address: "2001:db8:1::3" }, appnet: { IPAddress: "172.30.0.4", GlobalIPv6Address: "" } } },
};
const NETWORKS: Parameters<typeof toNetworkFacts>[0][] = [
  { Id: "aaaaaaaaaaaaaaaaaaaa", Name: "bridge", Driver: "bridge", Options: { "com.docker.network.bridge.name": "docker0" }, IPAM: { Config: [{ Subnet: "172.17.0.0/16" }] } },
  { Id: "0123456789abcdef0000", Name: "appnet", Driver: "bridge", Options: {}, IPAM: { Config: [{ Subnet: "172.30.0.0/24" }, { Subnet: "2001:db8:2::/64" }] } },
  { Id: "bbbbbbbbbbbbbbbbbbbb", Name: "host", Driver: "host", IPAM: { Config: null } },
];

test("containers: published ports (tcp and udp, with host address), addresses, networks; unpublished ports left out", () => {
  assert.deepEqual(toContainerFacts(DJANGO), {
    id: "4c1f0e9a2b3d5e6f",
    name: "django",
    running: true,
    published: [
      { hostIp: "0.0.0.0", hostPort: 8001, containerPort: 8000, proto: "tcp" },
      { hostIp: "::", hostPort: 8001, containerPort: 8000, proto: "tcp" },
      { hostIp: "127.0.0.1", hostPort: 5353, containerPort: 53, proto: "udp" },
    ],
    addresses: ["172.17.0.3", "2001:db8:1::3", "172.30.0.4"],
    networks: ["appnet", "bridge"],
  });
});

test("networks: the bridge.name option wins, otherwise br-<first 12 of the id>; non-bridge drivers have none", () => {
  assert.deepEqual(NETWORKS.map(toNetworkFacts).map((n) => [n.name, n.bridge, n.subnets]), [
    ["bridge", "docker0", ["172.17.0.0/16"]],
    ["appnet", "br-0123456789ab", ["172.30.0.0/24", "2001:db8:2::/64"]],
    ["host", undefined, []],
  ]);
});

test("DOCKER_HOST: default socket, unix://, tcp:// with and without port, IPv6 host; others refused", () => {
  assert.deepEqual(endpointFromEnv(undefined), { socketPath: "/var/run/docker.sock" });
  assert.deepEqual(endpointFromEnv("unix:///run/user/1000/docker.sock"), { socketPath: "/run/user/1000/docker.sock" });
  assert.deepEqual(endpointFromEnv("tcp://10.0.0.5:2376"), { host: "10.0.0.5", port: 2376 });
  assert.deepEqual(endpointFromEnv("tcp://docker.internal"), { host: "docker.internal", port: 2375 });
  assert.deepEqual(endpointFromEnv("tcp://[2001:db8::5]:2375"), { host: "2001:db8::5", port: 2375 });
  assert.throws(() => endpointFromEnv("ssh://me@host"), /only unix:\/\/ and tcp:\/\//);
});

test("readDockerFacts over a unix socket; an absent Engine is reported, not thrown", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-engine-"));
  const socketPath = path.join(dir, "docker.sock");
  const server = http.createServer((req, res) => {
    const body =
      req.url === "/info" ? { ServerVersion: "20.10.24" } :
      req.url === "/containers/json?all=1" ? [DJANGO] :
      req.url === "/networks" ? NETWORKS : undefined;
    res.writeHead(body === undefined ? 404 : 200, { "content-type": "application/json" });
    res.end(JSON.stringify(body ?? { message: "page not found" }));
  });
  try {
    await new Promise<void>((r) => server.listen(socketPath, r));
    const facts = await readDockerFacts({ socketPath });
    assert.equal(facts.reachable, true);
    assert.equal(facts.version, "20.10.24");
    assert.deepEqual(facts.containers.map((c) => c.name), ["django"]);
    assert.deepEqual(facts.networks.map((n) => n.name), ["appnet", "bridge", "host"]);
    const absent = await readDockerFacts({ socketPath: path.join(dir, "nothing.sock") });
    assert.equal(absent.reachable, false);
    assert.match(absent.error ?? "", /cannot reach the Docker Engine at unix:\/\/.*nothing\.sock: ENOENT/);
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

function runnerWith(outputs: Record<string, CommandResult | undefined>): Runner {
  return {
    async run(cmd) {
      const r = outputs[cmd];
      if (!r) throw new Error(`${cmd}: not found`);
      return r;
    },
  };
}
const out = (stdout: string): CommandResult => ({ code: 0, stdout, stderr: "" });
const DOCKER_FILTER = "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n:DOCKER-USER - [0:0]\nCOMMIT\n";
const EMPTY_FILTER = "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n";

test("iptables variant: where Docker's chains are; else what the iptables command is", async () => {
  const legacyTables = async () => "filter\nnat\n";
  const detect = (outputs: Record<string, CommandResult>) => detectIptablesVariant(runnerWith(outputs), legacyTables);
  assert.equal(await detect({ "iptables-nft-save": out(EMPTY_FILTER), "iptables-legacy-save": out(DOCKER_FILTER) }), "legacy");
  assert.equal(await detect({ "iptables-nft-save": out(DOCKER_FILTER), "iptables-legacy-save": out(EMPTY_FILTER) }), "nft");
  assert.equal(await detect({ "iptables-nft-save": out(EMPTY_FILTER), iptables: out("iptables v1.8.9 (legacy)\n") }), "legacy");
  assert.equal(await detect({ iptables: out("iptables v1.8.9 (nf_tables)\n") }), "nft");
});

test("iptables variant: legacy tables are not read (which would create them) when the kernel has none", async () => {
  const calls: string[] = [];
  const runner: Runner = {
    async run(cmd) {
      calls.push(cmd);
      // Docker's chains everywhere: a legacy read would show up here, and tie, and ask `iptables --version`.
      return out(DOCKER_FILTER);
    },
  };
  const missing = async () => {
    throw Object.assign(new Error("no such file"), { code: "ENOENT" });
  };
  assert.equal(await detectIptablesVariant(runner, async () => ""), "nft");
  assert.equal(await detectIptablesVariant(runner, missing), "nft");
  assert.deepEqual(calls, ["iptables-nft-save", "iptables-nft-save"]);
});

test("host interfaces come from getifaddrs, sorted by name, each address with its prefix", () => {
  const info = (address: string, family: "IPv4" | "IPv6", cidr: string | null) =>
    ({ address, family, cidr, netmask: "", mac: "", internal: false, scopeid: 0 }) as import("node:os").NetworkInterfaceInfo;
  const interfaces = readInterfaces({
    addresses: () => ({
      eth0: [info("198.18.0.2", "IPv4", "198.18.0.2/24"), info("2001:db8::2", "IPv6", "2001:db8::2/64")],
      docker0: [info("172.17.0.1", "IPv4", null)],
    }),
    devices: () => PROC_NET_DEV_HEADER + "  eth0: 0 0\ndocker0: 0 0\n",
  });
  assert.deepEqual(interfaces, [
    { name: "docker0", addresses: ["172.17.0.1/32"] },
    { name: "eth0", addresses: ["198.18.0.2/24", "2001:db8::2/64"] },
  ]);
});

const PROC_NET_DEV_HEADER =
  "Inter-|   Receive                                                |  Transmit\n" +
  " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

test("host interfaces include those without an address (from /proc/net/dev); an address label is its interface's address", () => {
  const info = (address: string, cidr: string) =>
    ({ address, family: "IPv4", cidr, netmask: "", mac: "", internal: false, scopeid: 0 }) as import("node:os").NetworkInterfaceInfo;
  const interfaces = readInterfaces({
    // getifaddrs lists eth0's second address under its label, and nothing for wg0 (no address yet).
    addresses: () => ({ eth0: [info("198.18.0.2", "198.18.0.2/24")], "eth0:1": [info("198.18.0.9", "198.18.0.9/24")] }),
    devices: () =>
      PROC_NET_DEV_HEADER +
      "    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0\n" +
      "  eth0:1234567 100 0 0 0 0 0 0 99 9 0 0 0 0 0 0\n" +
      "   wg0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n",
  });
  assert.deepEqual(interfaces, [
    { name: "eth0", addresses: ["198.18.0.2/24", "198.18.0.9/24"] },
    { name: "lo", addresses: [] },
    { name: "wg0", addresses: [] },
  ]);
});
