/** apply under the lock, and remember what was there before so `rollback` can go back to it exactly. */
import type { Netfilter } from "../backends/netfilter.js";
import type { DesiredState } from "../backends/rendered.js";
import { abandonSets, apply, ApplyError, prepareSets, readLive, type ApplyResult, type LiveState } from "./apply.js";
import type { IpSetSpec } from "../ruleset/types.js";
import type { Lock } from "./lock.js";
import { appliedState, StateFileError, type AppliedRecord, type StateStore } from "./state-store.js";
import { sameInputs, type CompileOrigin } from "../inputs.js";
import { sameState } from "./state-digest.js";

export interface ApplyTarget {
  netfilter: Netfilter;
  desired: DesiredState;
  /** Set for a state compiled from a policy file (see inputs.ts). */
  origin?: CompileOrigin;
}

export interface ApplyOptions {
  /** Read every set member back rather than trusting the record where entry counts agree. */
  fullRead?: boolean;
  /**
   * Runs under the lock once the target is complete, before the kernel is written; throwing
   * refuses the apply (the lock-out guard).
   */
  guard?: (desired: DesiredState, nf: Netfilter, live: LiveState) => Promise<void>;
  /**
   * The target's sets, when known before the rest of it: they are created and filled while the rules
   * compile (apply.ts prepareSets), and taken over if the target holds the same sets.
   */
  sets?: Promise<IpSetSpec[]>;
}

/**
 * Takes the lock, reads the kernel and applies. The target may still be compiling: the lock and the
 * kernel read (child processes, on the other core) overlap the policy parse, which is most of an
 * apply that changes nothing. The kernel is first written after the target is complete.
 */
