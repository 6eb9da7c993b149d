/**
 * `dockwall watch`: applies the policy, then keeps it true. Every source of change is wired to one
 * trigger of the WatchLoop (watch-loop.ts), which folds triggers together and never overlaps applies:
 *   Docker events (docker-events.ts)      containers and networks come and go; Docker restarts
 *   ruleset changes (ruleset-monitor.ts)  another tool flushed or edited rules (nft monitor)
 *   file changes (file-watch.ts)          the policy or a group file was written
 *   SIGHUP, and a periodic check          the operator asks; anything the above cannot see
 * An apply that finds the kernel right writes nothing. SIGTERM ends the daemon after the apply in
 * progress, and the rules stay.
 */
import type { Runner } from "../exec/runner.js";
import type { Lock } from "../apply/lock.js";
import type { StateStore } from "../apply/state-store.js";
import { applyPolicy } from "../apply-policy.js";
import { DockerHostInvalid, type EngineEndpoint } from "../facts/engine-api.js";
import { PolicyInvalid } from "../pipeline.js";
import { DockerEventStream, type DockerEvent } from "./docker-events.js";
import { FileWatch } from "./file-watch.js";
import { RulesetMonitor } from "./ruleset-monitor.js";
import { notifyReady } from "./systemd.js";
import { holdFallback, LOCK_DOWN_SSH_PORT } from "./fallback.js";
import { clearDegraded, writeDegraded, type DegradedNote } from "./degraded.js";
import { WatchLoop, type LoopDeps, type LoopOutcome } from "./watch-loop.js";
import type { Metrics } from "./metrics.js";
import { Netfilter } from "../backends/netfilter.js";
import { interruptedMessage, makePlan, planIsEmpty, readLive } from "../apply/apply.js";

export interface DaemonOptions {
  policy: string;
  /** Where Docker is; an unusable DOCKER_HOST (the reason) means no event stream, and every apply says why. */
  docker: EngineEndpoint | DockerHostInvalid;
  checkEveryMs: number;
  debounceMs: number;
  /** Loaded only when asked for: prom-client is not part of every command's start-up. */
  metrics?: Metrics;
}

export type Log = LoopDeps["log"];

const PERIODIC = "periodic check";
const RULESET_CHANGED = "ruleset changed";
const MONITOR_RESTARTED = "ruleset monitor restarted";
const RULESET_CAUSES = new Set([RULESET_CHANGED, MONITOR_RESTARTED]);

export class Daemon {
  private readonly loop: WatchLoop;
  private readonly files: FileWatch;
  private readonly docker?: DockerEventStream;
  private monitor?: RulesetMonitor;
  private periodic?: NodeJS.Timeout;
  private lastWarnings = "[]";
  private dockerUp?: boolean;
  /** Set while the policy cannot be applied and a fallback holds instead. */
  private degraded?: DegradedNote;

  constructor(
    private readonly deps: { runner: Runner; store: StateStore; lock: Lock },
    private readonly opts: DaemonOptions,
    private readonly log: Log,
  ) {
    this.loop = new WatchLoop(
      { apply: (causes) => this.apply(causes), log, done: (result, causes, ms) => opts.metrics?.applied(result, causes, ms / 1000) },
      { debounceMs: opts.debounceMs },
    );
    this.files = new FileWatch((file) => this.loop.trigger(`file changed: ${file}`));
    opts.metrics?.useApplied({ record: () => deps.store.current(), kernelHoldsRecord: () => this.kernelHoldsRecord(true) });
    if (!(opts.docker instanceof DockerHostInvalid)) {
      this.docker = new DockerEventStream(opts.docker, {
        connected: () => {
          this.dockerUp = true;
          opts.metrics?.dockerConnected(true);
          log("info", "docker connected");
          this.loop.trigger("docker connected");
        },
        event: (e) => this.loop.trigger(describeEvent(e)),
        disconnected: (reason) => {
          // Once per outage, not once per retry.
          if (this.dockerUp !== false) log("warn", "docker not reachable, rules stay in place; retrying", { reason });
          this.dockerUp = false;
          opts.metrics?.dockerConnected(false);
        },
      });
    }
  }

  get counts(): WatchLoop["counts"] {
    return this.loop.counts;
  }

