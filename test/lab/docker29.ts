/**
 * A stand-in for Docker 29 in the lab (no Docker 29 package reaches this machine, LAB.md): the
 * lab's outside segment and clients (lab.ts), and in the host namespace what Docker 29 leaves there
 * for the `usernet-portmap` scenario of Docker's generated rules (test/lab/docker-rules/): the bridges docker0 and bridge1,
 * one container namespace on bridge1 with a real listener on port 80 (published as 8080), Docker's
 * own rules loaded into the kernel exactly as Docker writes them (iptables back end: its filter, nat
 * and raw tables through iptables-restore; nftables back end: its `ip docker-bridges` table through
 * `nft -f`), and the same for IPv6 in ip6 tables. An Engine API stand-in (docker29-api.ts) answers
 * as Docker 29 / API 1.52 does on the lab's socket.
 *
 * Addresses: the rules name 192.0.2.0/24 (bridge1) and 172.17.0.0/16 (docker0); the lab uses test
 * addresses only, so they are rewritten octet for octet: 192.0.2.x -> 198.18.2.x, 172.17.x.y ->
 * 198.19.x.y (prefix lengths unchanged). Docker's IPv6 twin (--ipv6, both networks IPv6-enabled):
 * bridge1 2001:db8:2::/64, docker0 2001:db8:1::/64, loopback 127.0.0.0/8 -> ::1.
 *
 *   clients 198.18.0.x ─ seg ─ host eth0 198.18.0.1 ─ bridge1 198.18.2.1 ─ web 198.18.2.2 (80, 9000)
 *                                                   │                     └ late 198.18.2.3 (80, later)
 *                                                   └ docker0 198.19.0.1 (no containers)
 */
