import type { Command } from "commander";
import { endpointFromEnv } from "../facts/engine-api.js";
import { Daemon } from "../daemon/daemon.js";
import { DEFAULT_POLICY, makeContext, type GlobalOptions } from "./common.js";

interface WatchOptions {
  config: string;
  checkEvery: string;
  debounce: string;
  metrics?: string;
}

/** One JSON object per line on stdout: journald keeps them as they are, `jq` reads them. */
function log(level: "info" | "warn" | "error", event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level, event, ...fields })}\n`);
}

function seconds(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${what} must be a positive number of seconds, not "${text}"`);
  return n;
}

export function registerWatch(program: Command): void {
  program
    .command("watch")
    .description("the daemon: apply the policy, then keep it true as containers, networks, group files and the ruleset change")
    .option("-c, --config <file>", "policy file", DEFAULT_POLICY)
    .option("--check-every <seconds>", "also check the kernel this often (ruleset changes are seen at once with iptables-nft)", "300")
    .option("--debounce <seconds>", "fold events this close together into one apply", "0.1")
    .option("--metrics <address:port>", "serve Prometheus metrics at http://ADDRESS:PORT/metrics (e.g. 127.0.0.1:9273)")
    .addHelpText(
      "after",
      `
Re-applies on Docker events (containers, networks), on any ruleset change made by another tool
(iptables-nft), when the policy or a group file is written, on SIGHUP, and every --check-every
seconds; an apply that finds the kernel right writes nothing. If the first apply fails the daemon
exits (1: the policy does not validate, 2: the kernel refused); later, a policy that does not
validate is refused and logged and the rules in place stay. SIGTERM stops it and leaves the rules
in place. Logs one JSON line per event on stdout. Run it as a service: dockwall install.

Example:
  dockwall watch -c /etc/dockwall/dockwall.yaml
`,
    )
    .action(async (opts: WatchOptions, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      let metrics: import("../daemon/metrics.js").Metrics | undefined;
      let metricsServer: import("node:http").Server | undefined;
      if (opts.metrics !== undefined) {
        const m = await import("../daemon/metrics.js");
        const listen = m.parseListen(opts.metrics);
        metrics = new m.Metrics();
        metricsServer = await metrics.serve(listen);
        log("info", "metrics served", { url: `http://${listen.host.includes(":") ? `[${listen.host}]` : listen.host}:${listen.port}/metrics` });
      }
      const daemon = new Daemon(
        ctx,
        {
          policy: opts.config,
          docker: endpointFromEnv(),
          checkEveryMs: seconds(opts.checkEvery, "--check-every") * 1000,
          debounceMs: seconds(opts.debounce, "--debounce") * 1000,
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
      // A first apply that fails ends the command (its error is reported by main); nothing may keep it alive.
      first.catch(() => metricsServer?.close());
      const signal = await Promise.race([stopped, first.then(() => stopped)]);
      log("info", "stopping, the rules stay in place", { signal });
      await first.catch(() => undefined);
      await daemon.stop();
      metricsServer?.close();
      log("info", "stopped", { ...daemon.counts });
    });
}
