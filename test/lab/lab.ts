/**
 * A real Docker host in network namespaces (LAB.md): an outside segment (a bridge in its own
 * namespace) with three clients and the Docker host, a dockerd 20.10 running inside the host
 * namespace, containers from an image imported from busybox and socat, and host services.
 *
 *   trusted 198.18.0.10 / 2001:db8:ff::10 ─┐
 *   stranger 198.18.0.20 / 2001:db8:ff::20 ─┼─ bridge "seg" ─ host 198.18.0.1 / 2001:db8:ff::1 ─ dockerd
 *   admin 198.18.0.30 / 2001:db8:ff::30 ────┘
 *
 * Only test addresses are used, and only namespaces this file created are touched. Every process
 * it starts is remembered by pid and ended by pid.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile, readFile, copyFile, symlink } from "node:fs/promises";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ProcessRunner, type CommandResult } from "../../src/exec/runner.js";
import { lineSplitter } from "../../src/exec/lines.js";
import { LAB_TAG, describeLeftovers, killLeftovers, type Leftover } from "./leftovers.js";
import { ENGINES, versionMatches, type Engine, type EngineVersion } from "./engines.js";

export interface LabOptions {
  /** "proxy": IPv6 reaches containers through docker-proxy (20.10's default). "ip6tables": Docker's own IPv6 DNAT. */
  ipv6Mode: "proxy" | "ip6tables";
  /** net.ipv4.ip_forward=1 before dockerd starts (Docker then leaves FORWARD at ACCEPT). */
  ipForwardBeforeDocker: boolean;
  /** Which Docker Engine runs in the host namespace (default 20.10). */
  docker?: EngineVersion;
  /** Start the lab's containers and host services (default true). */
  withServices?: boolean;
}

export interface Client {
  name: "trusted" | "stranger" | "admin";
  ns: string;
  ipv4: string;
  ipv6: string;
}

export type Family = "ipv4" | "ipv6";

export interface ProbeSpec {
  client: Client;
  family: Family;
  proto: "tcp" | "udp";
  port: number;
  /** Default: the Docker host's outside address. */
  dst?: string | undefined;
}

export const HOST_ADDR = { ipv4: "198.18.0.1", ipv6: "2001:db8:ff::1" } as const;
export const IMAGE = "dwlab:1";
const PROBE_TIMEOUT_S = "1.5";
const UDP_PROBE_TIMEOUT_S = "2";
const PROBE_CONCURRENCY = 12;
const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../..");
// The shipped artifact (package.json bin), not the unbundled build: what users run is what is tested.
const CLI = path.join(REPO, "dist/dockwall.cjs");

/** The repository the lab tests were built from (for `npm pack`). */
export const REPO_DIR = REPO;

/** The lab's containers: published ports that differ from container ports, an unpublished one, UDP, a loopback binding, a user network. */
export const CONTAINERS: { name: string; args: string[]; services: [number, string, "tcp" | "udp", boolean?][] }[] = [
  { name: "web", args: ["-p", "8080:80"], services: [[80, "web", "tcp"], [9000, "web-unpublished", "tcp"]] },
  { name: "db", args: ["-p", "5432:5432"], services: [[5432, "db", "tcp", true]] },
  { name: "django", args: ["-p", "8001:8000"], services: [[8000, "django", "tcp"]] },
  { name: "local", args: ["-p", "127.0.0.1:9090:80"], services: [[80, "local", "tcp"]] },
  // Host port = container port: probes to one UDP port meet one responder however they are routed (probeMany).
  { name: "dns", args: ["-p", "5353:5353/udp"], services: [[5353, "dns", "udp"]] },
  { name: "api", args: ["--network", "appnet", "-p", "8002:8000"], services: [[8000, "api", "tcp"]] },
];

/** Services in the host namespace itself (the host's own ports, INPUT). */
const HOST_SERVICES: [number, string, "tcp" | "udp"][] = [
  [22, "ssh", "tcp"],
  [9100, "metrics", "tcp"],
  [53, "hostdns", "udp"],
];

