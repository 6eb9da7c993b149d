/**
 * Prometheus metrics for `watch --metrics ADDR:PORT` (prom-client). The per-rule packet and byte
 * counts are the kernel's own counters, read with `iptables-save -c` when scraped, not counted here:
 * they survive a daemon restart and count what the kernel did, including while the daemon was away.
 * Each rule's series is named by the policy entry it comes from (the tag in its comment, stable
 * across applies) and by what it matches, never by its position, which moves whenever an entry is
 * added above it. An apply that rewrites a chain starts its rules' counters again from 0: a counter
 * reset, which rate() and increase() take in their stride.
 */
import http from "node:http";
import client from "prom-client";
import type { Netfilter } from "../backends/netfilter.js";
import { parseSave, type RuleCounter } from "../backends/iptables/save-parser.js";
import { FAMILIES } from "../apply/apply.js";
import type { Holding } from "./fallback.js";
import type { AppliedRecord } from "../apply/state-store.js";
import { commentOfSpec, entryOfComment, specWithoutComment } from "../backends/iptables/entry-tag.js";
import { isDockwallChain } from "../compile/names.js";

const RULE_LABELS = ["entry", "family", "table", "chain", "match", "verdict"] as const;
type RuleLabels = Record<(typeof RULE_LABELS)[number], string>;

interface CounterRow {
  labels: RuleLabels;
  counter: RuleCounter;
}

/** What the metrics read of the applied state when scraped: the daemon provides it. */
export interface AppliedView {
  /** The record of what was applied (its entries say where each entry was written). */
  record(): Promise<AppliedRecord | undefined>;
  /** Whether the kernel holds the record (jumps, chains, rules, sets), as the periodic check reads it. */
  kernelHoldsRecord(): Promise<boolean>;
}

/** A rule's series, from its line as iptables-save prints it: the entry it names and what it matches. */
export function ruleLabels(family: string, table: string, chain: string, spec: string): RuleLabels {
  const comment = commentOfSpec(spec);
  const rest = specWithoutComment(spec);
  // dockwall's target is last: -j VERDICT [options], or -g CHAIN.
  const target = /(?:^| )-[jg] (\S+)/.exec(rest);
  return {
    entry: (comment !== undefined ? entryOfComment(comment) : undefined) ?? "untagged",
    family,
    table,
    chain,
    match: (target ? rest.slice(0, target.index) : rest).trim(),
    verdict: target?.[1] ?? "",
  };
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

  private readonly lastSuccess = new client.Gauge({
    name: "dockwall_last_successful_apply_timestamp_seconds",
    help: "When an apply last ended with the policy in the kernel (changed or already so), in seconds since the epoch.",
    registers: [this.registry],
  });

  /** Where the rules were last applied: the kernel counters are read there. */
  private netfilter?: Netfilter;
  private appliedView?: AppliedView;
  private lastRead?: { at: number; rows: Promise<CounterRow[]> };

  constructor() {
    client.collectDefaultMetrics({ register: this.registry });
    const counter = (name: string, help: string, value: (c: RuleCounter) => number) => {
      const c: client.Counter<(typeof RULE_LABELS)[number]> = new client.Counter({
        name,
        help,
        labelNames: RULE_LABELS,
        registers: [this.registry],
        collect: async () => {
          c.reset();
          // Two rules alike (same entry, chain and match) are one series: their sum.
          for (const row of await this.readCounters()) c.inc(row.labels, value(row.counter));
        },
      });
    };
    counter("dockwall_rule_packets_total", "Packets that matched each dockwall rule (the kernel's counter), by the policy entry it comes from and what it matches.", (c) => c.packets);
    counter("dockwall_rule_bytes_total", "Bytes that matched each dockwall rule (the kernel's counter), by the policy entry it comes from and what it matches.", (c) => c.bytes);
    const entryInfo: client.Gauge<"entry" | "file" | "line"> = new client.Gauge({
      name: "dockwall_policy_entry_info",
      help: "Where each policy entry of the applied state was written (join on entry with the rule counters); 1.",
      labelNames: ["entry", "file", "line"],
      registers: [this.registry],
      collect: async () => {
        entryInfo.reset();
        const record = await this.appliedView?.record().catch(() => undefined);
        for (const e of record?.state.entries ?? []) entryInfo.set({ entry: e.id, file: e.file, line: String(e.line) }, 1);
      },
    });
    const drift: client.Gauge = new client.Gauge({
      name: "dockwall_drift",
      help: "1 when the kernel differs from the applied state (a rule, jump or set member missing or extra, or no applied state to compare), 0 when it holds it, NaN when the kernel cannot be read.",
      registers: [this.registry],
      collect: async () => {
        const view = this.appliedView;
        if (view === undefined) return drift.set(Number.NaN);
        drift.set(await view.kernelHoldsRecord().then((holds) => (holds ? 0 : 1), () => Number.NaN));
      },
    });
  }

  /** Both counters ask during one scrape (prom-client collects them side by side): one kernel read serves both. */
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
          if (!isDockwallChain(chain.name)) continue;
          chain.rules.forEach((spec, i) => {
            const counter = chain.counters?.[i];
            if (counter) rows.push({ labels: ruleLabels(family, table.name, chain.name, spec), counter });
          });
        }
      }
    }
    return rows;
  }

  useNetfilter(nf: Netfilter): void {
    this.netfilter = nf;
  }

  /** Where the applied state is read at scrape time (drift, the entries' lines). */
  useApplied(view: AppliedView): void {
    this.appliedView = view;
  }

  applied(result: "changed" | "unchanged" | "failed", causes: string[], seconds: number, now: Date = new Date()): void {
    this.applies.inc({ result });
    this.lastApply.set(seconds);
    if (result !== "failed") this.lastSuccess.set(now.getTime() / 1000);
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
