/**
 * What the rules cost the packets: requests per second (wrk, against busybox httpd in a container)
 * and bulk throughput (iperf3, its server run in the container's network namespace) from the trusted
 * client through a published port, in the lab (test/lab) against a real dockerd. Three setups,
 * measured in turn in every run so drift on the machine hits them alike:
 *   - no firewall: Docker's rules only;
 *   - dockwall: a 100,000-member group (the client among them) and 200 container rules besides the
 *     two measured ports;
 *   - the same allow-list as 100,000 `-s ADDR -j RETURN` rules in DOCKER-USER followed by a DROP, as
 *     the write-ups build it, with the client's address half-way down the list.
 *
 * Run: npm run bench:dataplane   (root; writes docs/DATAPLANE-BENCHMARKS.md and docs/dataplane-benchmarks.json)
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { Lab } from "../test/lab/lab.js";
import { ProcessRunner } from "../src/exec/runner.js";
import { figureTable, stats, writeReport } from "./report.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const MEMBERS = 100_000;
const runner = new ProcessRunner();

/** 100,000 distinct addresses in 198.18.0.0/15, the trusted client (198.18.0.10) among them. */
function members(): string[] {
  const out: string[] = [];
  for (let i = 0; i < MEMBERS; i++) out.push(`198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`);
  return out;
}

function policyText(): string {
  const lines = ["groups:", "  big: { file: big.list }", "host:", "  - port: 22", "containers:", "  - port: [8080, 5201]", "    from: [big]"];
  for (let i = 0; i < 200; i++) lines.push(`  - port: ${20000 + i}`, "    from: [big]");
  return lines.join("\n") + "\n";
}

/** The allow-list as rules: the client's address moved to the middle of the list. */
function perAddressRules(): string {
  const list = members().filter((m) => m !== "198.18.0.10");
  list.splice(list.length / 2, 0, "198.18.0.10");
  return [
    "*filter",
    ":BENCH-ALLOW - [0:0]",
    ...list.map((m) => `-A BENCH-ALLOW -s ${m}/32 -j RETURN`),
    "-A BENCH-ALLOW -j DROP",
    // Only what comes in from outside: the containers' replies leave by the bridge and skip the list.
    "-I DOCKER-USER 1 -i eth0 -j BENCH-ALLOW",
    "COMMIT",
    "",
  ].join("\n");
}

interface Figure {
  name: string;
  unit: string;
  runs: number[];
}

