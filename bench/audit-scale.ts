/**
 * Audit against rule sets with many distinct `-s` sources, as fail2ban and allow-list scripts leave
 * them: a DOCKER-USER allow-list (`-s ADDR -i eth0 -j RETURN` per address, then a DROP) in front of
 * three published ports, and a fail2ban chain of bans (`-s ADDR -j REJECT` per address) in front of
 * SSH. The audit function runs on the parsed `iptables-save` text (what `dockwall audit` reads from
 * the kernel), so this measures the tracer alone: no kernel, no process start. Then, as root, the
 * real `dockwall audit --json` in a throwaway network namespace holding the same rules, with three
 * listening host sockets and no Docker (its published ports are not listed: the host sockets' traces
 * walk the fail2ban chain, and every source is still traced).
 *
 * Run: npm run bench:audit   (writes docs/AUDIT-BENCHMARKS.md and docs/audit-benchmarks.json)
 */
import { spawn, spawnSync } from "node:child_process";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseSave } from "../src/backends/iptables/save-parser.js";
import { RuleWalker } from "../src/trace/trace.js";
import { memberSets } from "../src/trace/sets.js";
import { audit, type AuditTarget } from "../src/trace/audit.js";
import { traceResolving } from "../src/trace/sets.js";
import type { TraceHost } from "../src/trace/packet.js";
import { figureTable, stats, writeReport, type FigureRow } from "./report.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const SIZES = (process.env.BENCH_AUDIT_SIZES ?? "500,5000,20000").split(",").map(Number);
/** The goal: 5,000 distinct sources audited in at most 2 s. */
const GOAL: Record<number, number> = { 5000: 2 };

function verdict(n: number, median: number): string {
  const goal = GOAL[n];
  return goal === undefined ? "" : median <= goal ? `met (<= ${goal} s)` : `MISSED (goal ${goal} s)`;
}

const HOST: TraceHost = {
  interfaces: [
    { name: "lo", addresses: ["127.0.0.1/8", "::1/128"] },
    { name: "eth0", addresses: ["198.18.0.1/24", "2001:db8:a::1/64"] },
    { name: "docker0", addresses: ["172.17.0.1/16"] },
  ],
};

