/**
 * A Swarm node's routing mesh, as far as the node's own firewall goes, in the lab: this kernel has
 * no IPVS (LAB.md), so the mesh cannot forward to a task here. What decides whether a stranger gets
 * in is the node's part, before IPVS: Docker's nat DOCKER-INGRESS DNATs the published port to the
 * ingress sandbox on docker_gwbridge, and the connection is forwarded there. That part is built for
 * real from Docker's own rules (the `swarm-portmap` scenario of Docker's generated documents,
 * vendored in docker-rules/iptables-v29/), with a namespace standing in for the ingress sandbox and
 * a listener in it, so the lab's clients connect through the node's real netfilter to the point
 * where IPVS would take over. The node runs no task at all: the node-side rules are the same on
 * every node of the ingress network, with or without a replica (Docker writes DOCKER-INGRESS on
 * every node; only IPVS inside the sandbox knows where the replicas are).
 *
 * Addresses: the rules name docker_gwbridge 172.18.0.0/16 (the ingress sandbox 172.18.0.2) and
 * docker0 172.17.0.0/16; the lab uses test addresses only, so they become 198.19.128.0/17
 * (sandbox 198.19.128.2) and 198.19.0.0/17: the prefix lengths change (one /15 of test addresses
 * holds the segment and both), which only the MASQUERADE rules see. The routing mesh is IPv4-only
 * (Docker's ingress network has no IPv6), so there are no IPv6 rules to load.
 *
 *   clients 198.18.0.x ─ seg ─ node eth0 198.18.0.1 ─ docker_gwbridge 198.19.128.1 ─ ingress sandbox 198.19.128.2 (8080)
 *                                                  └ docker0 198.19.0.1
 */
import { mkdtemp, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Lab, listenCommand, sleep } from "./lab.js";
import { restoreInput } from "./docker29.js";
import { ProcessRunner } from "../../src/exec/runner.js";

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../..");
const RULES = path.join(REPO, "test", "lab", "docker-rules", "iptables-v29", "swarm-portmap.rules");
/** The port the scenario publishes through the mesh. */
export const MESH_PORT = 8080;
export const SANDBOX = "198.19.128.2";

const runner = new ProcessRunner();

/** Docker's addresses in the scenario to the lab's (see the file comment). */
export function meshAddresses(text: string): string {
  return text
    .replace(/\b172\.18\.0\.0\/16\b/g, "198.19.128.0/17")
    .replace(/\b172\.17\.0\.0\/16\b/g, "198.19.0.0/17")
    .replace(/\b172\.18\.(\d+)\.(\d+)\b/g, (_, a: string, b: string) => `198.19.${128 + Number(a)}.${b}`)
    .replace(/\b172\.17\.(\d+)\.(\d+)\b/g, "198.19.$1.$2");
}

export class MeshLab extends Lab {
  private constructor(id: string, workDir: string) {
    // No dockerd: Docker's rules are loaded as it writes them, and Docker counts as not reachable.
    super(id, workDir, { ipv6Mode: "proxy", ipForwardBeforeDocker: true, withServices: false });
  }

  get sandboxNs(): string {
    return `dwl${this.id}-ingress`;
  }

  static async build(): Promise<MeshLab> {
    if (process.getuid?.() !== 0) throw new Error("the lab needs root (network namespaces, iptables)");
    const id = (process.pid % 10000).toString(36) + Math.floor(Math.random() * 36 ** 2).toString(36);
    const lab = new MeshLab(id, await mkdtemp(path.join(os.tmpdir(), "dockwall-mesh-")));
    try {
      await lab.buildNetwork();
      await lab.buildNode();
      const rules = await readFile(RULES, "utf8");
      await lab.run("ip", ["netns", "exec", lab.hostNs, "iptables-restore"], restoreInput(meshAddresses(rules)));
      await lab.waitForSandbox();
      return lab;
    } catch (e) {
      await lab.destroy().catch(() => undefined);
      throw e;
    }
  }

  /** docker0 and docker_gwbridge with their gateways, and the ingress sandbox on docker_gwbridge with a listener on the mesh port. */
  private async buildNode(): Promise<void> {
    for (const [bridge, gateway] of [["docker0", "198.19.0.1/17"], ["docker_gwbridge", "198.19.128.1/17"]] as const) {
      await this.run("ip", ["-n", this.hostNs, "link", "add", bridge, "type", "bridge"]);
      await this.run("ip", ["-n", this.hostNs, "addr", "add", gateway, "dev", bridge]);
      await this.run("ip", ["-n", this.hostNs, "link", "set", bridge, "up"]);
    }
    const ns = this.sandboxNs;
    await this.run("ip", ["netns", "add", ns]);
    await this.run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    await this.run("ip", ["-n", this.hostNs, "link", "add", "veth-ingress", "type", "veth", "peer", "name", "eth1", "netns", ns]);
    await this.run("ip", ["-n", this.hostNs, "link", "set", "veth-ingress", "master", "docker_gwbridge", "up"]);
    await this.run("ip", ["-n", ns, "addr", "add", `${SANDBOX}/17`, "dev", "eth1"]);
    await this.run("ip", ["-n", ns, "link", "set", "eth1", "up"]);
    await this.run("ip", ["-n", ns, "route", "add", "default", "via", "198.19.128.1"]);
    this.spawnIn(ns, "sh", ["-c", listenCommand(MESH_PORT, "ingress", "tcp")]);
  }

  private async waitForSandbox(): Promise<void> {
    for (let i = 0; i < 40; i++) {
      const r = await this.exec(this.hostNs, "socat", ["-T", "1", "-", `TCP:${SANDBOX}:${MESH_PORT},connect-timeout=1`], "");
      if (r.code === 0 && r.stdout.trim() === "ingress") return;
      await sleep(150);
    }
    throw new Error(`the ingress sandbox's listener ${SANDBOX}:${MESH_PORT} did not answer from the node`);
  }

  override async destroy() {
    await runner.run("ip", ["netns", "del", this.sandboxNs]);
    return super.destroy();
  }

  private async run(cmd: string, args: string[], input?: string): Promise<void> {
    const r = await runner.run(cmd, args, input === undefined ? {} : { input });
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr.trim()}`);
  }
}