  /**
   * The first apply, outside the loop. Only once rules are in the kernel is the service ready, and
   * may Docker start (systemd.ts). A policy that cannot be applied does not stop the daemon: Docker
   * would start with no dockwall rules at all. It holds a fallback instead (fallback.ts) and keeps
   * watching for a policy that applies; only when even the fallback cannot be applied (no iptables)
   * does it not start, and systemd says so.
   */
  async start(): Promise<void> {
    const started = Date.now();
    try {
      // Once at start every member is read: what the daemon builds on afterwards is checked whole.
      const first = await this.applyPolicyFile(true);
      this.log("info", first.changed ? "applied" : "unchanged", { causes: ["start"], ms: Date.now() - started, ...first.detail });
      this.opts.metrics?.applied(first.changed ? "changed" : "unchanged", ["start"], (Date.now() - started) / 1000);
      await this.policyHolds();
    } catch (e) {
      this.opts.metrics?.applied("failed", ["start"], (Date.now() - started) / 1000);
      try {
        await this.fallBack(e);
      } catch (f) {
        this.log("error", "the policy cannot be applied, nor can a fallback; not starting", {
          ...failure(e),
          fallbackError: firstLine(f),
        });
        this.shutdown();
        throw e;
      }
    }
    if (this.opts.docker instanceof DockerHostInvalid) this.log("error", "Docker's events are not followed: DOCKER_HOST cannot be used", { reason: this.opts.docker.message });
    await notifyReady();
    this.log("info", "ready", this.degraded ? { degraded: this.degraded.holding } : {});
    this.docker?.start();
    this.periodic = setInterval(() => this.loop.trigger(PERIODIC), this.opts.checkEveryMs);
  }

  trigger(cause: string): void {
    this.loop.trigger(cause);
  }

  /** Resolves when no apply is running or waiting (for tests). */
  idle(): Promise<void> {
    return this.loop.idle();
  }

  /** Stops watching after the apply in progress; the rules stay. Inverse: a new Daemon's start(). */
  async stop(): Promise<void> {
    this.shutdown();
    await this.loop.stop();
  }

  private shutdown(): void {
    clearInterval(this.periodic);
    this.docker?.stop();
    this.monitor?.stop();
    this.files.close();
  }

  private async apply(causes: string[]): Promise<LoopOutcome> {
    // A change to the ruleset alone (another tool's, or the undo of dockwall's own failed apply, which
    // the monitor cannot tell apart) needs a repair only if the kernel lost what was applied; without
    // this a policy the kernel refuses looped: apply, undo, event, apply. While degraded, every other
    // check is a try of the policy: the cheap path would only find the fallback.
    const rulesetOnly = causes.every((c) => RULESET_CAUSES.has(c));
    const periodicOnly = this.degraded === undefined && causes.length === 1 && causes[0] === PERIODIC;
    // The periodic check and SIGHUP are for what no event shows, a set member swapped for another at
    // the same count among it: they read every member. A ruleset event says the rules changed, and
    // apply's entry-count check of the sets is enough for it (ipset changes send no such event).
    const everyMember = causes.some((c) => c === PERIODIC || c === "SIGHUP");
    if ((rulesetOnly || periodicOnly) && (await this.kernelHoldsRecord(everyMember))) {
      return { changed: false, detail: {}, quiet: true };
    }
    try {
      const outcome = await this.applyPolicyFile(everyMember);
      await this.policyHolds();
      return outcome;
    } catch (e) {
      // The policy stays refused (the loop logs why) and what holds stays true: put back if another
      // tool flushed it, the lock-down compiled again for the Docker networks of now.
      await this.fallBack(e).catch((f: unknown) => this.log("error", "the fallback could not be applied either", { fallbackError: firstLine(f) }));
      throw e;
    }
  }

  private async applyPolicyFile(everyMember: boolean): Promise<LoopOutcome> {
    // Set members are checked by entry count unless `everyMember` (apply --full-read): a member
    // deleted or a set flushed shows either way; one swapped for another at the same count only then.
    const { compiled, result } = await applyPolicy(this.opts.policy, this.deps, { fullRead: everyMember });
    this.opts.metrics?.useNetfilter(compiled.netfilter);
    const inputs = compiled.origin.inputs;
    this.files.set([inputs.policy.path, ...inputs.groupFiles.map((g) => g.path)]);
    if (this.monitor === undefined && compiled.netfilter.variant === "nft") this.startMonitor();
    // Warnings are logged when they change, not with every apply.
    const warnings = JSON.stringify(compiled.warnings);
    const newWarnings = warnings !== this.lastWarnings && compiled.warnings.length > 0;
    this.lastWarnings = warnings;
    return {
      changed: result.changed,
      detail: {
        ...(result.changed ? { changes: result.summary } : {}),
        ...(newWarnings ? { warnings: compiled.warnings } : {}),
        ...(result.interrupted ? { interrupted: interruptedMessage(result.interrupted) } : {}),
      },
    };
  }