async function must(cmd: string, args: string[], input?: string): Promise<string> {
  const r = await runner.run(cmd, args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** dockwall's DROP rules that counted packets, for the log: a dropped SYN costs a second of retry. */
function dropLines(save: string): string {
  return save.split("\n").filter((l) => /DOCKWALL/.test(l) && /-j DROP/.test(l) && !/^\[0:0\]/.test(l)).join("; ") || "none";
}

const ONLY = process.env.BENCH_ONLY;

async function main(): Promise<void> {
  const lab = await Lab.create({ ipv6Mode: "ip6tables", ipForwardBeforeDocker: false, withServices: false });
  const ns = lab.clients.trusted.ns;
  let iperf: ChildProcess | undefined;
  const setups = ["no firewall", "dockwall", "100,000 -s rules"] as const;
  const rps = new Map(setups.map((s) => [s, [] as number[]]));
  const bps = new Map(setups.map((s) => [s, [] as number[]]));
  try {
    await lab.startContainer({ name: "www", args: ["-p", "8080:80", "-p", "5201:5201"], command: ["sh", "-c", "echo hello > /www/index.html && exec httpd -f -p 80 -h /www"] });
    const pid = (await lab.docker(["inspect", "-f", "{{.State.Pid}}", "www"])).stdout.trim();
    iperf = spawn("nsenter", ["-t", pid, "-n", "iperf3", "-s", "-p", "5201"], { stdio: "ignore" });
    // wrk opens ~15,000 connections a run and httpd closes each: without reusing TIME_WAIT ports the
    // client runs short of ports a few runs in, and whichever setup comes next looks slow.
    for (const [k, v] of [["net.ipv4.tcp_tw_reuse", "1"], ["net.ipv4.ip_local_port_range", "1024 65000"]]) {
      await must("ip", ["netns", "exec", ns, "sysctl", "-qw", `${k}=${v}`]);
    }
    const policy = path.join(lab.workDir, "bench.yaml");
    await writeFile(path.join(lab.workDir, "big.list"), members().join("\n") + "\n");
    await writeFile(policy, policyText());
    const rules = perAddressRules();
    const dockerRules = await lab.hostIptablesSave("ipv4");
    await new Promise((r) => setTimeout(r, 1000));

    const setUp = async (setup: (typeof setups)[number]) => {
      await must("ip", ["netns", "exec", lab.hostNs, "iptables-restore"], dockerRules);
      if ((await lab.dockwall(["remove"])).code !== 0) throw new Error("dockwall remove failed");
      if (setup === "dockwall") {
        const r = await lab.dockwall(["apply", "-c", policy]);
        if (r.code !== 0) throw new Error(`dockwall apply: ${r.stderr}`);
      }
      if (setup === "100,000 -s rules") await must("ip", ["netns", "exec", lab.hostNs, "iptables-restore", "--noflush"], rules);
    };
    for (let run = 0; run < RUNS; run++) {
      for (const setup of setups) {
        if (ONLY !== undefined && setup !== ONLY) continue;
        await setUp(setup);
        const wrk = await must("ip", ["netns", "exec", ns, "wrk", "-t2", "-c16", `-d${SECONDS}s`, "http://198.18.0.1:8080/index.html"]);
        const m = /Requests\/sec:\s+([\d.]+)/.exec(wrk);
        if (!m || /Socket errors|Non-2xx/.test(wrk)) throw new Error(`${setup}: wrk did not measure cleanly:\n${wrk}`);
        rps.get(setup)!.push(Number(m[1]));
        const drops = setup === "dockwall" ? ` (dockwall dropped: ${dropLines(await lab.hostIptablesSaveCounted())})` : "";
        process.stderr.write(`run ${run + 1}, ${setup}: ${m[1]} req/s${drops}\n`);
        const ip = JSON.parse(await must("ip", ["netns", "exec", ns, "iperf3", "-c", "198.18.0.1", "-p", "5201", "-t", String(SECONDS), "-J"])) as {
          end: { sum_received: { bits_per_second: number } };
        };
        bps.get(setup)!.push(ip.end.sum_received.bits_per_second / 1e9);
      }
    }
    await setUp("no firewall");
  } finally {
    if (iperf?.pid !== undefined) iperf.kill("SIGTERM");
    await lab.destroy();
  }
  const figures: Figure[] = [
    ...setups.map((s) => ({ name: `requests per second, ${s}`, unit: "req/s", runs: rps.get(s)! })),
    ...setups.map((s) => ({ name: `bulk throughput, ${s}`, unit: "Gbit/s", runs: bps.get(s)! })),
  ];
  if (ONLY !== undefined) return; // a diagnostic run of one setup: no comparison to write
  report(figures, {
    rps: stats(rps.get("dockwall")!).median / stats(rps.get("no firewall")!).median,
    bps: stats(bps.get("dockwall")!).median / stats(bps.get("no firewall")!).median,
    rpsRules: stats(rps.get("100,000 -s rules")!).median / stats(rps.get("no firewall")!).median,
    bpsRules: stats(bps.get("100,000 -s rules")!).median / stats(bps.get("no firewall")!).median,
  });
}

function report(figures: Figure[], ratio: { rps: number; bps: number; rpsRules: number; bpsRules: number }): void {
  const rows = figures.map((f) => ({ ...f, ...stats(f.runs) }));
  const pct = (r: number) => `${(r * 100).toFixed(1)} %`;
  const goal = (r: number) => (r >= 0.95 ? `met (${pct(r)} of no firewall, goal 95 %)` : `MISSED (${pct(r)} of no firewall, goal 95 %)`);
  const table = figureTable(rows, 2, false);
  const verdicts = [
    `- dockwall, requests per second: ${goal(ratio.rps)}`,
    `- dockwall, bulk throughput: ${goal(ratio.bps)}`,
    `- 100,000 -s rules, for comparison: ${pct(ratio.rpsRules)} of the requests per second, ${pct(ratio.bpsRules)} of the throughput`,
  ].join("\n");
  console.log(`${table}\n\n${verdicts}`);
  writeReport("dataplane-benchmarks.json", { seconds: SECONDS, rows, ratio }, "DATAPLANE-BENCHMARKS.template.md", "DATAPLANE-BENCHMARKS.md", {
    seconds: String(SECONDS),
    table,
    verdicts,
  });
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
