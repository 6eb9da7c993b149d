/**
 * A Docker Swarm in network namespaces (LAB.md "Swarm in namespaces"): the lab's outside segment and
 * clients (lab.ts), and three Docker hosts on it (20.10, or 28), each a dockerd in its own network namespace
 * and its own mount namespace (Docker 20.10 keeps the ingress sandbox at a fixed
 * /var/run/docker/netns/ingress_sbox whatever --exec-root says, so every node gets a private tmpfs
 * there). Node 1 inits the swarm, the others join it as workers; an attachable overlay network and a
 * global service published in host mode run a task on every node.
 *
 *   trusted 198.18.0.10 ─┐                ┌─ node1 198.18.0.1 / 2001:db8:ff::1 (manager)
 *   stranger 198.18.0.20 ─┼─ bridge "seg" ─┼─ node2 198.18.0.2 / 2001:db8:ff::2
 *   admin 198.18.0.30 ────┘                └─ node3 198.18.0.3 / 2001:db8:ff::3
 *
 * Each node is a Lab (its dockerd, image, dockwall, probes and teardown), built on the segment this
 * file makes. Only test addresses are used, and every process is ended by pid.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Lab, IMAGE, listenCommand, sleep, type Client, type LabOptions } from "./lab.js";
import { ProcessRunner } from "../../src/exec/runner.js";
import type { EngineVersion } from "./engines.js";

const runner = new ProcessRunner();

export const NODE_COUNT = 3;
export const OVERLAY = "dwovl";
/** Test addresses for the overlay (the ingress and docker_gwbridge defaults stay inside each node's namespace). */
export const OVERLAY_SUBNET = "198.19.20.0/24";
export const SERVICE = "web";
/** Where a task's listener writes every datagram it gets on FORGED_PORT (the forged VXLAN test reads it). */
export const FORGED_PORT = 9999;
const FORGED_LOG = "/tmp/forged";

/** What the global service publishes in host mode on every node: host port, container port, proto, what it answers. */
export const PUBLISHED: { hostPort: number; containerPort: number; proto: "tcp" | "udp"; text: string }[] = [
  { hostPort: 8080, containerPort: 80, proto: "tcp", text: "web" },
  { hostPort: 8001, containerPort: 8000, proto: "tcp", text: "api" },
  { hostPort: 8002, containerPort: 8100, proto: "tcp", text: "admin-ui" },
  { hostPort: 5353, containerPort: 5353, proto: "udp", text: "dns" },
];

export interface NodeAddress {
  ipv4: string;
  ipv6: string;
}

/** One swarm node: a Lab whose host namespace joins a segment it did not make, its dockerd in a mount namespace of its own. */
export class SwarmNode extends Lab {
  swarmId = "";

  constructor(
    id: string,
    workDir: string,
    options: LabOptions,
    readonly index: number,
    readonly address: NodeAddress,
    private readonly segment: string,
  ) {
    super(id, workDir, options);
  }

