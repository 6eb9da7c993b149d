/**
 * Prometheus metrics for `watch --metrics ADDR:PORT` (prom-client). The per-rule packet and byte
 * counts are the kernel's own counters, read with `iptables-save -c` when scraped, not counted here:
 * they survive a daemon restart and count what the kernel did, including while the daemon was away.
 */
import http from "node:http";
import client from "prom-client";
import type { Netfilter } from "../backends/netfilter.js";
import { parseSave, type RuleCounter } from "../backends/iptables/save-parser.js";
import { FAMILIES } from "../apply/apply.js";
import type { Holding } from "./fallback.js";

interface CounterRow {
  labels: Record<"family" | "table" | "chain" | "rule" | "comment" | "verdict", string>;
  counter: RuleCounter;
}

/** What an apply's causes say about why it ran, as a bounded label value. */
export function causeKind(cause: string): string {
  if (cause.startsWith("docker")) return "docker";
  if (cause.startsWith("ruleset")) return "ruleset";
  if (cause.startsWith("file changed")) return "file";
  if (cause === "SIGHUP") return "sighup";
  if (cause === "periodic check") return "periodic";
  return "start";
}

export class Metrics {
  readonly registry = new client.Registry();
  private readonly applies = new client.Counter({
    name: "dockwall_applies_total",
    help: "Applies run by the daemon, by result (changed: the kernel was written; unchanged; failed).",
    labelNames: ["result"],
    registers: [this.registry],
  });
  private readonly repairs = new client.Counter({
    name: "dockwall_repairs_total",
    help: "Applies that changed the kernel, by what triggered them (docker, ruleset, file, sighup, periodic, start).",
    labelNames: ["cause"],
    registers: [this.registry],
  });
  private readonly lastApply = new client.Gauge({
    name: "dockwall_last_apply_duration_seconds",
    help: "How long the last apply took.",
    registers: [this.registry],
  });
  private readonly docker = new client.Gauge({
    name: "dockwall_docker_connected",
    help: "1 while the Docker event stream is open, 0 while Docker cannot be reached.",
    registers: [this.registry],
  });

  private readonly policyValid = new client.Gauge({
    name: "dockwall_policy_valid",
    help: "1 while the policy file is what the kernel holds; 0 while it cannot be applied (invalid, unreadable, refused by the kernel) and the rules in place or a fallback hold instead.",
    registers: [this.registry],
  });
  private readonly degraded = new client.Gauge({
    name: "dockwall_degraded",
    help: "1 while the policy cannot be applied, labelled with what holds instead (holding: last-applied, lock-down) and why (reason: policy-invalid, apply-failed); no series otherwise.",
    labelNames: ["holding", "reason"],
    registers: [this.registry],
  });

  /** Where the rules were last applied: the kernel counters are read there. */
  private netfilter?: Netfilter;
  private lastRead?: { at: number; rows: Promise<CounterRow[]> };

  constructor() {
    const labelNames = ["family", "table", "chain", "rule", "comment", "verdict"] as const;
    const gauge = (name: string, help: string, value: (c: RuleCounter) => number) => {
      const g: client.Gauge<(typeof labelNames)[number]> = new client.Gauge({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect: async () => {
          g.reset();
          for (const row of await this.readCounters()) g.set(row.labels, value(row.counter));
        },
      });
    };
    gauge("dockwall_rule_packets", "Packets that matched each dockwall rule (kernel counter).", (c) => c.packets);
    gauge("dockwall_rule_bytes", "Bytes that matched each dockwall rule (kernel counter).", (c) => c.bytes);
  }

  /** Both gauges ask during one scrape (prom-client collects them side by side): one kernel read serves both. */
  private readCounters(): Promise<CounterRow[]> {
    const now = Date.now();
    if (this.lastRead === undefined || now - this.lastRead.at > 1000) this.lastRead = { at: now, rows: this.readKernel() };
    return this.lastRead.rows;
  }

  private async readKernel(): Promise<CounterRow[]> {
    const nf = this.netfilter;
    if (nf === undefined) return [];
    const rows: CounterRow[] = [];
    for (const family of FAMILIES) {
      for (const table of parseSave(await nf.save(family, { counters: true })).values()) {
        for (const chain of table.chains.values()) {
          if (!chain.name.startsWith("DOCKWALL-")) continue;
          chain.rules.forEach((spec, i) => {
            const counter = chain.counters?.[i];
            if (!counter) return;
            const labels = {
              family,
              table: table.name,
              chain: chain.name,
              rule: String(i + 1),
              comment: /--comment (?:"([^"]*)"|(\S+))/.exec(spec)?.slice(1).find((x) => x !== undefined) ?? "",
              verdict: /(?:^| )-[jg] (\S+)/.exec(spec)?.[1] ?? "",
            };
            rows.push({ labels, counter });
          });
        }
      }
    }
    return rows;
  }

  useNetfilter(nf: Netfilter): void {
    this.netfilter = nf;
  }

  applied(result: "changed" | "unchanged" | "failed", causes: string[], seconds: number): void {
    this.applies.inc({ result });
    this.lastApply.set(seconds);
    if (result === "changed") for (const kind of new Set(causes.map(causeKind))) this.repairs.inc({ cause: kind });
  }

  /** The policy holds (the inverse of degradedBy). */
  policyHolds(): void {
    this.policyValid.set(1);
    this.degraded.reset();
  }

  degradedBy(holding: Holding, reason: "policy-invalid" | "apply-failed"): void {
    this.policyValid.set(0);
    this.degraded.reset();
    this.degraded.set({ holding, reason }, 1);
  }

  dockerConnected(up: boolean): void {
    this.docker.set(up ? 1 : 0);
  }

  /** Serves /metrics until close() (its inverse). */
  serve(listen: { host: string; port: number }): Promise<http.Server> {
    const server = http.createServer((req, res) => {
      if (req.url !== "/metrics") {
        res.writeHead(404).end("only /metrics here\n");
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { "Content-Type": this.registry.contentType }).end(text),
        (e: Error) => res.writeHead(500).end(`${e.message}\n`),
      );
    });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(listen.port, listen.host, () => resolve(server));
    });
  }
}

/** "127.0.0.1:9273", "[::1]:9273", ":9273" (every address). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) throw new Error(`--metrics ${text}: expected ADDRESS:PORT, e.g. 127.0.0.1:9273`);
  return { host: m[1] ?? (m[2] || "::"), port };
}
