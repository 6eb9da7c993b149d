/**
 * Apply latency with a 100,000-member group (from a file) and 200 container rules, measured with the
 * real CLI against real netfilter inside a throwaway network namespace (no Docker needed: published-
 * port rules do not depend on it). Side by side with the floor (one `ipset restore` plus one
 * `iptables-restore` of the same payload) and the write-ups' way (one `iptables` call per rule).
 *
 * Run: npm run bench   (root; writes docs/BENCHMARKS.md and docs/benchmarks.json)
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { figureTable, readReport, stats, writeReport, type FigureRow } from "./report.js";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const MEMBERS = 100_000;
const CONTAINER_RULES = 200;
const repo = process.cwd();
const cli = path.join(repo, "dist/dockwall.cjs");

function sh(ns: string, cmd: string, args: string[], input?: string): string {
  const r = spawnSync("ip", ["netns", "exec", ns, cmd, ...args], { input, encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return (performance.now() - t) / 1000;
}

interface Figure {
  name: string;
  goal?: number;
  runs: number[];
}

/** 100,000 distinct /32s inside 198.18.0.0/15 (test addresses): 198.18.0.0 .. 198.19.134.159. */
function members(n: number, offset = 0): string[] {
  const out: string[] = [];
  for (let i = offset; i < offset + n; i++) out.push(`198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`);
  return out;
}

function policyText(): string {
  const lines = ["groups:", "  big: { file: big.list }", "  office: [198.19.200.0/24]", "trusted: [office]", "host:", "  - port: 22", "containers:"];
  for (let i = 0; i < CONTAINER_RULES; i++) lines.push(`  - port: ${20000 + i}`, "    from: [big]");
  return lines.join("\n") + "\n";
}

