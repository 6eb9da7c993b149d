/**
 * apply: the only code that changes the kernel. One transaction for IPv4, IPv6 and the sets:
 *
 *   read  -> prepare sets (new sets, filled scratch sets: nothing in use changes)
 *         -> test both payloads (iptables-restore --test) -> journal (transaction.ts)
 *         -> commit sets (swap / small delta) -> restore IPv4 and IPv6 -> read back and verify
 *         -> clean up (old members, sets no rule uses)
 *
 * Any failure undoes every step already taken, in reverse, so the kernel holds the previous rules.
 */
import type { Family } from "../policy/types.js";
import { Netfilter, NetfilterError } from "../backends/netfilter.js";
import { parseSave, type SavedState } from "../backends/iptables/save-parser.js";
import { describeDiff, diffFamily, dockwallPart, isEmptyDiff, restorePayload, type FamilyDiff } from "../backends/iptables/diff.js";
import type { DesiredState } from "../backends/rendered.js";
import { memberCount, sameSet } from "../ruleset/members.js";
import { parseIpsetHeaders, parseIpsetSave, planSets, type LiveSet, type SetPlan } from "../backends/ipset.js";
import type { IpSetSpec } from "../ruleset/types.js";
import { allSettled } from "../exec/settle.js";

export const FAMILIES: Family[] = ["ipv4", "ipv6"];

/** What the kernel holds now, parsed once. */
export interface LiveState {
  ipv4: SavedState;
  ipv6: SavedState;
  sets: Map<string, LiveSet>;
}

export interface ReadOptions {
  /**
   * What dockwall last recorded as applied. A live set whose family and entry count match the
   * record is taken to hold the recorded members, so only `ipset list -t` is read for it; any other
   * set is read in full. Without it every member is read back (what `status` does).
   */
  known?: DesiredState;
}

export async function readLive(nf: Netfilter, opts: ReadOptions = {}): Promise<LiveState> {
  const [v4, v6, sets] = await Promise.all([nf.save("ipv4"), nf.save("ipv6"), readSets(nf, opts.known)]);
  return { ipv4: parseSave(v4), ipv6: parseSave(v6), sets };
}

/**
 * Reading 100,000 members back with `ipset save` (and comparing them) was most of a no-op apply.
 * The trade: a set changed behind dockwall's back to the same entry count is not noticed here;
 * `status` (and the watch daemon's periodic check) read every member and report it as drift.
 */
async function readSets(nf: Netfilter, known: DesiredState | undefined): Promise<Map<string, LiveSet>> {
  if (known === undefined) return parseIpsetSave(await nf.ipsetSave());
  const recorded = new Map(known.sets.map((s) => [s.name, s]));
  const sets = new Map<string, LiveSet>();
  const unread: string[] = [];
  for (const h of parseIpsetHeaders(await nf.ipsetHeaders()).values()) {
    const r = recorded.get(h.name);
    if (r !== undefined && r.family === h.family && memberCount(r) === h.entries) {
      const live = { name: h.name, type: h.type, family: h.family, maxelem: h.maxelem, recorded: r } as LiveSet;
      // The record's members, built only if something asks for them (members.ts).
      Object.defineProperty(live, "members", { enumerable: true, get: () => r.members });
      sets.set(h.name, live);
    } else {
      sets.set(h.name, { ...h, members: [] });
      unread.push(h.name);
    }
  }
  const read = await Promise.all(unread.map((name) => nf.ipsetSave(name)));
  for (const text of read) for (const [name, set] of parseIpsetSave(text)) sets.set(name, set);
  return sets;
}

/** dockwall's part of the live state, in the form apply takes: what `rollback` goes back to. */
export function snapshot(live: LiveState): DesiredState {
  return {
    ipv4: dockwallPart("ipv4", live.ipv4),
    ipv6: dockwallPart("ipv6", live.ipv6),
    sets: [...live.sets.values()]
      .filter((s) => !s.name.endsWith(".n"))
      .map((s) => s.recorded ?? { name: s.name, family: s.family, members: s.members }),
  };
}

export interface Plan {
  diffs: FamilyDiff[];
  sets: SetPlan;
  payloads: Record<Family, string | null>;
}

