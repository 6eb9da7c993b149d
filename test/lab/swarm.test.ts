/**
 * dockwall on every node of a real three-node Swarm of Docker 20.10 (swarm-lab.ts), with real
 * packets: `swarm.peers` keeps Swarm's ports (2377/tcp, 7946/tcp+udp, 4789/udp, ESP) to the peers,
 * so a stranger cannot talk to the managers or the gossip, cannot get a forged VXLAN frame into an
 * overlay task and cannot send ESP, while the cluster stays healthy (every node Ready, the overlay
 * carrying task-to-task traffic between every pair of nodes, the global service answering on every
 * node) after apply, after a dockerd restart on one node, and after a node leaves and joins again.
 * Ports published in host mode obey the policy like `docker run -p` ports: the stranger / trusted /
 * admin matrix on every node, IPv4 and IPv6. One swarm is shared by the whole file (it takes most of
 * its time to form; one per engine), so the tests run in order and each leaves the swarm healthy. Docker 28 runs the
 * core of it (ENGINES).
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { SwarmLab, SwarmNode, FORGED_PORT, NODE_COUNT, swarmPolicyGroups } from "./swarm-lab.js";
import { dockwallOk, probeOutcomes } from "./checks.js";
import { liveWalkers } from "./tracer-agreement.js";
import { MeshLab, MESH_PORT, SANDBOX } from "./swarm-mesh.js";
import { DeliveryWatcher, send, token } from "./raw-packets.js";
import { HOST_ADDR, type Client, type Family, type ProbeSpec } from "./lab.js";
import type { EngineVersion } from "./engines.js";
import type { ClientName } from "./expectations.js";

/** One policy for every node: the peers are the nodes' addresses, as a group. */
const POLICY = `# dockwall swarm lab policy: the same file on every node
${swarmPolicyGroups()}containers:
  - port: 8080          # web, published in host mode: public
  - port: [8001, 5353]  # api and dns: admins only
    proto: [tcp, udp]
    from: [admins]
  # 8002 (admin-ui) is published too, and stays closed by default
swarm:
  peers: [nodes]
`;

const ALL: ClientName[] = ["trusted", "stranger", "admin"];
const TARGETS: { what: string; proto: "tcp" | "udp"; port: number; allowed: ClientName[] }[] = [
  { what: "web 8080 (public)", proto: "tcp", port: 8080, allowed: ALL },
  { what: "api 8001 (admins)", proto: "tcp", port: 8001, allowed: ["trusted", "admin"] },
  { what: "dns 5353/udp (admins)", proto: "udp", port: 5353, allowed: ["trusted", "admin"] },
  { what: "admin-ui 8002 (not in the policy)", proto: "tcp", port: 8002, allowed: ["trusted"] },
];
const FAMILIES: Family[] = ["ipv4", "ipv6"];

/**
 * Docker 20.10 gets the whole suite; Docker 28 (its swarm works here too) the apply, the stranger's
 * packets and the matrix on one node: the restart and the rejoin are the nodes' own doing, not the
 * engine's rules, and CI time is short.
 */
const ENGINES: { docker: EngineVersion; full: boolean }[] = [
  { docker: "20.10", full: true },
  { docker: "28", full: false },
];