function main(): void {
  const ns = `dwbench${process.pid}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), "dockwall-bench-"));
  const figures: Figure[] = [];
  const add = (name: string, goal?: number): Figure => {
    const f: Figure = { name, goal, runs: [] };
    figures.push(f);
    return f;
  };
  spawnSync("ip", ["netns", "add", ns]);
  try {
    const state = path.join(dir, "state");
    const policy = path.join(dir, "dockwall.yaml");
    writeFileSync(policy, policyText());
    const env = { ...process.env, DOCKWALL_STATE_DIR: state, DOCKER_HOST: `unix://${dir}/no-docker.sock` };
    const dockwall = (...args: string[]) => {
      const r = spawnSync("ip", ["netns", "exec", ns, process.execPath, cli, ...args], { env, encoding: "utf8" });
      if (r.status !== 0) throw new Error(`dockwall ${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
      return r.stdout;
    };
    const first = add("first apply", 0.8);
    const noop = add("no-op re-apply", 0.25);
    const oneMember = add("one member added", 0.5);
    const oneRule = add("one rule added");
    const floor = add("floor: one ipset restore + one iptables-restore");
    const perRule = add("write-ups' way: one iptables call per rule (rules only)");
    const nodeStart = add("reference: node start-up alone (node -e 0)");
    const auditFig = add(`audit: ${PUBLISHED} published ports, ${HOST_SOCKETS} host sockets, the ${MEMBERS.toLocaleString("en")}-member set`, 1.0);
    const explainFig = add("explain: one connection through the same rules", 0.3);
    // A stand-in Docker Engine (published ports for audit) and host sockets, both in their own processes.
    const engineSocket = path.join(dir, "engine.sock");
    writeFileSync(path.join(dir, "engine.cjs"), fakeEngineScript());
    const engine = spawn(process.execPath, [path.join(dir, "engine.cjs"), engineSocket], { stdio: "ignore" });
    const auditEnv = { ...env, DOCKER_HOST: `unix://${engineSocket}` };
    for (const deadline = Date.now() + 10_000; !existsSync(engineSocket); spawnSync("sleep", ["0.05"])) {
      if (Date.now() > deadline) throw new Error("the stand-in Engine API did not start");
    }
    const inspect = (...args: string[]) => {
      const r = spawnSync("ip", ["netns", "exec", ns, process.execPath, cli, ...args], { env: auditEnv, encoding: "utf8", maxBuffer: 1 << 26 });
      // audit exits 3 when something is open to anyone, explain when the connection is refused: both are answers.
      if (r.status !== 0 && r.status !== 3) throw new Error(`dockwall ${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
      return r.stdout;
    };
    for (let run = 0; run < RUNS; run++) {
      writeFileSync(path.join(dir, "big.list"), members(MEMBERS).join("\n") + "\n");
      writeFileSync(policy, policyText());
      first.runs.push(timed(() => dockwall("apply", "-c", policy)));
      noop.runs.push(timed(() => dockwall("apply", "-c", policy)));
      appendFileSync(path.join(dir, "big.list"), members(1, MEMBERS)[0] + "\n");
      oneMember.runs.push(timed(() => dockwall("apply", "-c", policy)));
      appendFileSync(policy, "  - port: 30000\n    from: [big]\n");
      oneRule.runs.push(timed(() => dockwall("apply", "-c", policy)));
      const listeners = startOutsideAndListeners(ns);
      try {
        let rows = 0;
        auditFig.runs.push(timed(() => (rows = (JSON.parse(inspect("audit", "--json")) as { rows: unknown[] }).rows.length)));
        if (rows < PUBLISHED + HOST_SOCKETS) throw new Error(`audit listed ${rows} rows, expected at least ${PUBLISHED + HOST_SOCKETS}`);
        explainFig.runs.push(timed(() => inspect("explain", "198.51.100.77", `tcp/${20000 + PUBLISHED - 1}`)));
      } finally {
        listeners.kill("SIGTERM");
      }
      // The same rules and members, loaded directly: what the kernel tools cost at the least.
      const v4 = sh(ns, "iptables-save", []);
      const sets = sh(ns, "ipset", ["save"]);
      dockwall("remove");
      floor.runs.push(
        timed(() => {
          sh(ns, "ipset", ["restore"], sets);
          sh(ns, "iptables-restore", ["--noflush"], v4);
        }),
      );
      const rules = v4.split("\n").filter((l) => l.startsWith("-A DOCKWALL-"));
      sh(ns, "iptables", ["-t", "filter", "-F", "DOCKWALL-INPUT-OUTSIDE"]);
      sh(ns, "iptables", ["-t", "mangle", "-F", "DOCKWALL-FORWARD-OUTSIDE"]);
      perRule.runs.push(
        timed(() => {
          for (const r of rules) {
            const table = r.includes("DOCKWALL-FORWARD") ? "mangle" : "filter";
            const args = splitArgs(r);
            if (args[1] === "DOCKWALL-INPUT" || args[1] === "DOCKWALL-FORWARD") continue;
            sh(ns, "iptables", ["-t", table, ...args]);
          }
        }),
      );
      nodeStart.runs.push(timed(() => sh(ns, process.execPath, ["-e", "0"])));
      spawnSync("ip", ["netns", "del", ns]);
      spawnSync("ip", ["netns", "add", ns]);
      rmSync(state, { recursive: true, force: true });
    }
    engine.kill("SIGTERM");
  } finally {
    spawnSync("ip", ["netns", "del", ns]);
    rmSync(dir, { recursive: true, force: true });
  }
  report(figures);
}

const PUBLISHED = 200;
const HOST_SOCKETS = 50;

/** An outside interface for audit to trace on, and 50 listening TCP sockets in one process (killed by its pid). */
function startOutsideAndListeners(ns: string): ReturnType<typeof spawn> {
  if (!sh(ns, "ip", ["link", "show"]).includes("outside0")) {
    // A veth pair (this kernel may lack the dummy driver); its other end stays unused.
    sh(ns, "ip", ["link", "add", "outside0", "type", "veth", "peer", "name", "outside1"]);
    sh(ns, "ip", ["link", "set", "outside1", "up"]);
    sh(ns, "ip", ["addr", "add", "198.51.100.1/24", "dev", "outside0"]);
    sh(ns, "ip", ["-6", "addr", "add", "2001:db8:b::1/64", "dev", "outside0", "nodad"]);
    sh(ns, "ip", ["link", "set", "outside0", "up"]);
  }
  const script = `const net=require("net");let n=0;for(let i=0;i<${HOST_SOCKETS};i++)net.createServer().listen(40000+i,()=>{if(++n===${HOST_SOCKETS})console.log("ready")});`;
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  // Wait (synchronously, as the rest of this file) until every socket listens.
  const deadline = Date.now() + 10_000;
  while (!sh(ns, "ss", ["-Hltn", "sport", "=", `:${40000 + HOST_SOCKETS - 1}`]).includes("LISTEN")) {
    if (Date.now() > deadline) throw new Error("the host sockets did not start listening");
    spawnSync("sleep", ["0.05"]);
  }
  return child;
}

/** A stand-in Docker Engine API on a unix socket: 200 running containers, each publishing one port. */
function fakeEngineScript(): string {
  return `const http = require("http");
const containers = Array.from({ length: ${PUBLISHED} }, (_, i) => ({
  Id: String(i).padStart(64, "0"), Names: ["/c" + i], State: "running",
  Ports: [{ IP: "0.0.0.0", PrivatePort: 80, PublicPort: 20000 + i, Type: "tcp" }],
  NetworkSettings: { Networks: { bridge: { IPAddress: "172.17." + (i >> 8) + "." + ((i & 255) + 2) } } },
}));
const networks = [{ Id: "a".repeat(64), Name: "bridge", Driver: "bridge", Options: { "com.docker.network.bridge.name": "docker0" }, IPAM: { Config: [{ Subnet: "172.17.0.0/16" }] } }];
http.createServer((req, res) => {
  const body = req.url.startsWith("/info") ? { ServerVersion: "20.10.24" } : req.url.startsWith("/containers") ? containers : networks;
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify(body));
}).listen(process.argv[2]);
`;
}

/** Splits an iptables-save rule line into arguments, keeping quoted strings whole. */
function splitArgs(line: string): string[] {
  return (line.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []).map((a) => (a.startsWith('"') ? a.slice(1, -1) : a));
}

function report(figures: Figure[]): void {
  const relative = firstAgainstFloor(figures);
  const rows = figures.map((f) => {
    const s = stats(f.runs);
    let verdict = f.goal === undefined ? "" : s.median <= f.goal ? `met (<= ${f.goal} s)` : `MISSED (goal ${f.goal} s)`;
    // The first-apply goal came with its machine's floor: judged against this machine's too.
    if (f.name === "first apply" && s.median > f.goal!) {
      verdict += `; ${s.median <= relative.scaledGoal ? "met" : "MISSED"} scaled to this machine's floor (<= ${relative.scaledGoal.toFixed(2)} s, see below)`;
    }
    return { ...f, ...s, verdict };
  });
  const table = [
    "| benchmark | median s | min s | max s | goal |",
    "|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.name} | ${r.median.toFixed(3)} | ${r.min.toFixed(3)} | ${r.max.toFixed(3)} | ${r.verdict} |`),
  ].join("\n");
  console.log(table);
  writeReport("benchmarks.json", { runs: RUNS, rows, firstAgainstFloor: relative }, "BENCHMARKS.template.md", "BENCHMARKS.md", {
    runs: String(RUNS),
    table,
    others: otherFigures(),
    firstVsFloor: relative.ratio.toFixed(2),
    goalVsFloor: GOAL_VS_FLOOR.toFixed(2),
    scaledGoal: relative.scaledGoal.toFixed(2),
  });
}