  /** The policy is in the kernel: a degraded note and metric end (a note left by an earlier run too). */
  private async policyHolds(): Promise<void> {
    this.opts.metrics?.policyHolds();
    if (this.degraded) this.log("info", "the policy applies again; the fallback is replaced", { since: this.degraded.since, was: this.degraded.holding });
    this.degraded = undefined;
    await clearDegraded(this.deps.store.dir).catch((e: unknown) => this.log("warn", "could not remove the degraded note", { error: firstLine(e) }));
  }

  /**
   * Holds the fallback in place of a policy that cannot be applied, and says so loudly: an error log
   * line (when what holds or why changes, not on every retry), the note `status` shows, the metric.
   */
  private async fallBack(cause: unknown): Promise<void> {
    const held = await holdFallback(this.deps);
    const errors = cause instanceof PolicyInvalid ? cause.errors : [];
    const note: DegradedNote = {
      since: this.degraded?.since ?? new Date().toISOString(),
      pid: process.pid,
      reason: firstLine(cause),
      errors,
      holding: held.holding,
      heldAt: held.record.at,
      heldSource: held.record.source,
    };
    const news = JSON.stringify({ ...note, since: "" }) !== JSON.stringify({ ...this.degraded, since: "" }) || held.result.changed;
    this.degraded = note;
    this.opts.metrics?.degradedBy(held.holding, cause instanceof PolicyInvalid ? "policy-invalid" : "apply-failed");
    this.opts.metrics?.useNetfilter(held.netfilter);
    // Until a policy has been read, its file is all there is to watch (its group files come with it).
    if (!this.files.watching) this.files.set([this.opts.policy]);
    if (this.monitor === undefined && held.netfilter.variant === "nft") this.startMonitor();
    if (news) {
      this.log("error", held.holding === "last-applied" ? "the policy cannot be applied; holding the last applied rules" : `the policy cannot be applied and there are no applied rules to fall back to; holding the lock-down (only SSH ${LOCK_DOWN_SSH_PORT}/tcp open from outside)`, {
        ...failure(cause),
        holding: held.holding,
        heldAt: held.record.at,
        heldSource: held.record.source,
        ...(held.result.changed ? { changes: held.result.summary } : {}),
        ...(held.warnings.length > 0 ? { warnings: held.warnings } : {}),
      });
      await writeDegraded(this.deps.store.dir, note).catch((e: unknown) => this.log("warn", "could not write the degraded note for status", { error: firstLine(e) }));
    }
  }

  /**
   * The periodic check's cheap path: the kernel read and compared with the applied record (three
   * child processes), no Docker lookup, no compile. Docker and the files have their own events; this
   * is for drift no event showed (the legacy back end, a missed event). False sends it on to a full apply.
   * With `everyMember`, every set member is read and compared; without, sets are compared by entry
   * count, as apply does (apply.ts readSets).
   */
  private async kernelHoldsRecord(everyMember: boolean): Promise<boolean> {
    // A state file that is not valid sends it on to the full apply, which reads the whole kernel.
    const unreadable = () => "unreadable" as const;
    const [recorded, pending] = await Promise.all([this.deps.store.current().catch(unreadable), this.deps.store.pending().catch(unreadable)]);
    if (recorded === undefined || recorded === "unreadable" || pending) return false;
    const nf = new Netfilter(this.deps.runner, recorded.variant);
    return planIsEmpty(makePlan(recorded.state, await readLive(nf, everyMember ? {} : { known: recorded.state })));
  }

  private startMonitor(): void {
    this.monitor = new RulesetMonitor({
      change: () => this.loop.trigger(RULESET_CHANGED),
      stopped: (reason, retryMs) => {
        this.log("warn", "ruleset monitor stopped, restarting", { reason, retryMs });
        // It stops when events overrun its socket (ENOBUFS, e.g. on `iptables -F` of a big table):
        // what it missed may be drift, so look now.
        this.loop.trigger(MONITOR_RESTARTED);
      },
      unavailable: (reason) =>
        this.log("warn", "ruleset changes by other tools are seen by the periodic check only", { reason, checkEverySeconds: this.opts.checkEveryMs / 1000 }),
    });
    this.monitor.start();
  }
}

function firstLine(e: unknown): string {
  return e instanceof Error ? (e.message.split("\n")[0] ?? "") : String(e);
}

/** A failure as log fields: its first line, and every error of a policy that did not validate. */
function failure(e: unknown): Record<string, unknown> {
  return { error: firstLine(e), ...(e instanceof PolicyInvalid ? { errors: e.errors } : {}) };
}

function describeEvent(e: DockerEvent): string {
  const name = e.Actor?.Attributes?.name ?? e.Actor?.ID?.slice(0, 12) ?? "?";
  return `docker ${e.Type} ${e.Action} ${name}`;
}