import { mkdtemp, readFile, rename, writeFile } from "node:fs/promises";
import { spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { Lab, HOST_ADDR, alive, listenCommand, sleep, type Family } from "./lab.js";
import { ProcessRunner, type CommandResult } from "../../src/exec/runner.js";
import { LAB_TAG } from "./leftovers.js";

export type FirewallBackend = "iptables" | "nftables";

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../..");
// Vendored (docker-rules/README.md): a clean checkout has nothing beside it.
const RULES = path.join(REPO, "test", "lab", "docker-rules");
const SCENARIO = "usernet-portmap";
const API_SERVER = path.join(REPO, "dist/test/lab/docker29-api.js");

/** A container of the stand-in: its namespace, bridge, addresses and what Docker publishes for it. */
export interface StandInContainer {
  name: string;
  id: string;
  /** Its address in Docker's own documents' space (192.0.2.0/24), rewritten to ipv4/ipv6 like the rules. */
  dockerAddress: string;
  ipv4: string;
  ipv6: string;
  /** Container ports with a listener; the first `published` of them are published. */
  listens: number[];
  published: { hostPort: number; containerPort: number }[];
}

/** The scenario's one container (Docker's rules name 192.0.2.2:80 published as 8080), and the one started later. */
export const WEB: StandInContainer = {
  name: "web",
  id: "a1".repeat(32),
  dockerAddress: "192.0.2.2",
  ipv4: "198.18.2.2",
  ipv6: "2001:db8:2::2",
  listens: [80, 9000],
  published: [{ hostPort: 8080, containerPort: 80 }],
};
export const LATE: StandInContainer = {
  name: "late",
  id: "b2".repeat(32),
  dockerAddress: "192.0.2.3",
  ipv4: "198.18.2.3",
  ipv6: "2001:db8:2::3",
  listens: [80],
  published: [{ hostPort: 8081, containerPort: 80 }],
};

export const NETWORKS = {
  bridge: { id: "c3".repeat(32), bridge: "docker0", ipv4: ["198.19.0.1", 16], ipv6: ["2001:db8:1::1", 64], subnets: ["198.19.0.0/16", "2001:db8:1::/64"] },
  bridge1: { id: "d4".repeat(32), bridge: "bridge1", ipv4: ["198.18.2.1", 24], ipv6: ["2001:db8:2::1", 64], subnets: ["198.18.2.0/24", "2001:db8:2::/64"] },
} as const;

const runner = new ProcessRunner();

/** Docker's addresses to the lab's, IPv4: octet for octet. */
export function labIpv4(text: string): string {
  return text.replace(/\b192\.0\.2\./g, "198.18.2.").replace(/\b172\.17\./g, "198.19.");
}

/**
 * Docker's IPv4 rules as Docker writes them for IPv6 (the same pattern in ip6 tables, ip6tables
 * -S or `table ip6`), with the lab's IPv6 addresses. Most specific forms first.
 */
export function labIpv6(text: string): string {
  const pairs: [RegExp, string][] = [
    [/\btable ip docker-bridges\b/g, "table ip6 docker-bridges"],
    [/\bip (daddr|saddr) /g, "ip6 $1 "],
    [/\b192\.0\.2\.(\d+):(\d+)\b/g, "[2001:db8:2::$1]:$2"],
    [/\b192\.0\.2\.(\d+)\/32\b/g, "2001:db8:2::$1/128"],
    [/\b192\.0\.2\.0\/24\b/g, "2001:db8:2::/64"],
    [/\b172\.17\.0\.0\/16\b/g, "2001:db8:1::/64"],
    [/\b192\.0\.2\.(\d+)\b/g, "2001:db8:2::$1"],
    // iptables: `! -d 127.0.0.0/8`; nft: `ip daddr != 127.0.0.0/8` (already ip6 above).
    [/ 127\.0\.0\.0\/8 -m addrtype/g, " ::1/128 -m addrtype"],
    [/ip6 daddr != 127\.0\.0\.0\/8/g, "ip6 daddr != ::1"],
  ];
  return pairs.reduce((t, [re, to]) => t.replace(re, to), text);
}

/** `iptables -S` lines per table (as in docker-rules/*.rules) to iptables-restore input. */
export function restoreInput(rulesText: string): string {
  const out: string[] = [];
  let open = false;
  for (const raw of rulesText.split("\n")) {
    const line = raw.trim();
    const table = /^# table (\w+)$/.exec(line);
    if (table) {
      if (open) out.push("COMMIT");
      out.push(`*${table[1]}`);
      open = true;
      continue;
    }
    if (line === "" || line.startsWith("#")) continue;
    const policy = /^-P (\S+) (\S+)$/.exec(line);
    const chain = /^-N (\S+)$/.exec(line);
    if (policy) out.push(`:${policy[1]} ${policy[2]} [0:0]`);
    else if (chain) out.push(`:${chain[1]} - [0:0]`);
    else out.push(line);
  }
  if (open) out.push("COMMIT");
  return out.join("\n") + "\n";
}

/**
 * The scenario's nftables table with a container published on bridge1 added the way Docker adds
 * one (the rules Docker's own scenario holds for 192.0.2.2, repeated for the new address): the
 * DNAT, the direct-access drop, and the per-port accept before the unpublished-port drop.
 */
export function nftWithContainer(text: string, c: { address: string; hostPort: number; containerPort: number }): string {
  const out: string[] = [];
  let chain = "";
  for (const line of text.split("\n")) {
    chain = /^\s*chain (\S+) \{/.exec(line)?.[1] ?? chain;
    if (chain === "filter-forward-in__bridge1" && /counter drop comment "UNPUBLISHED PORT DROP"/.test(line)) {
      out.push(`\t\tip daddr ${c.address} tcp dport ${c.containerPort} counter accept`);
    }
    out.push(line);
    if (chain === "nat-prerouting-and-output" && /\{$/.test(line)) {
      out.push(`\t\tiifname != "bridge1" tcp dport ${c.hostPort} counter dnat to ${c.address}:${c.containerPort} comment "DNAT"`);
    }
    if (chain === "raw-PREROUTING" && /policy accept;$/.test(line)) {
      out.push(`\t\tip daddr ${c.address} iifname != "bridge1" counter drop comment "DROP DIRECT ACCESS"`);
    }
  }
  return out.join("\n");
}

/**
 * The same container as Docker's iptables back end adds it, in Docker's address space (`iptables
 * -S` lines, TABLE first): the per-port accept at the top of DOCKER, the DNAT, the direct-access drop.
 */
export function iptablesForContainer(c: { address: string; hostPort: number; containerPort: number }): [string, string][] {
  return [
    ["filter", `-I DOCKER 1 -d ${c.address}/32 ! -i bridge1 -o bridge1 -p tcp -m tcp --dport ${c.containerPort} -j ACCEPT`],
    ["nat", `-A DOCKER ! -i bridge1 -p tcp -m tcp --dport ${c.hostPort} -j DNAT --to-destination ${c.address}:${c.containerPort}`],
    ["raw", `-A PREROUTING -d ${c.address}/32 ! -i bridge1 -j DROP`],
  ];
}

/**
 * Docker's table as this machine's nft (1.0.6) reads it: it knows the priority name `dstnat` on the
 * prerouting hook only, and Docker's document (printed by a newer nft) names it on output too. The
 * number is the same (NF_IP_PRI_NAT_DST, -100), so the chain is the same.
 */
export function forThisNft(text: string): string {
  return text.replace(/type nat hook output priority dstnat;/g, "type nat hook output priority -100;");
}

/** The lab with a Docker 29 stand-in instead of dockerd. */
export class Docker29Lab extends Lab {
  readonly containers: StandInContainer[] = [WEB];
  private apiPid: number | undefined;
  /** Docker's docker-bridges table in Docker's address space, as it stands (nftables back end). */
  private nftDocker = "";

  private constructor(
    id: string,
    workDir: string,
    readonly backend: FirewallBackend,
  ) {
    super(id, workDir, { ipv6Mode: "ip6tables", ipForwardBeforeDocker: true, withServices: false });
  }

  static async build(backend: FirewallBackend): Promise<Docker29Lab> {
    if (process.getuid?.() !== 0) throw new Error("the lab needs root (network namespaces, iptables, nft)");
    const id = (process.pid % 10000).toString(36) + Math.floor(Math.random() * 36 ** 2).toString(36);
    const workDir = await mkdtemp(path.join(os.tmpdir(), "dockwall-lab29-"));
    const lab = new Docker29Lab(id, workDir, backend);
    try {
      await lab.buildNetwork();
      await lab.buildDockerHost();
      await lab.loadDockerRules();
      await lab.startApi();
      for (const [port, text] of [[22, "ssh"], [9100, "metrics"]] as const) lab.spawnIn(lab.hostNs, "sh", ["-c", listenCommand(port, text, "tcp")]);
      await lab.waitForStandIn();
      return lab;
    } catch (e) {
      await lab.destroy().catch(() => undefined);
      throw e;
    }
  }

  containerNs(c: StandInContainer): string {
    return `dwl${this.id}-c${c.name}`;
  }

  /** The container's address from the stand-in's own list (what Docker's inspect would say). */
  override async containerAddress(name: string, family: Family): Promise<string | undefined> {
    const c = this.containers.find((x) => x.name === name);
    return c === undefined ? undefined : family === "ipv4" ? c.ipv4 : c.ipv6;
  }

  // ---- the Docker host ----------------------------------------------------------------------

  /** What dockerd sets up before any rule: forwarding on, bridges with their gateways, and the routes clients take to them. */
  private async buildDockerHost(): Promise<void> {
    await this.run("ip", ["netns", "exec", this.hostNs, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    await this.run("ip", ["netns", "exec", this.hostNs, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    // Forwarding on turns accept_ra off-ish, but eth0's address is static: nothing else to keep.
    for (const net of Object.values(NETWORKS)) {
      await this.run("ip", ["-n", this.hostNs, "link", "add", net.bridge, "type", "bridge"]);
      await this.run("ip", ["-n", this.hostNs, "addr", "add", `${net.ipv4[0]}/${net.ipv4[1]}`, "dev", net.bridge]);
      await this.run("ip", ["-n", this.hostNs, "addr", "add", `${net.ipv6[0]}/${net.ipv6[1]}`, "dev", net.bridge, "nodad"]);
      await this.run("ip", ["-n", this.hostNs, "link", "set", net.bridge, "up"]);
    }
    for (const client of Object.values(this.clients)) {
      // Direct routing by a neighbour to the stand-in's subnets (IPv6 goes via lab.ts's 2001:db8::/32 route).
      await this.run("ip", ["-n", client.ns, "route", "add", "198.18.2.0/24", "via", HOST_ADDR.ipv4]);
      await this.run("ip", ["-n", client.ns, "route", "add", "198.19.0.0/16", "via", HOST_ADDR.ipv4]);
    }
    await this.addContainerNamespace(WEB);
  }

  /** A container as Docker makes one: a namespace, a veth to bridge1, its addresses, a default route via the gateway, its listeners. */
  private async addContainerNamespace(c: StandInContainer): Promise<void> {
    const ns = this.containerNs(c);
    const hostSide = `veth${c.name}`;
    await this.run("ip", ["netns", "add", ns]);
    await this.run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    await this.run("ip", ["-n", this.hostNs, "link", "add", hostSide, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    await this.run("ip", ["-n", this.hostNs, "link", "set", hostSide, "master", "bridge1", "up"]);
    await this.run("ip", ["-n", ns, "addr", "add", `${c.ipv4}/24`, "dev", "eth0"]);
    await this.run("ip", ["-n", ns, "addr", "add", `${c.ipv6}/64`, "dev", "eth0", "nodad"]);
    await this.run("ip", ["-n", ns, "link", "set", "eth0", "up"]);
    await this.run("ip", ["-n", ns, "route", "add", "default", "via", NETWORKS.bridge1.ipv4[0]]);
    await this.run("ip", ["-n", ns, "-6", "route", "add", "default", "via", NETWORKS.bridge1.ipv6[0]]);
    for (const port of c.listens) this.spawnIn(ns, "sh", ["-c", listenCommand(port, `${c.name}-${port}`, "tcp")]);
  }

  /** Docker's rules for the scenario, loaded as Docker writes them (both families). */
  private async loadDockerRules(): Promise<void> {
    if (this.backend === "iptables") {
      const text = await readFile(path.join(RULES, "iptables-v29", `${SCENARIO}.rules`), "utf8");
      await this.run("ip", ["netns", "exec", this.hostNs, "iptables-restore"], restoreInput(labIpv4(text)));
      await this.run("ip", ["netns", "exec", this.hostNs, "ip6tables-restore"], restoreInput(labIpv6(text)));
    } else {
      const text = await readFile(path.join(RULES, "nftables-v29", `${SCENARIO}.nft`), "utf8");
      this.nftDocker = text;
      await this.loadNft();
    }
  }

  /** Both docker-bridges tables replaced in one transaction: dockwall's tables (ip filter, ip mangle) are not touched. */
  private async loadNft(transform: (table: string) => string = (t) => t): Promise<void> {
    const table = forThisNft(transform(this.nftDocker));
    const script = [
      "add table ip docker-bridges", "delete table ip docker-bridges", labIpv4(table),
      "add table ip6 docker-bridges", "delete table ip6 docker-bridges", labIpv6(table),
    ].join("\n");
    await this.run("ip", ["netns", "exec", this.hostNs, "nft", "-f", "-"], script);
  }

  /**
   * Docker's docker-bridges tables loaded again with `transform` applied to Docker's text (this load
   * only; the identity puts back Docker's own). For experiments on Docker's rules, such as its chains' priorities.
   */
  async reloadDockerTable(transform: (table: string) => string): Promise<void> {
    if (this.backend !== "nftables") throw new Error("reloadDockerTable is for the nftables back end");
    await this.loadNft(transform);
  }

  /**
   * A container started after dockwall's apply, as Docker 29 would start it: its namespace and
   * listener, its rules in Docker's back end, then its entry in the Engine API and its `start` event.
   */
  async startLateContainer(c: StandInContainer = LATE): Promise<void> {
    await this.addContainerNamespace(c);
    const p = c.published[0]!;
    const published = { address: c.dockerAddress, hostPort: p.hostPort, containerPort: p.containerPort };
    if (this.backend === "iptables") {
      for (const [cmd, map] of [["iptables", labIpv4], ["ip6tables", labIpv6]] as const) {
        for (const [table, line] of iptablesForContainer(published)) {
          await this.run("ip", ["netns", "exec", this.hostNs, cmd, "-w", "-t", table, ...map(line).split(" ")]);
        }
      }
    } else {
      this.nftDocker = nftWithContainer(this.nftDocker, published);
      await this.loadNft();
    }
    this.containers.push(c);
    await this.writeApiState();
    await this.waitForStandIn();
  }

  // ---- the Engine API stand-in ----------------------------------------------------------------

  private get apiState(): string {
    return path.join(this.workDir, "api-state.json");
  }

  /** What the stand-in answers from: rewritten on every change; the server reads it per request and sends an event per new container. */
  private async writeApiState(): Promise<void> {
    const state = { backend: this.backend, containers: this.containers, networks: NETWORKS };
    const tmp = `${this.apiState}.tmp`;
    await writeFile(tmp, JSON.stringify(state));
    await rename(tmp, this.apiState);
  }

  private async startApi(): Promise<void> {
    await this.writeApiState();
    const log = path.join(this.workDir, "api.log");
    // A lab process like the others (tagged, its own group), but outside spawnIn: it needs no namespace, only the socket.
    const child = spawn("sh", ["-c", `exec "$@" >>${log} 2>&1`, "sh", process.execPath, API_SERVER, this.socket, this.apiState], {
      stdio: "ignore",
      env: { ...process.env, [LAB_TAG]: this.id },
      detached: true,
    });
    this.apiPid = child.pid;
    child.unref();
    for (let i = 0; i < 80; i++) {
      const r = await this.docker(["version", "--format", "{{.Server.Version}}"]);
      if (r.code === 0 && r.stdout.trim().startsWith("29.")) return;
      await sleep(100);
    }
    throw new Error(`the Docker 29 API stand-in did not answer on ${this.socket}: ${await readFile(log, "utf8").catch(() => "")}`);
  }

  /** Every stand-in listener answers from inside the host namespace (probes then measure the firewall). */
  private async waitForStandIn(): Promise<void> {
    const targets: [string, string, number][] = [["127.0.0.1", "22", 22]];
    for (const c of this.containers) for (const port of c.listens) targets.push([c.ipv4, `${c.name}`, port], [`[${c.ipv6}]`, c.name, port]);
    for (const [addr, what, port] of targets) {
      let ok = false;
      for (let i = 0; i < 40 && !ok; i++) {
        const r = await this.exec(this.hostNs, "socat", ["-T", "1", "-", `TCP:${addr}:${port},connect-timeout=1`], "");
        ok = r.code === 0 && r.stdout.trim() !== "";
        if (!ok) await sleep(150);
      }
      if (!ok) throw new Error(`stand-in service ${what} ${addr}:${port} did not answer from the host namespace`);
    }
  }

  /** nft's view of the host namespace (counters included): what the test reads Docker's and dockwall's counters from. */
  async nftRuleset(): Promise<string> {
    return (await this.exec(this.hostNs, "nft", ["list", "ruleset"])).stdout;
  }

  override async destroy() {
    const pid = this.apiPid;
    this.apiPid = undefined;
    if (pid !== undefined) {
      try {
        process.kill(-pid, "SIGTERM");
      } catch {
        // already gone
      }
      for (let i = 0; i < 50 && alive(pid); i++) await sleep(50);
    }
    for (const c of this.containers) await runner.run("ip", ["netns", "del", this.containerNs(c)]);
    return super.destroy();
  }

  private async run(cmd: string, args: string[], input?: string): Promise<CommandResult> {
    const r = await runner.run(cmd, args, input === undefined ? {} : { input });
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr.trim()}`);
    return r;
  }
}