/**
 * The issue set the first-apply goal (0.8 s) beside a reference floor measured on its machine: one
 * ipset restore of the 100,000 members plus one iptables-restore of the rules, 0.35 s. The floor row
 * measures the same here, in the same runs, so the ratio is what carries over between machines.
 */
const GOAL_VS_FLOOR = 0.8 / 0.35;

function firstAgainstFloor(figures: Figure[]): { ratio: number; scaledGoal: number } {
  const runs = (name: string) => figures.find((f) => f.name.startsWith(name))!.runs;
  const first = runs("first apply");
  const floor = runs("floor");
  return { ratio: stats(first.map((t, i) => t / floor[i]!)).median, scaledGoal: GOAL_VS_FLOOR * stats(floor).median };
}

/** The daemon's, the audit's and the data plane's figures, from their own benchmarks' JSON (run before this one by `npm run bench`). */
function otherFigures(): string {
  const parts: string[] = [];
  const watch = readReport<{ date: string; rows: FigureRow[] }>("watch-benchmarks.json");
  parts.push("## Reaction and footprint of `dockwall watch`", "");
  parts.push(watch ? `Measured ${watch.date}; how, and the analysis: [WATCH-BENCHMARKS.md](WATCH-BENCHMARKS.md).\n\n${figureTable(watch.rows, 2, true)}` : "Not measured in this run (`npm run bench:watch`).");
  const scale = readReport<{ date: string; rows: FigureRow[] }>("audit-benchmarks.json");
  parts.push("", "## Audit with many distinct sources", "");
  parts.push(scale ? `Measured ${scale.date}; how, and what changed: [AUDIT-BENCHMARKS.md](AUDIT-BENCHMARKS.md).\n\n${figureTable(scale.rows, 3, true)}` : "Not measured in this run (`npm run bench:audit`).");
  const dp = readReport<{ date: string; rows: FigureRow[]; ratio?: Record<string, number> }>("dataplane-benchmarks.json");
  parts.push("", "## Data plane", "");
  if (dp) {
    const pct = (r: number | undefined) => (r === undefined ? "?" : `${(r * 100).toFixed(1)} %`);
    const verdict = (r: number | undefined) => (r !== undefined && r >= 0.95 ? "met" : "MISSED");
    parts.push(
      `Measured ${dp.date}; how: [DATAPLANE-BENCHMARKS.md](DATAPLANE-BENCHMARKS.md).\n\n${figureTable(dp.rows, 2, true)}\n\n` +
        `Goal, at least 95 % of the no-firewall figures: requests per second ${pct(dp.ratio?.rps)} (${verdict(dp.ratio?.rps)}), ` +
        `bulk throughput ${pct(dp.ratio?.bps)} (${verdict(dp.ratio?.bps)}). The same allow-list as 100,000 \`-s\` rules: ` +
        `${pct(dp.ratio?.rpsRules)} and ${pct(dp.ratio?.bpsRules)}.`,
    );
  } else {
    parts.push("Not measured in this run (`npm run bench:dataplane`).");
  }
  return parts.join("\n");
}

main();