for (const { docker, full } of ENGINES) describe(`dockwall on a three-node Docker ${docker} swarm`, () => {
  let swarm: SwarmLab;
  const policyFiles = new Map<SwarmNode, string>();
  const figures: string[] = [];

  before(async () => {
    const started = Date.now();
    swarm = await SwarmLab.create(docker);
    const joins = await swarm.formSwarm();
    await swarm.deployService();
    figures.push(`swarm formed and serving in ${Date.now() - started} ms (joins until Ready: ${joins.join(", ")} ms)`);
    for (const node of swarm.nodes) {
      const file = path.join(node.workDir, "dockwall.yaml");
      await writeFile(file, POLICY);
      policyFiles.set(node, file);
    }
  });
  after(async () => {
    if (figures.length) process.stdout.write(`# Docker ${docker} swarm figures: ${figures.join("; ")}\n`);
    await swarm?.destroy();
  });

  const apply = async (node: SwarmNode) => {
    const r = await node.dockwall(["apply", "-c", policyFiles.get(node)!]);
    assert.equal(r.code, 0, `apply on node${node.index} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  };

  /** Whether `client` completes a TCP handshake with node:port (Swarm's ports send no greeting to wait for). */
  const connects = async (client: Client, node: SwarmNode, port: number) => {
    const r = await node.exec(client.ns, "socat", ["-T1", "/dev/null", `TCP:${node.address.ipv4}:${port},connect-timeout=1.5`]);
    return r.code === 0;
  };

  /** What of the stranger's Swarm traffic reaches `node`: tcp ports that connect, and which of its datagrams and ESP packets are delivered. */
  const strangerReaches = async (node: SwarmNode, watcher: DeliveryWatcher, peer: SwarmNode) => {
    const stranger = swarm.clients.stranger;
    const reached: string[] = [];
    for (const port of [2377, 7946]) if (await connects(stranger, node, port)) reached.push(`${port}/tcp`);
    const sent: [string, string][] = [
      ["7946/udp", token("gossip")],
      ["4789/udp", token("vxlan-outer")],
      ["esp", token("esp")],
    ];
    await send.udp(stranger.ns, node.address.ipv4, 7946, sent[0]![1]);
    await send.udp(stranger.ns, node.address.ipv4, 4789, sent[1]![1]);
    await send.esp(stranger.ns, node.address.ipv4, sent[2]![1]);
    // A peer's packets after them, the same three kinds: once all three are delivered, the stranger's
    // (sent first, on the same segment) had their chance; and a peer's must pass.
    const marks = [token("peer-gossip"), token("peer-vxlan"), token("peer-esp")];
    await send.udp(peer.hostNs, node.address.ipv4, 7946, marks[0]!);
    await send.udp(peer.hostNs, node.address.ipv4, 4789, marks[1]!);
    await send.esp(peer.hostNs, node.address.ipv4, marks[2]!);
    for (const m of marks) await watcher.waitDelivered(m);
    for (const [what, tok] of sent) if (watcher.delivered(tok)) reached.push(what);
    return reached;
  };

  /**
   * A forged VXLAN frame for `node`'s overlay task (the overlay's VNI, the task's MAC and address, a
   * datagram to its listener), from the stranger, then the same from a peer: whether the stranger's
   * got into the task (the peer's must).
   */
  const forgedVxlanGetsIn = async (node: SwarmNode, peer: SwarmNode): Promise<boolean> => {
    const vni = await swarm.overlayVni();
    const task = await node.task();
    assert.ok(task, `node${node.index} runs a task`);
    const inner = { mac: task.mac, ip: task.ip, src: "198.19.20.250", port: FORGED_PORT };
    const fromStranger = token("forged-stranger");
    const fromPeer = token("forged-peer");
    await send.vxlan(swarm.clients.stranger.ns, node.address.ipv4, vni, inner, fromStranger);
    await send.vxlan(peer.hostNs, node.address.ipv4, vni, inner, fromPeer);
    await swarm.waitFor(`the peer's forged frame in node${node.index}'s task`, async () => (await node.forgedReceived()).includes(fromPeer), 10_000);
    return (await node.forgedReceived()).includes(fromStranger);
  };

  /** The probe matrix of the host-mode published ports on these nodes: what differs from the policy. */
  const matrixMismatches = async (nodes: SwarmNode[]) => {
    const specs: (ProbeSpec & { label: string; allowed: ClientName[] })[] = [];
    for (const node of nodes) {
      for (const t of TARGETS) {
        for (const family of FAMILIES) {
          for (const client of Object.values(swarm.clients)) {
            specs.push({ client, family, proto: t.proto, port: t.port, dst: node.address[family], label: `node${node.index} ${client.name} ${family} -> ${t.what}`, allowed: t.allowed });
          }
        }
      }
    }
    const results = await probeOutcomes(swarm.manager, specs, (i) => specs[i]!.allowed.includes(specs[i]!.client.name));
    return specs.flatMap((s, i) => {
      const expect = s.allowed.includes(s.client.name);
      return results[i] === expect ? [] : [`${s.label}: expected ${expect ? "open" : "closed"}, was ${results[i] ? "open" : "closed"}`];
    });
  };

  const healthy = async () => {
    assert.deepEqual(await swarm.notReady(), [], "every node Ready and Active");
    assert.deepEqual(await swarm.overlayFailures(), [], "every task reaches every other node's task over the overlay");
  };

  const watchers = new Map<SwarmNode, DeliveryWatcher>();
  const watcher = async (node: SwarmNode) => {
    let w = watchers.get(node);
    if (!w) {
      w = await DeliveryWatcher.start((cmd, args, stdio) => node.spawnIn(node.hostNs, cmd, args, stdio));
      watchers.set(node, w);
    }
    return w;
  };

  it("without dockwall, a stranger reaches 2377 and 7946 and gets VXLAN and ESP packets delivered, a forged frame into an overlay task", async () => {
    await healthy();
    const [node1, node2] = swarm.nodes as [SwarmNode, SwarmNode];
    assert.deepEqual(await strangerReaches(node1, await watcher(node1), node2), ["2377/tcp", "7946/tcp", "7946/udp", "4789/udp", "esp"]);
    assert.equal(await forgedVxlanGetsIn(node1, node2), true, "the forged frame reaches the task: the test can see what it tests");
  });

  it("with the policy applied on every node, the stranger is out of Swarm's ports and the overlay, and the swarm stays healthy", async () => {
    for (const node of swarm.nodes) await apply(node);
    await healthy();
    for (const node of swarm.nodes) {
      const peer = swarm.nodes[node.index % NODE_COUNT]!;
      assert.deepEqual(await strangerReaches(node, await watcher(node), peer), [], `node${node.index}: nothing of the stranger's gets through`);
      assert.equal(await forgedVxlanGetsIn(node, peer), false, `node${node.index}: the stranger's forged frame stays out of the overlay`);
    }
    // Peers talk to each other's manager and gossip ports: the health check above, and a handshake.
    assert.equal(await connects({ ...swarm.clients.admin, ns: swarm.nodes[1]!.hostNs }, swarm.manager, 2377), true, "a peer reaches 2377");
  });

  it(`the host-mode published ports obey the policy on ${full ? "every node" : "a worker"}, for the three clients over IPv4 and IPv6`, async () => {
    assert.deepEqual(await matrixMismatches(full ? swarm.nodes : [swarm.nodes[1]!]), []);
  });

  if (full) it("after a dockerd restart on one node the swarm is healthy and that node still keeps the stranger out", async () => {
    const node = swarm.nodes[1]!;
    const started = Date.now();
    await node.stopDockerd();
    await node.startDockerd();
    await swarm.waitFor("every node Ready after the restart", async () => (await swarm.notReady()).length === 0);
    await swarm.waitForService([node]);
    figures.push(`node${node.index}'s dockerd restart until Ready and serving: ${Date.now() - started} ms`);
    await healthy();
    assert.deepEqual(await strangerReaches(node, await watcher(node), swarm.manager), []);
    assert.equal(await forgedVxlanGetsIn(node, swarm.manager), false);
    assert.deepEqual(await matrixMismatches([node]), []);
  });

  if (full) it("after a node leaves the swarm and joins again the swarm is healthy and the rejoined node still keeps the stranger out", async () => {
    const node = swarm.nodes[2]!;
    await swarm.leave(node);
    const joinMs = await swarm.join(node);
    await swarm.waitForService([node]);
    figures.push(`node${node.index} rejoining until Ready: ${joinMs} ms`);
    await healthy();
    assert.deepEqual(await strangerReaches(node, await watcher(node), swarm.manager), []);
    assert.equal(await forgedVxlanGetsIn(node, swarm.manager), false);
    assert.deepEqual(await matrixMismatches([node]), []);
  });
});