  protected override async buildNetwork(): Promise<void> {
    const port = `p-node${this.index}`;
    await ok("ip", ["netns", "add", this.hostNs]);
    await ok("ip", ["-n", this.hostNs, "link", "set", "lo", "up"]);
    await ok("ip", ["-n", this.segment, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", this.hostNs]);
    await ok("ip", ["-n", this.segment, "link", "set", port, "master", "seg", "up"]);
    await ok("ip", ["-n", this.hostNs, "addr", "add", `${this.address.ipv4}/24`, "dev", "eth0"]);
    await ok("ip", ["-n", this.hostNs, "addr", "add", `${this.address.ipv6}/64`, "dev", "eth0", "nodad"]);
    await ok("ip", ["-n", this.hostNs, "link", "set", "eth0", "up"]);
  }

  /** A private /var/run/docker (the fixed ingress_sbox path); nsenter then execs dockerd, so the pid stays dockerd's. */
  protected override dockerdLauncher(): string {
    return `exec unshare -m --propagation private sh -c 'mkdir -p /var/run/docker && mount -t tmpfs dwlab /var/run/docker && exec nsenter "$@"' sh "$@"`;
  }

  /** Namespace, dockerd and image; the caller tears down on failure. */
  async build(): Promise<void> {
    await this.buildNetwork();
    await this.startDockerd();
    await this.importImage();
  }

  async dockerText(args: string[]): Promise<string> {
    const r = await this.docker(args);
    if (r.code !== 0) throw new Error(`node${this.index}: docker ${args.join(" ")}: ${r.stderr.trim()}`);
    return r.stdout.trim();
  }

  /** This node's running task of the service, with its overlay address and MAC. */
  async task(): Promise<{ id: string; ip: string; mac: string } | undefined> {
    const ids = (await this.docker(["ps", "-q", "--filter", `label=com.docker.swarm.service.name=${SERVICE}`, "--filter", "status=running"])).stdout.trim().split(/\s+/).filter(Boolean);
    if (ids.length !== 1) return undefined;
    const r = await this.docker(["inspect", "-f", `{{with index .NetworkSettings.Networks "${OVERLAY}"}}{{.IPAddress}} {{.MacAddress}}{{end}}`, ids[0]!]);
    const [ip, mac] = r.stdout.trim().split(" ");
    if (r.code !== 0 || !ip || !mac) return undefined;
    return { id: ids[0]!, ip, mac };
  }

  /** The datagrams this node's task received on FORGED_PORT so far. */
  async forgedReceived(): Promise<string> {
    const t = await this.task();
    if (!t) throw new Error(`node${this.index} runs no task of ${SERVICE}`);
    return (await this.docker(["exec", t.id, "sh", "-c", `cat ${FORGED_LOG} 2>/dev/null; true`])).stdout;
  }
}

export class SwarmLab {
  readonly nodes: SwarmNode[] = [];
  readonly clients: Record<Client["name"], Client>;
  readonly segNs: string;
  private readonly namespaces: string[] = [];
  private workerToken = "";

  private constructor(
    readonly id: string,
    readonly workDir: string,
  ) {
    this.segNs = `dwsw${id}-seg`;
    const client = (name: Client["name"], n: number): Client => ({ name, ns: `dwsw${id}-${name}`, ipv4: `198.18.0.${n}`, ipv6: `2001:db8:ff::${n}` });
    this.clients = { trusted: client("trusted", 10), stranger: client("stranger", 20), admin: client("admin", 30) };
  }

  get manager(): SwarmNode {
    return this.nodes[0]!;
  }

  /** The segment, the clients and NODE_COUNT nodes with their dockerd (20.10 unless told); no swarm yet. Tears down on failure. */
  static async create(docker: EngineVersion = "20.10"): Promise<SwarmLab> {
    for (const tool of ["unshare", "python3"]) {
      if ((await runner.run("sh", ["-c", `command -v ${tool}`])).code !== 0) throw new Error(`the swarm lab needs ${tool}`);
    }
    const id = (process.pid % 10000).toString(36) + Math.floor(Math.random() * 36 ** 2).toString(36);
    const workDir = await mkdtemp(path.join(os.tmpdir(), "dockwall-swarm-"));
    const lab = new SwarmLab(id, workDir);
    try {
      await lab.buildSegment();
      for (let i = 1; i <= NODE_COUNT; i++) {
        const dir = path.join(workDir, `node${i}`);
        const node = new SwarmNode(`${id}n${i}`, dir, { docker, ipv6Mode: "proxy", ipForwardBeforeDocker: false }, i, nodeAddress(i), lab.segNs);
        lab.nodes.push(node);
        await runner.run("mkdir", ["-p", dir]);
        await node.build();
      }
      return lab;
    } catch (e) {
      await lab.destroy().catch(() => undefined);
      throw e;
    }
  }

  private async buildSegment(): Promise<void> {
    for (const ns of [this.segNs, ...Object.values(this.clients).map((c) => c.ns)]) {
      await ok("ip", ["netns", "add", ns]);
      this.namespaces.push(ns);
      await ok("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }
    await ok("ip", ["-n", this.segNs, "link", "add", "seg", "type", "bridge"]);
    await ok("ip", ["-n", this.segNs, "link", "set", "seg", "up"]);
    for (const c of Object.values(this.clients)) {
      await ok("ip", ["-n", this.segNs, "link", "add", `p-${c.name}`, "type", "veth", "peer", "name", "eth0", "netns", c.ns]);
      await ok("ip", ["-n", this.segNs, "link", "set", `p-${c.name}`, "master", "seg", "up"]);
      await ok("ip", ["-n", c.ns, "addr", "add", `${c.ipv4}/24`, "dev", "eth0"]);
      await ok("ip", ["-n", c.ns, "addr", "add", `${c.ipv6}/64`, "dev", "eth0", "nodad"]);
      await ok("ip", ["-n", c.ns, "link", "set", "eth0", "up"]);
    }
  }

  // ---- swarm ---------------------------------------------------------------------------------

  /** swarm init on node 1, the others join as workers; returns each join's time until the manager lists it Ready (ms). */
  async formSwarm(): Promise<number[]> {
    const m = this.manager;
    await m.dockerText(["swarm", "init", "--advertise-addr", m.address.ipv4, "--listen-addr", `${m.address.ipv4}:2377`]);
    this.workerToken = await m.dockerText(["swarm", "join-token", "-q", "worker"]);
    m.swarmId = await m.dockerText(["info", "-f", "{{.Swarm.NodeID}}"]);
    const times: number[] = [];
    for (const node of this.nodes.slice(1)) times.push(await this.join(node));
    return times;
  }

  /** One node joins (again); the time from `swarm join` until the manager lists every member Ready (ms). */
  async join(node: SwarmNode): Promise<number> {
    const started = Date.now();
    await node.dockerText(["swarm", "join", "--token", this.workerToken, "--advertise-addr", node.address.ipv4, "--listen-addr", `${node.address.ipv4}:2377`, `${this.manager.address.ipv4}:2377`]);
    node.swarmId = await node.dockerText(["info", "-f", "{{.Swarm.NodeID}}"]);
    await this.waitFor(`node${node.index} Ready`, async () => (await this.notReady()).length === 0);
    return Date.now() - started;
  }

  /**
   * The node leaves the swarm and the manager forgets it, as an operator retires a node. --force: the
   * manager would otherwise list it Ready until its heartbeat runs out (tens of seconds of waiting).
   */
  async leave(node: SwarmNode): Promise<void> {
    await node.dockerText(["swarm", "leave"]);
    await this.manager.dockerText(["node", "rm", "--force", node.swarmId]);
    node.swarmId = "";
  }

  /** Members (nodes that joined) the manager does not list as Ready and Active: empty when the swarm is healthy. */
  async notReady(): Promise<string[]> {
    const r = await this.manager.docker(["node", "ls", "--format", "{{.ID}} {{.Status}} {{.Availability}}"]);
    if (r.code !== 0) return [`node ls: ${r.stderr.trim()}`];
    const listed = new Map(r.stdout.trim().split("\n").map((l) => l.split(" ") as [string, string, string]).map(([id, status, avail]) => [id, `${status} ${avail}`]));
    const members = this.nodes.filter((n) => n.swarmId !== "");
    return members.flatMap((n) => (listed.get(n.swarmId) === "Ready Active" ? [] : [`node${n.index}: ${listed.get(n.swarmId) ?? "not listed"}`]));
  }

  /** The overlay and the global service (host-mode ports, the forged-datagram listener), up on every node. */
  async deployService(): Promise<void> {
    const m = this.manager;
    await m.dockerText(["network", "create", "--driver", "overlay", "--attachable", "--subnet", OVERLAY_SUBNET, OVERLAY]);
    const publish = PUBLISHED.map((p) => ["--publish", `mode=host,target=${p.containerPort},published=${p.hostPort},protocol=${p.proto}`]).flat();
    const listeners = PUBLISHED.map((p) => `(${listenCommand(p.containerPort, p.text, p.proto)}) &`).join(" ");
    const forged = `socat -u UDP-RECV:${FORGED_PORT} OPEN:${FORGED_LOG},creat,append &`;
    await m.dockerText(["service", "create", "--detach", "--name", SERVICE, "--mode", "global", "--network", OVERLAY, ...publish, "--no-resolve-image", IMAGE, "sh", "-c", `${listeners} ${forged} wait`]);
    await this.waitForService();
  }

  /** Every node runs a task that answers on its host-mode port from the node itself. */
  async waitForService(nodes: SwarmNode[] = this.nodes): Promise<void> {
    for (const node of nodes) {
      await this.waitFor(`node${node.index}'s task answering`, async () => (await node.task()) !== undefined && (await node.probe(ownClient(node), "ipv4", "tcp", 8080, node.address.ipv4)));
    }
  }

  /**
   * From each node's task, the task on every other node over the overlay (VXLAN between peers): the
   * pairs that did not answer.
   */
  async overlayFailures(): Promise<string[]> {
    const tasks = await Promise.all(this.nodes.map((n) => n.task()));
    const failed: string[] = [];
    for (const [i, from] of this.nodes.entries()) {
      for (const [j, to] of tasks.entries()) {
        if (i === j) continue;
        const src = tasks[i];
        if (!src || !to) {
          failed.push(`node${from.index} -> node${j + 1}: no task`);
          continue;
        }
        const r = await from.docker(["exec", src.id, "socat", "-T2", "-", `TCP:${to.ip}:80,connect-timeout=2`]);
        if (r.stdout.trim() !== "web") failed.push(`node${from.index} -> node${j + 1} (${to.ip}): ${r.stdout.trim() || r.stderr.trim() || "no answer"}`);
      }
    }
    return failed;
  }

  /** The overlay's VXLAN network identifier (VNI). */
  async overlayVni(): Promise<number> {
    const text = await this.manager.dockerText(["network", "inspect", "-f", `{{index .Options "com.docker.network.driver.overlay.vxlanid_list"}}`, OVERLAY]);
    const vni = Number(text.split(",")[0]);
    if (!Number.isInteger(vni) || vni <= 0) throw new Error(`no VNI for ${OVERLAY}: ${text}`);
    return vni;
  }

  async waitFor(what: string, condition: () => Promise<boolean>, ms = 90_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await condition().catch(() => false)) return;
      await sleep(250);
    }
    throw new Error(`the swarm lab waited ${ms} ms for ${what}; not ready: ${(await this.notReady().catch(() => [])).join(", ")}`);
  }

  /** Every node (containers, dockerd, processes, namespace, folder), then the clients and the segment. */
  async destroy(): Promise<void> {
    for (const node of this.nodes) await node.destroy().catch((e: Error) => process.stderr.write(`swarm lab node${node.index}: ${e.message}\n`));
    for (const ns of this.namespaces) {
      if (existsSync(`/var/run/netns/${ns}`)) await runner.run("ip", ["netns", "del", ns]);
    }
    await rm(this.workDir, { recursive: true, force: true });
  }
}

export function nodeAddress(i: number): NodeAddress {
  return { ipv4: `198.18.0.${i}`, ipv6: `2001:db8:ff::${i}` };
}

/** A "client" standing in the node's own namespace (its own probe of its own port: start-up, not the firewall). */
function ownClient(node: SwarmNode): Client {
  return { name: "admin", ns: node.hostNs, ipv4: node.address.ipv4, ipv6: node.address.ipv6 };
}

async function ok(cmd: string, args: string[]): Promise<string> {
  const r = await runner.run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/** The groups every swarm lab policy starts with: the lab's office and admins, and every node as `nodes` (for swarm.peers). */
export function swarmPolicyGroups(): string {
  const peers = Array.from({ length: NODE_COUNT }, (_, i) => nodeAddress(i + 1));
  return `groups:
  office: [198.18.0.8/29, "2001:db8:ff::10/124"]
  admins: [198.18.0.30, "2001:db8:ff::30"]
  nodes: [${peers.map((p) => `${p.ipv4}, "${p.ipv6}"`).join(", ")}]
trusted: [office]
`;
}