/** `sets` is planSets(desired.sets, live.sets), when already made (prepareSets). */
export function makePlan(desired: DesiredState, live: LiveState, sets: SetPlan = planSets(desired.sets, live.sets)): Plan {
  return {
    diffs: FAMILIES.map((f) => diffFamily(desired[f], live[f])),
    sets,
    payloads: { ipv4: restorePayload(desired.ipv4, live.ipv4), ipv6: restorePayload(desired.ipv6, live.ipv6) },
  };
}

export function planIsEmpty(p: Plan): boolean {
  return p.diffs.every(isEmptyDiff) && p.sets.summary.length === 0 && p.sets.clear.length === 0 && p.sets.prepare.length === 0;
}

export function describePlan(p: Plan): string[] {
  return [...p.diffs.flatMap(describeDiff), ...p.sets.summary];
}

export class ApplyError extends Error {
  constructor(
    message: string,
    /** False when even the undo failed: the kernel may hold a mix, say so loudly. */
    readonly rolledBack: boolean,
  ) {
    super(message);
  }
}

export interface ApplyResult {
  changed: boolean;
  /** What the kernel held before (dockwall's part), for `rollback`. */
  before: DesiredState;
  summary: string[];
  /** Things the user should know that did not stop the apply (an unreadable state file). */
  warnings?: string[];
  /** An earlier apply that was killed part-way, found in the journal and finished by this one. */
  interrupted?: { at: string; pid: number; source: string };
}

/** What a user is told when an apply finished one that was killed part-way. */
export function interruptedMessage(i: NonNullable<ApplyResult["interrupted"]>): string {
  return `an apply of ${i.source} started at ${i.at} (pid ${i.pid}) was stopped part-way; the kernel may have held part of it until now, it holds this state in full now, and rollback goes back to the state before that apply`;
}

export interface ApplyHooks {
  /**
   * Called once the change is prepared and tested, just before the first write to anything rules
   * or packets use. Sets, IPv4 and IPv6 are separate kernel transactions, so a process killed from
   * here on can leave a mix; this is where the journal that lets the next run finish it is written.
   */
  beforeChange?: (before: DesiredState) => Promise<void>;
}

/** A set plan's first steps under way: nothing rules use changes. */
export interface SetLoads {
  /** `clear` and `prepare` ran: the sets exist (empty at least), so rules naming them can be tested. */
  created: Promise<void>;
  /** `fill` ran. */
  filled: Promise<void>;
}

/** Starts the plan's first steps: `clear`, then `prepare` and `fill` side by side. Inverse: `discard`. */
function startLoads(nf: Netfilter, plan: SetPlan): SetLoads {
  const cleared = nf.ipsetRestore(plan.clear);
  const created = cleared.then(() => nf.ipsetRestore(plan.prepare));
  const filled = cleared.then(() => nf.ipsetFill(plan.fill));
  // Awaited by apply or abandonSets; until then a failure must not count as unhandled.
  created.catch(() => undefined);
  filled.catch(() => undefined);
  return { created, filled };
}

/**
 * The sets of a target whose rules are still compiling, being created and filled: apply's first step
 * started early (most of a first apply is loading members). Handed to apply, which takes it over; if
 * the apply does not go ahead, abandonSets undoes it.
 */
export interface PreparedSets extends SetLoads {
  sets: IpSetSpec[];
  plan: SetPlan;
}

/** Starts creating and filling `sets` against `live` (read under the lock the apply will hold). */
export function prepareSets(nf: Netfilter, sets: IpSetSpec[], live: LiveState): PreparedSets {
  const plan = planSets(sets, live.sets);
  return { sets, plan, ...startLoads(nf, plan) };
}

/** Inverse of prepareSets: waits for its loads to end, then destroys what they created. */
export async function abandonSets(nf: Netfilter, prepared: PreparedSets): Promise<void> {
  await Promise.allSettled([prepared.created, prepared.filled]);
  // Best effort: sets no rule names change nothing, and the next apply plans against whatever is left.
  await nf.ipsetRestore(prepared.plan.discard).catch(() => undefined);
}

