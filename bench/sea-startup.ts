/**
 * Start-up of the single executable (dist/release/dockwall-linux-<arch>, `npm run build:sea`) against
 * `node dist/dockwall.cjs`: `--version` (start-up and loading the bundle) and `check` on an example
 * policy (the policy loader and compiler too), with `node -e 0` as the floor. The commands take
 * turns, run by run, so a drift of the machine's speed moves them together; two warm-up runs each
 * first (the executable's 100 MB in the page cache, as on a host that runs it every few minutes).
 *
 * With BENCH_INSTRUCTIONS=1 each command also runs once under valgrind's callgrind, whose count of
 * instructions moves far less than any time when other work shares the machine (but a run takes
 * some 15 s).
 *
 * Run: npm run bench:sea   (prints the table; extra executables to compare as LABEL=PATH arguments)
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { figureTable, stats, type FigureRow } from "./report.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 30);
const WARM_UP = 2;
const repo = process.cwd();
const bundle = path.join(repo, "dist/dockwall.cjs");
const sea = path.join(repo, "dist/release", `dockwall-linux-${process.arch}`);
const policy = path.join(repo, "examples/office-and-web.yaml");

interface Program {
  label: string;
  command: string[];
}

/**
 * Wall time and CPU time (user + system) of one run, in ms, as bash's `time` reports them for the
 * child: the CPU time moves less than the wall time when other work shares the 2 cores.
 */
function timedRun(cmd: string[]): { wall: number; cpu: number } {
  const r = spawnSync("bash", ["-c", 'TIMEFORMAT="%3R %3U %3S"; time { "$@" >/dev/null 2>&1 || exit 99; }', "bash", ...cmd], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd.join(" ")}: exit ${r.status}`);
  const [wall, user, sys] = r.stderr.trim().split("\n").at(-1)!.split(" ").map(Number) as [number, number, number];
  return { wall: wall * 1000, cpu: (user + sys) * 1000 };
}

/** Instructions executed by one run (every thread), as callgrind counts them. */
function instructionCount(cmd: string[]): number {
  const r = spawnSync("valgrind", ["--tool=callgrind", "--callgrind-out-file=/dev/null", ...cmd], { encoding: "utf8", stdio: ["ignore", "ignore", "pipe"] });
  const m = /Collected : (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`valgrind ${cmd.join(" ")}: exit ${r.status}: ${r.stderr.slice(-500)}`);
  return Number(m[1]);
}

function main(): void {
  if (!existsSync(sea)) throw new Error(`no ${sea}: run npm run build:sea`);
  const programs: Program[] = [
    { label: "node dist/dockwall.cjs", command: [process.execPath, bundle] },
    { label: "single executable", command: [sea] },
    ...process.argv.slice(2).map((a) => {
      const [label, file] = a.split("=") as [string, string];
      return { label, command: [path.resolve(file)] };
    }),
  ];
  const cases = [
    ...programs.flatMap((p) => [
      { name: `${p.label} --version`, cmd: [...p.command, "--version"] },
      { name: `${p.label} check (examples/office-and-web.yaml)`, cmd: [...p.command, "check", "-c", policy] },
    ]),
    { name: "floor: node -e 0", cmd: [process.execPath, "-e", "0"] },
  ];
  const wall = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  const cpu = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  for (let i = 0; i < WARM_UP + RUNS; i++) {
    for (const c of cases) {
      const t = timedRun(c.cmd);
      if (i < WARM_UP) continue;
      wall.get(c.name)!.push(t.wall);
      cpu.get(c.name)!.push(t.cpu);
    }
  }
  const rows = (runs: Map<string, number[]>, what: string): FigureRow[] =>
    cases.map((c) => ({ name: `${c.name}: ${what}`, unit: "ms", runs: runs.get(c.name)!, ...stats(runs.get(c.name)!) }));
  const instructions: FigureRow[] = process.env.BENCH_INSTRUCTIONS === "1" ? cases.map((c) => {
    const n = [instructionCount(c.cmd) / 1e6];
    return { name: `${c.name}: instructions`, unit: "million", runs: n, ...stats(n) };
  }) : [];
  console.log(figureTable([...rows(wall, "wall"), ...rows(cpu, "CPU (user + system)"), ...instructions], 1, false));
}

main();
