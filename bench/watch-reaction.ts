/**
 * How fast `dockwall watch` reacts, and what it costs while idle, against a real dockerd in the lab
 * (test/lab): drift repaired after another tool deletes a jump; a container named in the policy
 * opened to its allowed source after it starts; 100 containers started at once; the daemon's
 * resident memory and CPU over 60 idle seconds and while the 100 containers start.
 *
 * The daemon runs with the node flags of the systemd unit (DAEMON_NODE_FLAGS).
 *
 * Run: npm run bench:watch   (root; writes docs/WATCH-BENCHMARKS.md and docs/watch-benchmarks.json)
 */
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { Lab, type DockwallProcess } from "../test/lab/lab.js";
import { DAEMON_NODE_FLAGS } from "../src/daemon/systemd.js";
import { figureTable, stats, writeReport } from "./report.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const MANY = Number(process.env.BENCH_CONTAINERS ?? 100);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Figure {
  name: string;
  unit: string;
  goal?: string;
  runs: number[];
}

/** Polls `check` every 10 ms; the time in ms from `since` until it holds. */
async function until(check: () => Promise<boolean>, since: number, limitMs = 30_000): Promise<number> {
  for (;;) {
    if (await check()) return Date.now() - since;
    if (Date.now() - since > limitMs) throw new Error(`not within ${limitMs} ms`);
    await sleep(10);
  }
}

/** utime+stime (clock ticks) and resident set (KiB) of a process. */
async function usage(pid: number): Promise<{ cpuTicks: number; rssKiB: number }> {
  const stat = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]!.split(" ");
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return { cpuTicks: Number(stat[11]) + Number(stat[12]), rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) };
}

const TICKS_PER_SECOND = 100;

