/**
 * apply: the only code that changes the kernel. One transaction for IPv4, IPv6 and the sets:
 *
 *   read  -> prepare sets (new sets, filled scratch sets: nothing in use changes)
 *         -> test both payloads (iptables-restore --test)
 *         -> commit sets (swap / small delta) -> restore IPv4 -> restore IPv6 -> read back and verify
 *         -> clean up (old members, sets no rule uses)
 *
 * Any failure undoes every step already taken, in reverse, so the kernel holds the previous rules.
 */
import type { Family } from "../policy/types.js";
import { Netfilter, NetfilterError } from "../backends/netfilter.js";
import { parseSave, type SavedState } from "../backends/iptables/save-parser.js";
import { describeDiff, diffFamily, dockwallPart, isEmptyDiff, restorePayload, type FamilyDiff } from "../backends/iptables/diff.js";
import type { DesiredState } from "../backends/rendered.js";
import { parseIpsetSave, planSets, type LiveSet, type SetPlan } from "../backends/ipset.js";

export const FAMILIES: Family[] = ["ipv4", "ipv6"];

/** What the kernel holds now, parsed once. */
export interface LiveState {
  ipv4: SavedState;
  ipv6: SavedState;
  sets: Map<string, LiveSet>;
}

export async function readLive(nf: Netfilter): Promise<LiveState> {
  const [v4, v6, sets] = await Promise.all([nf.save("ipv4"), nf.save("ipv6"), nf.ipsetSave()]);
  return { ipv4: parseSave(v4), ipv6: parseSave(v6), sets: parseIpsetSave(sets) };
}

/** dockwall's part of the live state, in the form apply takes: what `rollback` goes back to. */
export function snapshot(live: LiveState): DesiredState {
  return {
    ipv4: dockwallPart("ipv4", live.ipv4),
    ipv6: dockwallPart("ipv6", live.ipv6),
    sets: [...live.sets.values()]
      .filter((s) => !s.name.endsWith(".n"))
      .map((s) => ({ name: s.name, family: s.family, members: s.members })),
  };
}

export interface Plan {
  diffs: FamilyDiff[];
  sets: SetPlan;
  payloads: Record<Family, string | null>;
}

export function makePlan(desired: DesiredState, live: LiveState): Plan {
  return {
    diffs: FAMILIES.map((f) => diffFamily(desired[f], live[f])),
    sets: planSets(desired.sets, live.sets),
    payloads: { ipv4: restorePayload(desired.ipv4, live.ipv4), ipv6: restorePayload(desired.ipv6, live.ipv6) },
  };
}

export function planIsEmpty(p: Plan): boolean {
  return p.diffs.every(isEmptyDiff) && p.sets.summary.length === 0 && p.sets.prepare.length === 0;
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
}

export async function apply(nf: Netfilter, desired: DesiredState): Promise<ApplyResult> {
  const live = await readLive(nf);
  const before = snapshot(live);
  const plan = makePlan(desired, live);
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
    await nf.ipsetRestore(plan.sets.prepare);
    for (const f of FAMILIES) {
      const payload = plan.payloads[f];
      if (payload !== null) await nf.test(f, payload);
    }
    undo.push(() => nf.ipsetRestore(plan.sets.undoCommit));
    await nf.ipsetRestore(plan.sets.commit);
    for (const f of FAMILIES) {
      const payload = plan.payloads[f];
      if (payload === null) continue;
      // Undo by loading the old dockwall part against whatever is there now (a block may have gone in).
      undo.push(async () => {
        const now = parseSave(await nf.save(f));
        const back = restorePayload(before[f], now);
        if (back !== null) await nf.restore(f, back);
      });
      await nf.restore(f, payload);
    }
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

/** Reads the kernel back and checks it holds exactly dockwall's desired part. */
export async function verify(nf: Netfilter, desired: DesiredState): Promise<void> {
  const live = await readLive(nf);
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