/** The routing mesh's port in three policies: public, one group's, and not in the policy at all. */
const MESH_POLICIES: { what: string; containers: string; allowed: ClientName[] }[] = [
  { what: "public", containers: "containers:\n  - port: 8080\n", allowed: ALL },
  { what: "admins only", containers: "containers:\n  - port: 8080\n    from: [admins]\n", allowed: ["trusted", "admin"] },
  { what: "not in the policy (closed by default)", containers: "", allowed: ["trusted"] },
];

describe("ports published through the routing mesh, on a node with no task (Docker's own swarm-portmap rules; no IPVS here)", () => {
  let mesh: MeshLab;
  before(async () => {
    mesh = await MeshLab.build();
  });
  after(async () => {
    await mesh?.destroy();
  });

  /**
   * Each client's real connection to the mesh port and the tracer's verdict over the live rules, IPv4
   * (the mesh has no IPv6): the clients whose outcome differs from `allowed`, either way.
   */
  const meshMismatches = async (allowed: ClientName[]) => {
    const clients = Object.values(mesh.clients);
    const specs = clients.map((client) => ({ client, family: "ipv4" as const, proto: "tcp" as const, port: MESH_PORT }));
    const real = await probeOutcomes(mesh, specs, (i) => allowed.includes(clients[i]!.name));
    const walkers = await liveWalkers(mesh);
    return clients.flatMap((client, i) => {
      const traced = walkers.ipv4.trace({ family: "ipv4", proto: "tcp", src: client.ipv4, dst: HOST_ADDR.ipv4, dport: MESH_PORT, inIface: "eth0" });
      const expect = allowed.includes(client.name);
      const wrong: string[] = [];
      if (real[i] !== expect) wrong.push(`${client.name}: expected ${expect ? "open" : "closed"}, was ${real[i] ? "open" : "closed"}`);
      if ((traced.verdict === "accept") !== expect) wrong.push(`${client.name}: the tracer says ${traced.verdict}, last rule ${traced.steps.at(-1)?.rule ?? "none"}`);
      if (traced.dnat?.dst !== SANDBOX) wrong.push(`${client.name}: the tracer did not follow the mesh's DNAT to ${SANDBOX} (${JSON.stringify(traced.dnat)})`);
      return wrong;
    });
  };

  it("without dockwall, Docker's rules let everyone through to the ingress sandbox", async () => {
    assert.deepEqual(await meshMismatches(ALL), []);
  });

  for (const p of MESH_POLICIES) {
    it(`a mesh port ${p.what}: real connections and the tracer agree with the policy`, async () => {
      const file = path.join(mesh.workDir, "dockwall.yaml");
      await writeFile(file, `groups:\n  office: [198.18.0.8/29, "2001:db8:ff::10/124"]\n  admins: [198.18.0.30, "2001:db8:ff::30"]\ntrusted: [office]\n${p.containers}swarm:\n  peers: [198.18.0.2, 198.18.0.3]\n`);
      await dockwallOk(mesh, ["apply", "-c", file]);
      assert.deepEqual(await meshMismatches(p.allowed), []);
      const explained = await mesh.dockwall(["explain", mesh.clients.stranger.ipv4, `tcp/${MESH_PORT}`]);
      assert.equal(explained.code, p.allowed.includes("stranger") ? 0 : 3, explained.stdout + explained.stderr);
      assert.match(explained.stdout, new RegExp(`DNAT to ${SANDBOX.replace(/\./g, "\\.")}:${MESH_PORT}`), `explain shows the mesh's DNAT to the ingress sandbox:\n${explained.stdout}`);
      // audit finds the mesh port from Docker's rules (no container lists it), and who reaches it.
      const audit = JSON.parse((await mesh.dockwall(["audit", "-c", file, "--json"])).stdout) as { rows: { target: { what: string }; reach: { who: string } }[] };
      const row = audit.rows.find((r) => r.target.what === `routing mesh ${MESH_PORT}/tcp`);
      assert.ok(row, `audit lists the mesh port: ${JSON.stringify(audit.rows)}`);
      assert.equal(row.reach.who, p.allowed.includes("stranger") ? "anyone" : "some");
    });
  }
});