/**
 * Applies `desired`; `live` is the kernel's state read under the same lock (read here if not given).
 * `prepared` is taken over when it holds desired's sets (by name, family and members), abandoned otherwise.
 */
export async function apply(nf: Netfilter, desired: DesiredState, live?: LiveState, hooks: ApplyHooks = {}, prepared?: PreparedSets): Promise<ApplyResult> {
  live ??= await readLive(nf);
  const before = snapshot(live);
  if (prepared && !sameSets(prepared.sets, desired.sets)) {
    await abandonSets(nf, prepared);
    prepared = undefined;
  }
  const plan = makePlan(desired, live, prepared?.plan);
  if (planIsEmpty(plan)) return { changed: false, before, summary: [] };

  const undo: (() => Promise<void>)[] = [];
  const fail = async (cause: unknown): Promise<never> => {
    const message = cause instanceof Error ? cause.message : String(cause);
    const undoErrors: string[] = [];
    for (const step of undo.reverse()) {
      try {
        await step();
      } catch (e) {
        undoErrors.push(e instanceof Error ? e.message : String(e));
      }
    }
    if (undoErrors.length > 0) {
      throw new ApplyError(`${message}\nundoing the change also failed, the kernel may hold a mix: ${undoErrors.join("; ")}`, false);
    }
    throw new ApplyError(`${message}\nnothing was changed: the previous rules are in place`, true);
  };

  try {
    undo.push(() => nf.ipsetRestore(plan.sets.discard));
    const loads = prepared ?? startLoads(nf, plan.sets);
    // The rules name the sets, so they are tested once the sets exist (empty is enough), while the
    // members load; the two families side by side.
    const tested = loads.created.then(() => allSettled(withPayload(plan, (f, payload) => nf.test(f, payload))));
    await allSettled([loads.created, tested, loads.filled]);
    await hooks.beforeChange?.(before);
    undo.push(() => nf.ipsetRestore(plan.sets.undoCommit));
    await nf.ipsetRestore(plan.sets.commit);
    // IPv4 and IPv6 are separate tables: loaded side by side, both undone if either fails.
    for (const f of FAMILIES) {
      if (plan.payloads[f] === null) continue;
      // Undo by loading the old dockwall part against whatever is there now (a block may have gone in).
      undo.push(async () => {
        const now = parseSave(await nf.save(f));
        const back = restorePayload(before[f], now);
        if (back !== null) await nf.restore(f, back);
      });
    }
    await allSettled(withPayload(plan, (f, payload) => nf.restore(f, payload)));
    await verify(nf, desired);
  } catch (e) {
    return fail(e);
  }
  // Old members and unused sets go last: until now a rollback could still need them.
  try {
    await nf.ipsetRestore(plan.sets.cleanup);
  } catch (e) {
    // The rules are right; a leftover scratch set is removed by the next apply.
    return { changed: true, before, summary: [...describePlan(plan), `warning: ${(e as Error).message}`] };
  }
  return { changed: true, before, summary: describePlan(plan) };
}

function sameSets(a: IpSetSpec[], b: IpSetSpec[]): boolean {
  return a === b || (a.length === b.length && a.every((s, i) => sameSet(s, b[i]!)));
}

function withPayload(plan: Plan, step: (f: Family, payload: string) => Promise<void>): Promise<void>[] {
  return FAMILIES.flatMap((f) => {
    const payload = plan.payloads[f];
    return payload === null ? [] : [step(f, payload)];
  });
}

/**
 * Reads the kernel back and checks it holds exactly dockwall's desired part: every rule, and every
 * set's type, family and entry count (members are read only where a count differs).
 */
export async function verify(nf: Netfilter, desired: DesiredState): Promise<void> {
  const live = await readLive(nf, { known: desired });
  const problems: string[] = [];
  for (const f of FAMILIES) {
    const d = diffFamily(desired[f], live[f]);
    if (!isEmptyDiff(d)) problems.push(...describeDiff(d));
  }
  const setPlan = planSets(desired.sets, live.sets);
  problems.push(...setPlan.summary.filter((l) => !l.startsWith("- ")));
  if (problems.length > 0) {
    throw new NetfilterError(`read-back verification failed, the kernel does not hold what was loaded:\n${problems.join("\n")}`);
  }
}
