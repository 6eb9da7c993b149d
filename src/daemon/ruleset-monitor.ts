/**
 * Drift without polling: with iptables-nft every change to the ruleset is a new nf_tables generation,
 * and `nft monitor` prints "# new generation N by process PID (NAME)" for each, whoever made it
 * (`iptables -F`, a firewall service reload, Docker, dockwall itself). Each one is a reason to check;
 * the check (an apply that finds nothing to do) writes nothing, so it makes no new generation and the
 * loop ends there. The legacy back end has no such events: periodic checks only.
 *
 * Not xtables-monitor: in the lab (iptables 1.8.9) it exits on rules it cannot print back ("Parsing
 * nftables rule failed") several times a minute once Docker's rules are loaded; `nft monitor` does not.
 * nft writes through stdio, which is block-buffered into a pipe: `stdbuf -oL` makes each event arrive
 * when it happens rather than 4 KiB later.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { lineSplitter } from "../exec/lines.js";

export interface RulesetMonitorHandlers {
  change(line: string): void;
  /** The monitor exited; it is started again after `retryMs`. */
  stopped(reason: string, retryMs: number): void;
  /** It cannot run here (nft or stdbuf not installed): not retried. */
  unavailable(reason: string): void;
}

const RETRY_MS = { first: 500, max: 30_000 };

/** Runs until stop() (its inverse: start() again). */
export class RulesetMonitor {
  private child?: ChildProcess;
  private timer?: NodeJS.Timeout;
  private stopped = true;
  private retry = RETRY_MS.first;

  constructor(private readonly on: RulesetMonitorHandlers) {}

  start(): void {
    this.stopped = false;
    this.run();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.child?.kill();
  }

  private run(): void {
    const child = spawn("stdbuf", ["-oL", "nft", "monitor"], { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    let errors = "";
    const startedAt = Date.now();
    child.stdout!.setEncoding("utf8");
    child.stdout!.on(
      "data",
      lineSplitter((line) => {
        if (line.startsWith("# new generation")) this.on.change(line);
      }),
    );
    child.stderr!.on("data", (b: Buffer) => (errors += b.toString()));
    let ended = false;
    const restart = (reason: string) => {
      if (ended || this.stopped) return;
      ended = true;
      // A monitor that ran for a while was fine: start again quickly.
      if (Date.now() - startedAt > RETRY_MS.max) this.retry = RETRY_MS.first;
      const wait = this.retry;
      this.retry = Math.min(this.retry * 2, RETRY_MS.max);
      this.on.stopped(reason, wait);
      this.timer = setTimeout(() => this.run(), wait);
    };
    const cannotRun = (reason: string) => {
      if (ended || this.stopped) return;
      ended = true;
      this.on.unavailable(reason);
    };
    child.on("error", (e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? cannotRun("stdbuf not found (coreutils)") : restart(e.message)));
    child.on("exit", (code, signal) =>
      // stdbuf exits 127 when the command it runs is not there.
      code === 127 ? cannotRun("nft not found (package nftables)") : restart(`nft monitor exited (${signal ?? code}) ${errors.trim()}`.trim()),
    );
  }
}
