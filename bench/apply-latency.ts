/**
 * Apply latency with a 100,000-member group (from a file) and 200 container rules, measured with the
 * real CLI against real netfilter inside a throwaway network namespace (no Docker needed: published-
 * port rules do not depend on it). Side by side with the floor (one `ipset restore` plus one
 * `iptables-restore` of the same payload) and the write-ups' way (one `iptables` call per rule).
 *
 * Run: npm run bench   (root; writes docs/BENCHMARKS.md and docs/benchmarks.json)
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, readFileSync, appendFileSync, mkdirSync } from "node:fs";
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

function stats(runs: number[]): { median: number; min: number; max: number } {
  const s = [...runs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s[s.length - 1]! };
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
    for (let run = 0; run < RUNS; run++) {
      writeFileSync(path.join(dir, "big.list"), members(MEMBERS).join("\n") + "\n");
      writeFileSync(policy, policyText());
      first.runs.push(timed(() => dockwall("apply", "-c", policy)));
      noop.runs.push(timed(() => dockwall("apply", "-c", policy)));
      appendFileSync(path.join(dir, "big.list"), members(1, MEMBERS)[0] + "\n");
      oneMember.runs.push(timed(() => dockwall("apply", "-c", policy)));
      appendFileSync(policy, "  - port: 30000\n    from: [big]\n");
      oneRule.runs.push(timed(() => dockwall("apply", "-c", policy)));
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
  } finally {
    spawnSync("ip", ["netns", "del", ns]);
    rmSync(dir, { recursive: true, force: true });
  }
  report(figures);
}

/** Splits an iptables-save rule line into arguments, keeping quoted strings whole. */
function splitArgs(line: string): string[] {
  return (line.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []).map((a) => (a.startsWith('"') ? a.slice(1, -1) : a));
}

function report(figures: Figure[]): void {
  const rows = figures.map((f) => {
    const s = stats(f.runs);
    const verdict = f.goal === undefined ? "" : s.median <= f.goal ? `met (<= ${f.goal} s)` : `MISSED (goal ${f.goal} s)`;
    return { ...f, ...s, verdict };
  });
  const date = new Date().toISOString().slice(0, 10);
  const machine = `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model ?? "?"}, Linux ${os.release()}`;
  const table = [
    "| benchmark | median s | min s | max s | goal |",
    "|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.name} | ${r.median.toFixed(3)} | ${r.min.toFixed(3)} | ${r.max.toFixed(3)} | ${r.verdict} |`),
  ].join("\n");
  console.log(table);
  mkdirSync(path.join(repo, "docs"), { recursive: true });
  writeFileSync(path.join(repo, "docs/benchmarks.json"), JSON.stringify({ date, machine, runs: RUNS, rows }, null, 2) + "\n");
  const doc = readFileSync(path.join(repo, "bench/BENCHMARKS.template.md"), "utf8")
    .replace("{{date}}", date)
    .replace("{{machine}}", machine)
    .replace("{{runs}}", String(RUNS))
    .replace("{{table}}", table);
  writeFileSync(path.join(repo, "docs/BENCHMARKS.md"), doc);
}

main();
