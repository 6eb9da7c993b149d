import { InvalidArgumentError, type Command } from "commander";
import { dockerEndpoint } from "../facts/index.js";
import { Daemon } from "../daemon/daemon.js";
import { formatLogLine, stdoutIsJournal, type Level } from "../daemon/log-line.js";
import { DEFAULT_POLICY, Exit, makeContext, type GlobalOptions } from "./common.js";
import { takeWatchLock } from "../daemon/watch-lock.js";

interface WatchOptions {
  config: string;
  checkEvery: number;
  debounce: number;
  metrics?: string;
}

/** Known at the first line: only `watch` logs. */
let journal: boolean | undefined;

/** One JSON object per line on stdout (log-line.ts). */
function log(level: Level, event: string, fields: Record<string, unknown> = {}): void {
  journal ??= stdoutIsJournal();
  process.stdout.write(formatLogLine(level, event, fields, new Date(), journal));
}

/** A usage error (exit 1), reported by commander with the option's name, before anything runs. */
function seconds(text: string): number {
  const n = /^\s*\d*\.?\d+\s*$/.test(text) ? Number(text) : NaN;
  // setInterval takes at most 2^31-1 ms; more would fire at once, every millisecond.
  if (!Number.isFinite(n) || n <= 0 || n * 1000 > 2 ** 31 - 1) throw new InvalidArgumentError(`expected a positive number of seconds (at most 2147483), not "${text.replace(/[^\x20-\x7e]/g, "?")}"`);
  return n;
}

export function registerWatch(program: Command): void {
  program
    .command("watch")
    .description("the daemon: apply the policy, then keep it true as containers, networks, group files and the ruleset change")
    .option("-c, --config <file>", "policy file", DEFAULT_POLICY)
    .option("--check-every <seconds>", "also check the kernel this often (ruleset changes are seen at once with iptables-nft)", seconds, 300)
    .option("--debounce <seconds>", "fold events this close together into one apply", seconds, 0.1)
    .option("--metrics <address:port>", "serve Prometheus metrics at http://ADDRESS:PORT/metrics (e.g. 127.0.0.1:9273)")
    .addHelpText(
      "after",
      `
Re-applies on Docker events (containers, networks), on any ruleset change made by another tool
(iptables-nft), when the policy or a group file is written, on SIGHUP, and every --check-every
seconds; an apply that finds the kernel right writes nothing.

A policy that cannot be applied (it does not validate, cannot be read, or the kernel refuses it)
never leaves the host open: the daemon keeps the last applied rules (put back from the state
directory after a reboot), or, if none were ever applied, a lock-down with only SSH (22/tcp) open
from outside; it logs an error, \`dockwall status\` shows it, the metric dockwall_policy_valid is 0;
the first policy that applies replaces it. Only when even that cannot be applied (no iptables) does
the daemon exit (1: the policy does not validate, 2: failed). One watch per state directory: while
another holds it (the host's unit and the Swarm service on one host), this one exits 2 at once and
changes nothing. SIGTERM stops it and leaves the rules
in place. Logs one JSON line per event on stdout (with a journald priority prefix when stdout is
the journal). Run it as a service: dockwall install.

Example:
  dockwall watch -c /etc/dockwall/dockwall.yaml
`,
    )
    .action(async (opts: WatchOptions, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      let metrics: import("../daemon/metrics.js").Metrics | undefined;
      let metricsServing: MetricsServing | undefined;
      if (opts.metrics !== undefined) {
        const m = await import("../daemon/metrics.js");
        let listen: { host: string; port: number };
        try {
          listen = m.parseListen(opts.metrics);
        } catch (e) {
          process.stderr.write(`dockwall: ${(e as Error).message}\n`);
          throw new Exit(1);
        }
        metrics = new m.Metrics();
        metricsServing = new MetricsServing(metrics, listen);
      }
      const watchLock = await takeWatchLock(ctx.store);
      if (!watchLock.held && watchLock.otherWatch) {
        log("error", "not starting", { reason: watchLock.reason });
        throw new Exit(2);
      }
      if (!watchLock.held) log("warn", "cannot take the watch lock; watching all the same", { reason: watchLock.reason });
      const daemon = new Daemon(
        ctx,
        {
          policy: opts.config,
          // An unusable DOCKER_HOST does not stop the daemon: it must hold rules all the same (daemon.ts).
          docker: dockerEndpoint(),
          checkEveryMs: opts.checkEvery * 1000,
          debounceMs: opts.debounce * 1000,
          ...(metrics ? { metrics } : {}),
        },
        log,
      );
      // Signals are taken from the start: a SIGTERM during the first apply waits for it to finish.
      const stopped = new Promise<string>((resolve) => {
        for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => resolve(signal));
      });
      process.on("SIGHUP", () => daemon.trigger("SIGHUP"));
      log("info", "watch started", { policy: opts.config, pid: process.pid });
      const first = daemon.start();
      // Metrics are served once rules hold: an address that cannot be had (at boot, before
      // network-pre.target, no address but loopback exists yet; a port in use) must not stop the
      // daemon before it holds anything. Tried again until it works.
      first.then(() => metricsServing?.start(), () => undefined);
      const signal = await Promise.race([stopped, first.then(() => stopped)]);
      log("info", "stopping, the rules stay in place", { signal });
      await first.catch(() => undefined);
      await daemon.stop();
      metricsServing?.stop();
      if (watchLock.held) await watchLock.release();
      log("info", "stopped", { ...daemon.counts });
    });
}

const METRICS_RETRY_MS = 10_000;

/** The metrics endpoint, served until stopped; a failure to listen is logged and tried again. */
class MetricsServing {
  private server?: import("node:http").Server;
  private retry?: NodeJS.Timeout;
  private stopped = false;
  private failing = false;

  constructor(
    private readonly metrics: import("../daemon/metrics.js").Metrics,
    private readonly listen: { host: string; port: number },
  ) {}

  async start(): Promise<void> {
    if (this.stopped) return;
    const url = `http://${this.listen.host.includes(":") ? `[${this.listen.host}]` : this.listen.host}:${this.listen.port}/metrics`;
    try {
      this.server = await this.metrics.serve(this.listen);
      this.failing = false;
      log("info", "metrics served", { url });
    } catch (e) {
      // Said once per outage, not on every try.
      if (!this.failing) log("error", "metrics cannot be served; trying again", { url, error: (e as Error).message, retrySeconds: METRICS_RETRY_MS / 1000 });
      this.failing = true;
      this.retry = setTimeout(() => void this.start(), METRICS_RETRY_MS);
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.server?.close();
  }
}