const runner = new ProcessRunner();

export class Lab {
  readonly clients: Record<Client["name"], Client>;
  readonly hostNs: string;
  readonly segNs: string;
  readonly socket: string;
  readonly stateDir: string;
  readonly engine: Engine;
  private readonly processes: ChildProcess[] = [];
  private dockerdPid: number | undefined;
  /** The environment of every long-running process the lab starts: tagged, so none can outlive it unseen (leftovers.ts). */
  private readonly env: NodeJS.ProcessEnv;

  protected constructor(
    readonly id: string,
    readonly workDir: string,
    readonly options: LabOptions,
  ) {
    this.hostNs = `dwl${id}-host`;
    this.segNs = `dwl${id}-seg`;
    const client = (name: Client["name"], n: number): Client => ({ name, ns: `dwl${id}-${name}`, ipv4: `198.18.0.${n}`, ipv6: `2001:db8:ff::${n}` });
    this.clients = { trusted: client("trusted", 10), stranger: client("stranger", 20), admin: client("admin", 30) };
    this.socket = path.join(workDir, "docker.sock");
    this.stateDir = path.join(workDir, "state");
    this.engine = ENGINES[options.docker ?? "20.10"];
    this.env = { ...process.env, [LAB_TAG]: id };
  }

  /** Builds the whole lab; on any failure it tears down what it made and rethrows. */
  static async create(options: LabOptions): Promise<Lab> {
    const engine = ENGINES[options.docker ?? "20.10"];
    await requireTools(engine);
    const id = (process.pid % 10000).toString(36) + Math.floor(Math.random() * 36 ** 2).toString(36);
    const workDir = await mkdtemp(path.join(os.tmpdir(), "dockwall-lab-"));
    const lab = new Lab(id, workDir, options);
    try {
      await lab.buildNetwork();
      await lab.startDockerd();
      await lab.importImage();
      if (options.withServices !== false) {
        await lab.createNetworks();
        for (const c of CONTAINERS) await lab.startContainer({ name: c.name, args: c.args, command: lab.servicesCommand(c.services) });
        for (const [port, text, proto] of HOST_SERVICES) lab.spawnIn(lab.hostNs, "sh", ["-c", listenCommand(port, text, proto)]);
        await lab.waitForServices();
      }
      return lab;
    } catch (e) {
      await lab.destroy().catch(() => undefined);
      throw e;
    }
  }

  // ---- network -------------------------------------------------------------------------------