/** The i-th of n distinct sources, inside 198.19.0.0/16 and 198.20.0.0/16 (test addresses). */
function source(i: number): string {
  return `198.${19 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
}

const PUBLISHED = [
  { port: 8080, to: "172.17.0.2", toPort: 80 },
  { port: 5432, to: "172.17.0.3", toPort: 5432 },
  { port: 8443, to: "172.17.0.4", toPort: 443 },
];

/** Docker 20.10's rules for three published ports, an allow-list in DOCKER-USER, fail2ban's bans on SSH. */
export function scaleRuleset(n: number): string {
  const allowed = Math.ceil(n / 2);
  const lines = [
    "*nat",
    ":PREROUTING ACCEPT [0:0]",
    ":INPUT ACCEPT [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":POSTROUTING ACCEPT [0:0]",
    ":DOCKER - [0:0]",
    "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
    "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
    "-A DOCKER -i docker0 -j RETURN",
    ...PUBLISHED.map((p) => `-A DOCKER ! -i docker0 -p tcp -m tcp --dport ${p.port} -j DNAT --to-destination ${p.to}:${p.toPort}`),
    "COMMIT",
    "*filter",
    ":INPUT ACCEPT [0:0]",
    ":FORWARD DROP [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":DOCKER - [0:0]",
    ":DOCKER-USER - [0:0]",
    ":f2b-sshd - [0:0]",
    "-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd",
    "-A INPUT -i lo -j ACCEPT",
    "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
    "-A INPUT -i eth0 -j DROP",
    "-A FORWARD -j DOCKER-USER",
    "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "-A FORWARD -o docker0 -j DOCKER",
    "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
    ...PUBLISHED.map((p) => `-A DOCKER -d ${p.to}/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport ${p.toPort} -j ACCEPT`),
    "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
  ];
  for (let i = 0; i < allowed; i++) lines.push(`-A DOCKER-USER -s ${source(i)}/32 -i eth0 -j RETURN`);
  lines.push("-A DOCKER-USER -i eth0 -j DROP", "-A DOCKER-USER -j RETURN");
  for (let i = allowed; i < n; i++) lines.push(`-A f2b-sshd -s ${source(i)}/32 -j REJECT --reject-with icmp-port-unreachable`);
  lines.push("-A f2b-sshd -j RETURN", "COMMIT", "");
  return lines.join("\n");
}

const TARGETS: AuditTarget[] = [
  { kind: "host", proto: "tcp", port: 22, family: "ipv4", bind: "0.0.0.0", what: "host socket" },
  { kind: "host", proto: "tcp", port: 9100, family: "ipv4", bind: "0.0.0.0", what: "host socket" },
  ...PUBLISHED.map((p): AuditTarget => ({ kind: "container", proto: "tcp", port: p.port, family: "ipv4", bind: "0.0.0.0", what: `container ${p.to} ${p.toPort}/tcp` })),
];

/** The audit as `dockwall audit` runs it once the kernel is read: parse, pick sources, trace every target. */
async function auditOnce(save: string): Promise<{ seconds: number; sources: number }> {
  const t = performance.now();
  const sets = memberSets(new Map());
  const walkers = { ipv4: new RuleWalker(parseSave(save), sets, HOST), ipv6: new RuleWalker(parseSave(""), sets, HOST) };
  const rows = await audit(TARGETS, walkers, HOST, ["docker0"]);
  const seconds = (performance.now() - t) / 1000;
  const ssh = rows.find((r) => r.target.port === 22)!.reach;
  const web = rows.find((r) => r.target.port === 8080)!.reach;
  // A sanity check on what was measured: SSH is public (the bans only reject), the web is for the allowed sources.
  if (ssh.who !== "anyone" || web.who !== "some") throw new Error(`unexpected audit: ${JSON.stringify([ssh, web]).slice(0, 200)}`);
  return { seconds, sources: web.sources.length };
}

/** One trace through the same rules, as `explain` runs it once the kernel is read. */
async function explainOnce(save: string, n: number): Promise<number> {
  const t = performance.now();
  const walker = new RuleWalker(parseSave(save), memberSets(new Map()), HOST);
  await traceResolving(walker, { family: "ipv4", proto: "tcp", src: source(n - 1), dst: "198.18.0.1", dport: 8080, inIface: "eth0" });
  return (performance.now() - t) / 1000;
}

function sh(ns: string, cmd: string, args: string[], input?: string): string {
  const r = spawnSync("ip", ["netns", "exec", ns, cmd, ...args], { input, encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

const HOST_PORTS = [22, 9100, 5432];

/** `dockwall audit --json` against real netfilter in a namespace holding the rule set; seconds per run. */
function kernelAudits(save: string): number[] {
  const ns = `dwaudit${process.pid}`;
  const cli = path.join(process.cwd(), "dist/dockwall.cjs");
  spawnSync("ip", ["netns", "add", ns]);
  let listeners: ReturnType<typeof spawn> | undefined;
  try {
    sh(ns, "ip", ["link", "set", "lo", "up"]);
    // A veth pair as the outside interface (this kernel may lack the dummy driver); its other end stays unused.
    sh(ns, "ip", ["link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer"]);
    sh(ns, "ip", ["addr", "add", "198.18.0.1/24", "dev", "eth0"]);
    sh(ns, "ip", ["link", "set", "eth0", "up"]);
    sh(ns, "ip", ["link", "set", "eth0peer", "up"]);
    sh(ns, "iptables-restore", [], save);
    const script = `const net=require("net");let n=0;for(const p of ${JSON.stringify(HOST_PORTS)})net.createServer().listen(p,()=>{if(++n===${HOST_PORTS.length})console.log("ready")});`;
    listeners = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    const deadline = Date.now() + 10_000;
    while (!sh(ns, "ss", ["-Hltn"]).includes(`:${HOST_PORTS.at(-1)}`)) {
      if (Date.now() > deadline) throw new Error("the host sockets did not start listening");
      spawnSync("sleep", ["0.05"]);
    }
    const runs: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const t = performance.now();
      const out = spawnSync("ip", ["netns", "exec", ns, "env", "DOCKER_HOST=unix:///nonexistent/docker.sock", `DOCKWALL_STATE_DIR=/tmp/${ns}-state`, process.execPath, cli, "audit", "--json"], { encoding: "utf8", maxBuffer: 1 << 28 });
      runs.push((performance.now() - t) / 1000);
      // Exit 3: SSH is open to anyone and no policy says it is intended.
      if (out.status !== 3 || !out.stdout.includes('"port": 9100')) throw new Error(`dockwall audit: exit ${out.status}: ${out.stderr}${out.stdout.slice(0, 300)}`);
    }
    return runs;
  } finally {
    if (listeners?.pid !== undefined) listeners.kill("SIGTERM");
    spawnSync("ip", ["netns", "del", ns]);
    spawnSync("rm", ["-rf", `/tmp/${ns}-state`]);
  }
}

/** Root and `ip netns`: the kernel figures can be measured (BENCH_AUDIT_KERNEL=0 skips them). */
function kernelAvailable(): boolean {
  return process.env.BENCH_AUDIT_KERNEL !== "0" && process.getuid?.() === 0 && spawnSync("ip", ["netns", "list"]).status === 0;
}

async function main(): Promise<void> {
  const rows: FigureRow[] = [];
  for (const n of SIZES) {
    const save = scaleRuleset(n);
    const runs: number[] = [];
    const explains: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const { seconds, sources } = await auditOnce(save);
      if (sources !== Math.ceil(n / 2)) throw new Error(`${sources} sources reach the web, expected ${Math.ceil(n / 2)}`);
      runs.push(seconds);
      explains.push(await explainOnce(save, n));
    }
    const s = stats(runs);
    rows.push({ name: `audit, ${n.toLocaleString("en")} distinct -s sources`, unit: "s", runs, ...s, goal: verdict(n, s.median) });
    rows.push({ name: `explain, ${n.toLocaleString("en")} distinct -s sources`, unit: "s", runs: explains, ...stats(explains) });
    console.log(`${n}: audit ${s.median.toFixed(3)} s, explain ${stats(explains).median.toFixed(3)} s`);
    if (kernelAvailable()) {
      const kernel = kernelAudits(save);
      const k = stats(kernel);
      rows.push({ name: `dockwall audit --json against the kernel, ${n.toLocaleString("en")} distinct -s sources, ${HOST_PORTS.length} host sockets`, unit: "s", runs: kernel, ...k, goal: verdict(n, k.median) });
      console.log(`${n}: dockwall audit against the kernel ${stats(kernel).median.toFixed(3)} s`);
    }
  }
  const table = figureTable(rows, 3, true);
  console.log(table);
  writeReport("audit-benchmarks.json", { runs: RUNS, rows }, "AUDIT-BENCHMARKS.template.md", "AUDIT-BENCHMARKS.md", { table, runs: String(RUNS) });
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
