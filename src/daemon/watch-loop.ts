/**
 * The daemon's heart: every reason to look again (a Docker event, a ruleset change, a group file
 * written, SIGHUP, the periodic check) becomes a trigger; triggers close together are folded into one
 * apply, and applies never overlap. An apply that finds the kernel already right writes nothing, so
 * "look again" is always safe; one that fails (a bad policy on reload, Docker gone) changes nothing
 * and the loop goes on.
 */
export interface LoopOutcome {
  changed: boolean;
  /** Fields for the log line. */
  detail: Record<string, unknown>;
  /** Nothing worth a log line (a periodic check that found the kernel right). */
  quiet?: boolean;
}

export interface LoopDeps {
  apply(causes: string[]): Promise<LoopOutcome>;
  log(level: "info" | "warn" | "error", event: string, fields?: Record<string, unknown>): void;
  /** Told of every apply's end (metrics). */
  done?(result: "changed" | "unchanged" | "failed", causes: string[], ms: number): void;
}

export interface LoopTiming {
  /** Triggers within this window are folded into one apply. */
  debounceMs: number;
}

export class WatchLoop {
  private causes = new Set<string>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  /** Applies run so far, and how many of them changed the kernel (for tests and metrics). */
  readonly counts = { applies: 0, changed: 0, failed: 0 };

  constructor(
    private readonly deps: LoopDeps,
    private readonly timing: LoopTiming,
  ) {}

  /** Asks for an apply soon; returns at once. */
  trigger(cause: string): void {
    if (this.stopped) return;
    this.causes.add(cause);
    this.schedule();
  }

  /** Waits for an apply in progress, then lets no other start. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Resolves when no apply is running or waiting (for tests). */
  async idle(): Promise<void> {
    while (this.running || this.timer) {
      await (this.running ?? new Promise((r) => setTimeout(r, this.timing.debounceMs)));
    }
  }

  private schedule(): void {
    if (this.timer || this.running || this.stopped || this.causes.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.runOnce().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.timing.debounceMs);
  }

  private async runOnce(): Promise<void> {
    const causes = [...this.causes];
    this.causes.clear();
    const started = Date.now();
    this.counts.applies++;
    try {
      const outcome = await this.deps.apply(causes);
      if (outcome.changed) this.counts.changed++;
      if (!outcome.quiet) this.deps.log("info", outcome.changed ? "applied" : "unchanged", { causes, ms: Date.now() - started, ...outcome.detail });
      this.deps.done?.(outcome.changed ? "changed" : "unchanged", causes, Date.now() - started);
    } catch (e) {
      this.counts.failed++;
      this.deps.done?.("failed", causes, Date.now() - started);
      const fields = e instanceof Error && "errors" in e && Array.isArray(e.errors) ? { errors: e.errors } : {};
      this.deps.log("error", "apply failed, the rules in place stay", {
        causes,
        ms: Date.now() - started,
        error: e instanceof Error ? e.message.split("\n")[0] : String(e),
        ...fields,
      });
    }
  }
}