  protected async buildNetwork(): Promise<void> {
    const all = [this.segNs, this.hostNs, ...Object.values(this.clients).map((c) => c.ns)];
    for (const ns of all) {
      await this.ok("ip", ["netns", "add", ns]);
      await this.ok("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }
    await this.ok("ip", ["-n", this.segNs, "link", "add", "seg", "type", "bridge"]);
    await this.ok("ip", ["-n", this.segNs, "link", "set", "seg", "up"]);
    const attach = async (ns: string, port: string, v4: string, v6: string) => {
      await this.ok("ip", ["-n", this.segNs, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns]);
      await this.ok("ip", ["-n", this.segNs, "link", "set", port, "master", "seg", "up"]);
      await this.ok("ip", ["-n", ns, "addr", "add", `${v4}/24`, "dev", "eth0"]);
      await this.ok("ip", ["-n", ns, "addr", "add", `${v6}/64`, "dev", "eth0", "nodad"]);
      await this.ok("ip", ["-n", ns, "link", "set", "eth0", "up"]);
    };
    await attach(this.hostNs, "p-host", HOST_ADDR.ipv4, HOST_ADDR.ipv6);
    for (const c of Object.values(this.clients)) {
      await attach(c.ns, `p-${c.name}`, c.ipv4, c.ipv6);
      // Routes to the container subnets via the Docker host: the "direct routing" a neighbour can do.
      // (2001:db8:1::/64 and 2001:db8:2::/64 are Docker's; the segment's own /64 stays on-link.)
      await this.ok("ip", ["-n", c.ns, "route", "add", "172.16.0.0/12", "via", HOST_ADDR.ipv4]);
      await this.ok("ip", ["-n", c.ns, "-6", "route", "add", "2001:db8::/32", "via", HOST_ADDR.ipv6]);
    }
    const forward = this.options.ipForwardBeforeDocker ? "1" : "0";
    await this.ok("ip", ["netns", "exec", this.hostNs, "sysctl", "-qw", `net.ipv4.ip_forward=${forward}`]);
    await this.ok("ip", ["netns", "exec", this.hostNs, "sysctl", "-qw", `net.ipv6.conf.all.forwarding=${forward}`]);
  }

  // ---- dockerd -------------------------------------------------------------------------------

  private dockerdArgs(): string[] {
    const args = [
      `--net=/var/run/netns/${this.hostNs}`,
      this.engine.dockerd,
      "--data-root", path.join(this.workDir, "docker-data"),
      "--exec-root", path.join(this.workDir, "docker-exec"),
      "--pidfile", path.join(this.workDir, "docker.pid"),
      "--host", `unix://${this.socket}`,
      // The lab's containers run `sh` as pid 1, which ignores SIGTERM: without this every dockerd
      // stop waits 15 s for them before killing them.
      "--shutdown-timeout", "2",
    ];
    if (this.options.ipv6Mode === "ip6tables") {
      args.push(...this.engine.ip6tablesArgs("2001:db8:1::/64"));
    }
    return args;
  }

  /** The shell words that exec nsenter with dockerd's arguments ("$@"); a swarm node wraps them (swarm-lab.ts). */
  protected dockerdLauncher(): string {
    return `exec nsenter "$@"`;
  }

  /** dockerd through nsenter, not `ip netns exec` (which remounts /sys and breaks dockerd's cgroups). */
  async startDockerd(): Promise<void> {
    const log = path.join(this.workDir, "dockerd.log");
    const binPath = [...this.engine.binDirs, process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"].join(":");
    const child = spawn("sh", ["-c", `${this.dockerdLauncher()} >>${log} 2>&1`, "sh", ...this.dockerdArgs()], { stdio: "ignore", env: { ...this.env, PATH: binPath } });
    this.dockerdPid = child.pid;
    child.unref();
    for (let i = 0; i < 120; i++) {
      const r = await this.docker(["version", "--format", "{{.Server.Version}}"]);
      if (r.code === 0) {
        const reported = r.stdout.trim();
        if (!versionMatches(this.engine, reported)) throw new Error(`the lab asked for Docker ${this.engine.version} (${this.engine.dockerd}) and got ${reported}`);
        return;
      }
      if (child.exitCode !== null) break;
      await sleep(250);
    }
    const tail = await readFile(log, "utf8").catch(() => "");
    throw new Error(`dockerd did not start in the lab namespace:\n${tail.split("\n").slice(-15).join("\n")}`);
  }

  async stopDockerd(): Promise<void> {
    const pid = this.dockerdPid;
    if (pid === undefined) return;
    this.dockerdPid = undefined;
    if (!alive(pid)) return;
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 200 && alive(pid); i++) await sleep(100);
    if (alive(pid)) process.kill(pid, "SIGKILL");
    for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
    await rm(path.join(this.workDir, "docker.pid"), { force: true });
  }

  /** Stops dockerd by its pid and starts it again; containers come back (--restart always). */
  async restartDockerd(): Promise<void> {
    await this.stopDockerd();
    await this.startDockerd();
    await this.waitForServices();
  }

  // ---- image and containers ------------------------------------------------------------------

  protected async importImage(): Promise<void> {
    const root = path.join(this.workDir, "image");
    await mkdir(path.join(root, "bin"), { recursive: true });
    await mkdir(path.join(root, "www"), { recursive: true });
    await mkdir(path.join(root, "tmp"), { recursive: true });
    await copyFile("/bin/busybox", path.join(root, "bin/busybox"));
    for (const applet of ["sh", "cat", "echo", "httpd", "sleep", "ls", "ip", "head"]) await symlink("busybox", path.join(root, "bin", applet));
    await copyFile("/usr/bin/socat", path.join(root, "bin/socat"));
    const ldd = await this.ok("ldd", ["/usr/bin/socat"]);
    for (const lib of ldd.match(/\/\S+/g) ?? []) {
      await mkdir(path.join(root, path.dirname(lib)), { recursive: true });
      await copyFile(lib, path.join(root, lib));
    }
    await writeFile(path.join(root, "www/index.html"), "web\n");
    const r = await this.shell(`tar -C ${root} -c . | docker import - ${IMAGE}`);
    if (r.code !== 0) throw new Error(`docker import failed: ${r.stderr}`);
  }

  private async createNetworks(): Promise<void> {
    const v6 = this.options.ipv6Mode === "ip6tables" ? ["--ipv6", "--subnet", "2001:db8:2::/64"] : [];
    await this.dockerOk(["network", "create", "--subnet", "172.30.0.0/24", ...v6, "-o", "com.docker.network.bridge.name=dw-app", "appnet"]);
  }

  /**
   * A shell command that runs one or more listeners and keeps running. It ends on SIGTERM, as a real
   * service does: the shell is the container's pid 1, which the kernel shields from signals it has no
   * handler for, so without the trap every `docker stop` and every dockerd shutdown waited out
   * Docker's 10-second grace for each container (12 s per dockerd stop on Docker 28, measured).
   */
  servicesCommand(services: [number, string, "tcp" | "udp", boolean?][]): string[] {
    const parts = services.map(([port, text, proto, echo]) => `(${listenCommand(port, text, proto, echo)}) &`);
    return ["sh", "-c", `trap 'exit 0' TERM; ${parts.join(" ")} wait`];
  }

  serviceCommand(port: number, text: string, proto: "tcp" | "udp"): string[] {
    return this.servicesCommand([[port, text, proto]]);
  }

  /** docker run -d --restart always; retried, since containers sometimes fail right after dockerd starts. */
  async startContainer(spec: { name: string; args: string[]; command: string[] }): Promise<void> {
    let last = "";
    for (let attempt = 0; attempt < 5; attempt++) {
      await this.docker(["rm", "-f", spec.name]);
      const r = await this.docker(["run", "-d", "--restart", "always", "--name", spec.name, ...spec.args, IMAGE, ...spec.command]);
      if (r.code === 0 && (await this.running(spec.name))) return;
      last = r.stderr;
      await sleep(500);
    }
    throw new Error(`container ${spec.name} did not start: ${last}`);
  }

  private async running(name: string): Promise<boolean> {
    for (let i = 0; i < 20; i++) {
      const r = await this.docker(["inspect", "-f", "{{.State.Running}}", name]);
      if (r.stdout.trim() === "true") return true;
      await sleep(150);
    }
    return false;
  }

  async containerAddress(name: string, family: Family): Promise<string | undefined> {
    const field = family === "ipv4" ? "IPAddress" : "GlobalIPv6Address";
    const r = await this.dockerOk(["inspect", "-f", `{{range .NetworkSettings.Networks}}{{.${field}}} {{end}}`, name]);
    return r.trim().split(/\s+/).find((a) => a.length > 0);
  }

  /** Every lab service answers from inside the host namespace (so probes measure the firewall, not start-up). */
  async waitForServices(): Promise<void> {
    const checks: (() => Promise<boolean>)[] = [];
    for (const c of CONTAINERS) {
      checks.push(() => this.running(c.name));
      for (const [port, , proto] of c.services) {
        checks.push(async () => {
          const addr = await this.containerAddress(c.name, "ipv4");
          return addr !== undefined && this.answers(this.hostNs, "ipv4", proto, addr, port);
        });
      }
    }
    for (const [port, , proto] of HOST_SERVICES) checks.push(() => this.answers(this.hostNs, "ipv4", proto, "127.0.0.1", port));
    for (const check of checks) {
      let ok = false;
      for (let i = 0; i < 40 && !ok; i++) {
        ok = await check().catch(() => false);
        if (!ok) await sleep(250);
      }
      if (!ok) throw new Error(`a lab service did not come up: ${check.toString().slice(0, 120)}\n${await this.diagnosis()}`);
    }
    // Docker rewrites its rules and docker-proxy starts listening a moment after the container runs.
    await sleep(300);
  }

  /** What the containers and dockerd say, for a set-up that failed: a lab failure must be readable from CI's log. */
  private async diagnosis(): Promise<string> {
    const ps = await this.docker(["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    const log = await readFile(path.join(this.workDir, "dockerd.log"), "utf8").catch(() => "");
    return `containers:\n${ps.stdout}${ps.stderr}dockerd log (last lines):\n${log.split("\n").slice(-12).join("\n")}`;
  }

  // ---- probes --------------------------------------------------------------------------------

  /** A real connection from a client: true when it connected and the service answered. */
  async probe(client: Client, family: Family, proto: "tcp" | "udp", port: number, dst?: string): Promise<boolean> {
    return this.answers(client.ns, family, proto, dst ?? HOST_ADDR[family], port);
  }

  /**
   * One real attempt per probe; asking a doubtful "closed" again is the caller's choice
   * (checks.ts `probeOutcomes`), since only the caller knows which closed outcomes are surprising.
   * TCP probes run in parallel. UDP probes to one port run one at a time: a forked socat UDP
   * responder shares its socket with its parent, and a child can take another client's datagram and
   * answer the wrong peer. Different ports are different responders (every UDP port the lab
   * publishes is its container's own port, see CONTAINERS' dns), so their
   * queues run side by side: a closed UDP probe is a 2-second silence, and one queue for all of them
   * made most of a probe matrix's time.
   */
  async probeMany(specs: ProbeSpec[]): Promise<boolean[]> {
    const results: boolean[] = new Array(specs.length).fill(false);
    const worker = async (indices: number[]) => {
      for (let i = indices.shift(); i !== undefined; i = indices.shift()) {
        const s = specs[i]!;
        results[i] = await this.probe(s.client, s.family, s.proto, s.port, s.dst);
      }
    };
    const tcp = specs.flatMap((s, i) => (s.proto === "tcp" ? [i] : []));
    const udpByPort = new Map<number, number[]>();
    specs.forEach((s, i) => {
      if (s.proto === "udp") udpByPort.set(s.port, [...(udpByPort.get(s.port) ?? []), i]);
    });
    await Promise.all([...[...udpByPort.values()].map(worker), ...Array.from({ length: PROBE_CONCURRENCY }, () => worker(tcp))]);
    return results;
  }

  private async answers(ns: string, family: Family, proto: "tcp" | "udp", addr: string, port: number): Promise<boolean> {
    const host = family === "ipv6" ? `[${addr}]` : addr;
    const target = proto === "tcp" ? `TCP:${host}:${port},connect-timeout=${PROBE_TIMEOUT_S}` : `UDP:${host}:${port}`;
    // TCP sends nothing: a server that closes with unread data resets the connection, and the reset
    // can discard its answer before socat reads it. UDP needs a datagram to answer.
    if (proto === "udp") return this.udpAnswers(ns, target);
    const r = await this.exec(ns, "socat", ["-T", PROBE_TIMEOUT_S, "-t", PROBE_TIMEOUT_S, "-", target], "");
    return r.code === 0 && r.stdout.trim().length > 0;
  }

  /**
   * A UDP client never sees an end of stream, so socat would sit out its whole timeout even after the
   * answer came: the answer is taken as soon as it arrives and the client ended. That lets the wait
   * be generous (a loaded 2-core machine can take a second to fork the responder) at no cost.
   */
  private udpAnswers(ns: string, target: string): Promise<boolean> {
    return new Promise((resolve) => {
      const child = this.spawnIn(ns, "socat", ["-T", UDP_PROBE_TIMEOUT_S, "-t", UDP_PROBE_TIMEOUT_S, "-", target], "pipe");
      let answered = false;
      child.stdout!.on("data", (d: Buffer) => {
        if (answered || d.toString().trim() === "") return;
        answered = true;
        child.kill();
      });
      child.on("close", () => resolve(answered));
      child.stdin!.on("error", () => undefined);
      child.stdin!.end("probe\n");
    });
  }

  /** A long-lived TCP connection to an echo service (db): `exchange` sends a line and returns the echo. */
  openConnection(client: Client, family: Family, port: number, dst?: string): { exchange(line: string): Promise<string>; close(): void } {
    const addr = dst ?? HOST_ADDR[family];
    const host = family === "ipv6" ? `[${addr}]` : addr;
    const child = this.spawnIn(client.ns, "socat", ["-", `TCP:${host}:${port},connect-timeout=2`], "pipe");
    const lines: string[] = [];
    const waiters: ((l: string) => void)[] = [];
    let buffer = "";
    child.stdout!.on("data", (d: Buffer) => {
      buffer += d.toString();
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const w = waiters.shift();
        if (w) w(line);
        else lines.push(line);
      }
    });
    const nextLine = (timeoutMs: number) =>
      new Promise<string>((resolve, reject) => {
        const l = lines.shift();
        if (l !== undefined) return resolve(l);
        const timer = setTimeout(() => reject(new Error("no answer on the open connection")), timeoutMs);
        waiters.push((line) => {
          clearTimeout(timer);
          resolve(line);
        });
      });
    const greeting = nextLine(3000);
    return {
      async exchange(line: string) {
        await greeting;
        child.stdin!.write(`${line}\n`);
        return nextLine(3000);
      },
      close() {
        child.stdin!.end();
        if (child.pid !== undefined && alive(child.pid)) child.kill();
      },
    };
  }

  // ---- commands ------------------------------------------------------------------------------

  async exec(ns: string, cmd: string, args: string[], input?: string): Promise<CommandResult> {
    return runner.run("ip", ["netns", "exec", ns, cmd, ...args], input === undefined ? {} : { input });
  }

  async docker(args: string[]): Promise<CommandResult> {
    return runner.run("docker", args, { env: { DOCKER_HOST: `unix://${this.socket}` } });
  }

  private async dockerOk(args: string[]): Promise<string> {
    const r = await this.docker(args);
    if (r.code !== 0) throw new Error(`docker ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  }

  /**
   * The dockwall command line on a terminal (a pty from util-linux `script`), `input` typed into it:
   * what an operator at an SSH prompt sees.
   */
  async dockwallOnTerminal(args: string[], input: string): Promise<CommandResult> {
    const q = (w: string) => `'${w.replace(/'/g, "'\\''")}'`;
    const line = ["ip", "netns", "exec", this.hostNs, "env", `DOCKER_HOST=unix://${this.socket}`, `DOCKWALL_STATE_DIR=${this.stateDir}`, "SSH_CONNECTION=", process.execPath, CLI, ...args].map(q).join(" ");
    return runner.run("script", ["-qec", line, "/dev/null"], { input });
  }

  /** The dockwall command line, run inside the Docker host's namespace against the lab's dockerd. */
  async dockwall(args: string[], input?: string, env: Record<string, string> = {}): Promise<CommandResult> {
    return this.dockwallFrom([process.execPath, CLI], args, input, env);
  }

  /** The same, from another command line: `[installed/bin/dockwall]` for the package as npm installed it. */
  async dockwallFrom(command: string[], args: string[], input?: string, env: Record<string, string> = {}): Promise<CommandResult> {
    return runner.run("ip", ["netns", "exec", this.hostNs, ...command, ...args], {
      // SSH_CONNECTION empty: "not from SSH", whatever session the test run itself was started from
      // (apply would find it in a parent process); tests of the lock-out guard pass their own.
      env: { DOCKER_HOST: `unix://${this.socket}`, DOCKWALL_STATE_DIR: this.stateDir, SSH_CONNECTION: "", ...env },
      ...(input === undefined ? {} : { input }),
    });
  }

  /**
   * What a reboot leaves of the Docker host's firewall: nothing. Every table of both families, every
   * set and every tracked connection go (Docker's data, and dockwall's applied record, stay on disk).
   * dockerd must be stopped first.
   */
  async emptyKernel(): Promise<void> {
    for (const [cmd, args] of [["nft", ["flush", "ruleset"]], ["ipset", ["destroy"]], ["conntrack", ["-F"]]] as const) {
      const r = await this.exec(this.hostNs, cmd, [...args]);
      if (r.code !== 0 && !/0 flow entries/.test(r.stderr)) throw new Error(`${cmd} ${args.join(" ")} in the lab host: ${r.stderr}`);
    }
  }

  /** A long-running dockwall (watch) in the Docker host's namespace; ended by pid in destroy(). */
  startDockwall(args: string[], nodeFlags: string[] = [], env: Record<string, string> = {}): DockwallProcess {
    const child = spawn("ip", ["netns", "exec", this.hostNs, process.execPath, ...nodeFlags, CLI, ...args], {
      env: { ...this.env, DOCKER_HOST: `unix://${this.socket}`, DOCKWALL_STATE_DIR: this.stateDir, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: destroy() ends dockwall and whatever it started (flock, nft monitor) together.
      detached: true,
    });
    child.on("error", () => undefined);
    this.processes.push(child);
    return new DockwallProcess(child);
  }

  /** iptables-save -c of the Docker host (IPv4): rules with their [packets:bytes]. */
  async hostIptablesSaveCounted(): Promise<string> {
    return (await this.exec(this.hostNs, "iptables-save", ["-c"])).stdout;
  }

  async hostIptablesSave(family: Family): Promise<string> {
    const r = await this.exec(this.hostNs, family === "ipv4" ? "iptables-save" : "ip6tables-save", []);
    if (r.code !== 0) throw new Error(`iptables-save in the lab host: ${r.stderr}`);
    return r.stdout;
  }

  /**
   * Starts a long-running process in a namespace; destroy() ends it with its whole process group.
   * The group matters: a host service is `sh -c "socat ... || socat ..."`, whose socat (and socat's
   * forks) are children of the sh, so ending the sh alone left them running, orphaned.
   */
  spawnIn(ns: string, cmd: string, args: string[], stdio: "ignore" | "pipe" = "ignore"): ChildProcess {
    const child = spawn("ip", ["netns", "exec", ns, cmd, ...args], {
      stdio: stdio === "pipe" ? ["pipe", "pipe", "ignore"] : "ignore",
      env: this.env,
      detached: true,
    });
    child.on("error", () => undefined);
    this.processes.push(child);
    return child;
  }

  private async shell(script: string): Promise<CommandResult> {
    return runner.run("sh", ["-c", script], { env: { DOCKER_HOST: `unix://${this.socket}` } });
  }

  private async ok(cmd: string, args: string[]): Promise<string> {
    const r = await runner.run(cmd, args);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /**
   * Containers, dockerd, the processes started here (by pid, with their process groups), the
   * namespaces, the work folder. Returns what was still running after that orderly stop and had to
   * be killed by its tag (nothing, when every process was ended as it should be); those are killed
   * either way, so nothing outlives the lab.
   */
  async destroy(): Promise<Leftover[]> {
    if (this.dockerdPid !== undefined) {
      const ids = (await this.docker(["ps", "-aq"])).stdout.trim().split(/\s+/).filter(Boolean);
      if (ids.length) await this.docker(["rm", "-f", ...ids]);
    }
    await this.stopDockerd();
    for (const p of this.processes) endGroup(p, "SIGTERM");
    await sleep(100);
    for (const p of this.processes) endGroup(p, "SIGKILL");
    await sleep(50);
    const left = await killLeftovers(this.id);
    if (left.length > 0) process.stderr.write(`lab ${this.id}: killed processes its orderly stop left running: ${describeLeftovers(left)}\n`);
    for (const ns of [...Object.values(this.clients).map((c) => c.ns), this.hostNs, this.segNs]) {
      if (existsSync(`/var/run/netns/${ns}`)) await runner.run("ip", ["netns", "del", ns]);
    }
    // dockerd unmounts its layers on a clean stop; anything left would keep the folder busy.
    await runner.run("sh", ["-c", `grep -o ' ${this.workDir}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l`]);
    await rm(this.workDir, { recursive: true, force: true });
    return left;
  }
}

/** A process the lab started and its process group (spawnIn, startDockwall), ended together. */
function endGroup(p: ChildProcess, signal: NodeJS.Signals): void {
  // An exited (reaped) leader's pid may belong to someone else by now: its group's survivors, if
  // any, are found by their tag instead (killLeftovers).
  if (p.pid === undefined || p.exitCode !== null || p.signalCode !== null) return;
  try {
    process.kill(-p.pid, signal);
  } catch {
    // The group is gone (or the child was not a group leader): end the process itself if it lives.
    if (alive(p.pid)) p.kill(signal);
  }
}

/** A running dockwall: its JSON log lines as they come, signals, and its exit. */
export class DockwallProcess {
  readonly lines: Record<string, unknown>[] = [];
  readonly stderr: string[] = [];
  readonly exit: Promise<number | null>;
  private waiters: (() => void)[] = [];

  constructor(private readonly child: ChildProcess) {
    child.stdout!.setEncoding("utf8");
    child.stdout!.on(
      "data",
      lineSplitter((line) => {
        try {
          this.lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          this.lines.push({ unparsed: line });
        }
        for (const w of this.waiters.splice(0)) w();
      }),
    );
    child.stderr!.on("data", (b: Buffer) => this.stderr.push(b.toString()));
    this.exit = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  }

  /** The first log line from index `from` on that matches, waiting up to `ms`. */
  async waitFor(pred: (line: Record<string, unknown>) => boolean, from: number, ms: number): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.lines.slice(from).find(pred);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0 || this.child.exitCode !== null) {
        throw new Error(`no matching log line in ${ms} ms; log:\n${this.lines.map((l) => JSON.stringify(l)).join("\n")}\n${this.stderr.join("")}`);
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  signal(sig: NodeJS.Signals): void {
    // `ip netns exec` execs the command, so this pid is dockwall's own.
    this.child.kill(sig);
  }
}

/** A listener that answers `text` (and, with echo, then echoes lines), on IPv6 and IPv4 when the namespace has IPv6. */
export function listenCommand(port: number, text: string, proto: "tcp" | "udp", echo = false): string {
  const reply = `SYSTEM:'echo ${text}${echo ? "; cat" : ""}'`;
  if (proto === "tcp") {
    return `socat TCP6-LISTEN:${port},ipv6only=0,fork,reuseaddr ${reply} 2>/dev/null || socat TCP-LISTEN:${port},fork,reuseaddr ${reply}`;
  }
  // -t0.1: the forked child exits right after it has answered, so it cannot take the next datagram.
  return `socat -t0.1 UDP6-RECVFROM:${port},ipv6only=0,fork ${reply} 2>/dev/null || socat -t0.1 UDP-RECVFROM:${port},fork ${reply}`;
}

/** Lab tests fail, never skip, when the machine lacks what they need. */
async function requireTools(engine: Engine): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("the lab needs root (network namespaces, dockerd, iptables)");
  const missing: string[] = [];
  for (const tool of ["ip", "nsenter", "socat", "docker", "iptables-save", "ipset", "ldd", "tar", "nft", "conntrack", "stdbuf", engine.dockerd]) {
    const r = await runner.run("sh", ["-c", `command -v ${tool}`]);
    if (r.code !== 0) missing.push(tool);
  }
  if (!existsSync("/bin/busybox")) missing.push("/bin/busybox (busybox-static)");
  if (!existsSync(CLI)) missing.push(`${CLI} (run npm run build)`);
  if (missing.length) throw new Error(`the lab cannot run, missing: ${missing.join(", ")} (scripts/setup.sh installs them)`);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