export async function applyWhenReady(
  netfilter: Promise<Netfilter>,
  target: Promise<ApplyTarget>,
  store: StateStore,
  lock: Lock,
  source: string,
  opts: ApplyOptions = {},
): Promise<ApplyResult> {
  // Awaited below; until then a failure (an invalid policy) must not count as unhandled.
  target.catch(() => undefined);
  // The lock file is in the state directory: checked (and created) first.
  await store.ready();
  const release = await lock.acquire();
  try {
    const nf = await netfilter;
    // A state file that is not valid is not used, and does not stop an apply: the records only let
    // an apply skip reading set members and compiling, the kernel is read in full instead and the
    // target applied as always; the new record replaces the bad file. A host stuck with its old
    // rules (or, at boot, none) because a bookkeeping file is damaged is worse than one that gets
    // the policy. `rollback` is different: its target comes from those files, and it refuses.
    const [currentRead, pendingRead] = await Promise.all([readable(store.current()), readable(store.pending())]);
    const recorded = currentRead.value;
    const pending = pendingRead.value;
    const warnings = [currentRead, pendingRead].flatMap((r) =>
      r.error ? [`${r.error.file} is not a valid dockwall state (${r.error.reason}): not used; the whole kernel was read, and the file is ${r.error.which === "pending" ? "removed" : "replaced"} once this apply is recorded`] : [],
    );
    // A journal that cannot be read still says an apply was killed part-way.
    const journalLost = pendingRead.error !== undefined;
    // After an apply killed part-way the kernel may hold anything between two records: read it all.
    const known = opts.fullRead || pending || journalLost ? undefined : appliedState(recorded, nf.variant);
    const reading = readLive(nf, known ? { known } : {});
    reading.catch(() => undefined);
    // The target's failure (an invalid policy) is reported before the kernel read's.
    const sets = opts.sets && (await Promise.race([opts.sets, target.then((t) => t.desired.sets)]));
    const prepared = sets && prepareSets(nf, sets, await reading);
    const ready = async () => {
      const t = await target;
      if (t.netfilter.variant !== nf.variant) throw new Error(`internal: iptables variant changed from ${nf.variant} to ${t.netfilter.variant} during apply`);
      const live = await reading;
      await opts.guard?.(t.desired, nf, live);
      return { ...t, live };
    };
    const { desired, origin, live } = await ready().catch(async (e: unknown) => {
      if (prepared) await abandonSets(nf, prepared);
      throw e;
    });
    const started = new Date().toISOString();
    // The state before this change is the last whole state dockwall applied: the journal's `before`
    // after a killed apply, else the last record. Not what the kernel holds now: after a reboot or a
    // flush by another tool that is nothing (or a part), and `rollback` would take every rule out.
    // Only with no usable record (the first apply, another variant) is the kernel's part taken.
    const lastWhole = pending?.before ?? (recorded?.variant === nf.variant ? recorded : undefined);
    const previousOf = (state: DesiredState): AppliedRecord =>
      lastWhole ?? { at: recorded?.at ?? started, source: recorded?.source ?? (currentRead.error ? "what the kernel held (the record was unreadable)" : "before dockwall"), variant: nf.variant, state };
    // A journal left by a killed apply stays: its `before` is the last whole state, older than ours.
    let journalled = false;
    const beginJournal = (before: DesiredState) => {
      journalled = true;
      return store.begin({ at: started, pid: process.pid, source, before: previousOf(before) });
    };
    const applied = await apply(nf, desired, live, pending || journalLost ? {} : { beforeChange: beginJournal }, prepared).catch(async (e: unknown) => {
      // Fully undone, the kernel holds what the records say: the journal this apply wrote would make
      // `status` report an interrupted apply, and `rollback` then go to its `before` (the current
      // state) and record that as `previous`, losing the real one. Not undone, it stays: it is true.
      if (journalled && e instanceof ApplyError && e.rolledBack) await store.endJournal();
      throw e;
    });
    const result = warnings.length > 0 ? { ...applied, warnings: [...(applied.warnings ?? []), ...warnings] } : applied;
    const at = new Date().toISOString();
    const current = { at, source, variant: nf.variant, state: desired, ...(origin ? { origin } : {}) };
    const restoresRecord = !pending && !journalLost && recorded?.variant === nf.variant && sameState(desired, recorded.state);
    if ((pending && sameState(desired, pending.before.state)) || (restoresRecord && result.changed)) {
      // Back to the state before a killed apply (`rollback`), or the record put back into a kernel
      // that lost it (a reboot, a flush: watch's repairs): no new change, so the state before the
      // last change is still `previous`; recording the last whole state there would make it a copy
      // of `current` and lose it.
      await store.record(current);
    } else if (result.changed || recorded === undefined || pending || journalLost) {
      await store.record(current, previousOf(result.before));
    } else if (!sameInputs(recorded.origin?.inputs, origin?.inputs)) {
      // Same rules from changed files (a comment edited): `previous` must not become a copy of `current`.
      await store.amend({ ...current, at: recorded.at });
    }
    return pending ? { ...result, interrupted: { at: pending.at, pid: pending.pid, source: pending.source } } : result;
  } finally {
    await release();
  }
}

/** applyWhenReady for a target known up front (rollback, remove, tests). */
export function applyAndRecord(
  nf: Netfilter,
  desired: DesiredState,
  store: StateStore,
  lock: Lock,
  source: string,
  opts: ApplyOptions & { origin?: CompileOrigin } = {},
): Promise<ApplyResult> {
  const target = { netfilter: nf, desired, ...(opts.origin ? { origin: opts.origin } : {}) };
  return applyWhenReady(Promise.resolve(nf), Promise.resolve(target), store, lock, source, opts);
}

/** A state file's content, or why it is not valid (any other failure, such as an unsafe directory, throws). */
async function readable<T>(read: Promise<T | undefined>): Promise<{ value?: T; error?: StateFileError }> {
  try {
    const value = await read;
    return value === undefined ? {} : { value };
  } catch (e) {
    if (e instanceof StateFileError) return { error: e };
    throw e;
  }
}