async function main(): Promise<void> {
  const figures: Figure[] = [];
  const add = (name: string, unit: string, goal?: string): Figure => {
    const f: Figure = { name, unit, ...(goal ? { goal } : {}), runs: [] };
    figures.push(f);
    return f;
  };
  const drift = add("drift repaired after a jump is deleted", "ms", "at most 1000 ms (aim 200)");
  const named = add("container named in the policy: rule in place after it started", "ms", "at most 1000 ms");
  const converge = add(`${MANY} containers started at once: rules complete after the last one started`, "ms", "at most 3000 ms");
  const idleRss = add("idle resident memory", "MiB", "at most 80 MiB");
  const idleCpu = add("idle CPU over 60 s", "% of one core", "none measurable");
  const busyCpu = add(`CPU while ${MANY} containers start`, "% of one core");
  const busyRss = add(`peak resident memory while ${MANY} containers start`, "MiB");
  const boot = add("boot, dockerd first: from dockwall's start until its rules are in the kernel (the exposure window)", "ms", "dockwall first: 0 connections (lab test)");

  const lab = await Lab.create({ ipv6Mode: "ip6tables", ipForwardBeforeDocker: false, withServices: false });
  let watch: DockwallProcess | undefined;
  try {
    const names = Array.from({ length: MANY }, (_, i) => `many${i}`);
    const policy = path.join(lab.workDir, "dockwall.yaml");
    await writeFile(
      policy,
      [
        "trusted: [198.18.0.8/29]",
        "host:",
        "  - port: 22",
        "containers:",
        "  - container: fresh",
        "    port: 8000",
        "    from: [198.18.0.30]",
        ...names.flatMap((n) => [`  - container: ${n}`, "    port: 8000", "    from: [198.18.0.30]"]),
      ].join("\n") + "\n",
    );
    // With dockerd up first, the host is open until dockwall's first apply is in: started from a
    // kernel without dockwall's rules, each time.
    for (let run = 0; run < RUNS; run++) {
      if ((await lab.dockwall(["remove"])).code !== 0) throw new Error("dockwall remove failed");
      const t = Date.now();
      const booting = lab.startDockwall(["watch", "-c", policy], DAEMON_NODE_FLAGS);
      await booting.waitFor((l) => l.event === "ready", 0, 60_000);
      boot.runs.push(Date.now() - t);
      booting.signal("SIGTERM");
      await booting.exit;
    }
    // As the systemd unit runs it (dockwall install).
    watch = lab.startDockwall(["watch", "-c", policy], DAEMON_NODE_FLAGS);
    await watch.waitFor((l) => l.event === "ready", 0, 60_000);
    const pid = Number((await watch.waitFor((l) => l.event === "watch started", 0, 1000)).pid);
    const save = async () => (await lab.hostIptablesSave("ipv4")) + (await lab.hostIptablesSave("ipv6"));

    for (let run = 0; run < RUNS; run++) {
      await lab.exec(lab.hostNs, "iptables", ["-D", "INPUT", "-m", "comment", "--comment", "dockwall", "-j", "DOCKWALL-INPUT"]);
      const t = Date.now();
      drift.runs.push(await until(async () => /^-A INPUT -m comment --comment dockwall -j DOCKWALL-INPUT$/m.test(await lab.hostIptablesSave("ipv4")), t));
      await sleep(300);
    }

    for (let run = 0; run < RUNS; run++) {
      const port = 18000 + run;
      await lab.docker(["rm", "-f", "fresh"]);
      await lab.startContainer({ name: "fresh", args: ["-p", `${port}:8000`], command: lab.serviceCommand(8000, "fresh", "tcp") });
      const started = Date.parse((await lab.docker(["inspect", "-f", "{{.State.StartedAt}}", "fresh"])).stdout.trim());
      named.runs.push(await until(async () => (await lab.hostIptablesSave("ipv4")).includes(`--ctorigdstport ${port} `), started));
      if (!(await lab.probe(lab.clients.admin, "ipv4", "tcp", port))) throw new Error("the admin cannot reach the fresh container");
    }

    for (let run = 0; run < RUNS; run++) {
      // Idle means nothing happening: first let the last apply's tail (V8's background compiler and
      // collector threads) finish.
      await sleep(10_000);
      const idleStart = await usage(pid);
      await sleep(60_000);
      const idleEnd = await usage(pid);
      idleRss.runs.push(idleEnd.rssKiB / 1024);
      idleCpu.runs.push(((idleEnd.cpuTicks - idleStart.cpuTicks) / TICKS_PER_SECOND / 60) * 100);

      const busyStart = await usage(pid);
      const t0 = Date.now();
      let peak = busyStart.rssKiB;
      const sampling = setInterval(() => void usage(pid).then((u) => (peak = Math.max(peak, u.rssKiB))), 100);
      await Promise.all(
        names.map((n, i) =>
          lab.docker(["run", "-d", "--name", n, "-p", `${20000 + i}:8000`, "dwlab:1", ...lab.serviceCommand(8000, n, "tcp")]),
        ),
      );
      const lastStart = Math.max(
        ...(await Promise.all(names.map(async (n) => Date.parse((await lab.docker(["inspect", "-f", "{{.State.StartedAt}}", n])).stdout.trim())))),
      );
      const complete = async () => {
        const text = await save();
        return names.every((_, i) => text.includes(`--ctorigdstport ${20000 + i} `));
      };
      converge.runs.push(await until(complete, lastStart, 120_000));
      clearInterval(sampling);
      const busyEnd = await usage(pid);
      busyCpu.runs.push(((busyEnd.cpuTicks - busyStart.cpuTicks) / TICKS_PER_SECOND / ((Date.now() - t0) / 1000)) * 100);
      busyRss.runs.push(peak / 1024);
      // Back to no containers for the next run: removed at once, and the daemon left to settle.
      await Promise.all(names.map((n) => lab.docker(["rm", "-f", n])));
      await until(async () => !(await save()).includes("--ctorigdstport 20000 "), Date.now(), 120_000);
    }
  } finally {
    watch?.signal("SIGTERM");
    await lab.destroy();
  }
  report(figures);
}

function report(figures: Figure[]): void {
  const rows = figures.map((f) => ({ ...f, ...stats(f.runs) }));
  const table = figureTable(rows, 1, true);
  console.log(table);
  writeReport("watch-benchmarks.json", { rows }, "WATCH-BENCHMARKS.template.md", "WATCH-BENCHMARKS.md", { table });
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
