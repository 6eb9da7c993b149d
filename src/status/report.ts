/**
 * What `dockwall status` reports, read from the kernel first and the state directory second: where
 * the jumps are and what dockwall's chains hold come from the kernel alone; the records only say what
 * was meant (drift), what is pending (an interrupted apply, a confirm window) and where it came from.
 */
import path from "node:path";
import type { Family } from "../policy/types.js";
import { FAMILIES } from "../apply/apply.js";
import type { Netfilter } from "../backends/netfilter.js";
import { parseSave, type SavedState } from "../backends/iptables/save-parser.js";
import { parseIpsetSave } from "../backends/ipset.js";
import { isDockwallChain } from "../compile/names.js";
import { readWindow } from "../apply/confirm.js";
import type { AppliedRecord, StateStore } from "../apply/state-store.js";
import { readDegraded, type DegradedNote } from "../daemon/degraded.js";
import { kernelJumps, type KernelJumps } from "./jumps.js";
import { ruleDrift, setDrift, type RuleDrift, type SetDrift } from "./drift.js";

/** The version of the `status --json` shape: raised when a field changes meaning or is removed. */
export const STATUS_FORMAT = 1;

export interface FamilyStatus {
  /** "TABLE/CHAIN" of each dockwall chain in the kernel, with its rule count. */
  chains: Record<string, number>;
  jumps: KernelJumps;
  /** jumps.state === "first". */
  jumpsFirst: boolean;
  /** Counted by the kernel on dockwall's DROP and REJECT rules. */
  dropped: { packets: number; bytes: number };
}

export interface StatusReport {
  format: typeof STATUS_FORMAT;
  /** Absolute. */
  stateDir: string;
  /** A record of an apply exists (it may be of `remove`: see `holdsRules`). */
  applied: boolean;
  appliedAt?: string;
  /** As recorded: a policy file, or what made the state ("remove", "rollback to ..."). */
  source?: string;
  /** The policy file the applied rules were compiled from, absolute; absent for rollback, remove, or an old record with a relative path. */
  policyFile?: string;
  /** The applied record has rules or sets (false after `remove`). */
  holdsRules: boolean;
  variant: string;
  inSync: boolean;
  /** The kernel holds dockwall chains, jumps or sets, and no record says they were applied. */
  unrecorded: boolean;
  /** An apply killed part-way: the kernel may hold part of it. */
  interrupted?: { at: string; pid: number; source: string };
  /** An `apply --confirm` window open for the applied record: rolled back at the deadline unless confirmed. */
  awaitingConfirm?: ConfirmPending;
  /** `watch` cannot apply the policy and holds a fallback instead (daemon/degraded.ts). */
  degraded?: DegradedNote;
  drift: RuleDrift[];
  setDrift: SetDrift[];
  /** The command that puts the record back into the kernel, when there is drift. */
  repair?: string;
  families: Record<Family, FamilyStatus>;
  sets: { name: string; family: string; members: number }[];
}

export interface ConfirmPending {
  until: string;
  /** The apply the window is for (the applied record). */
  appliedAt: string;
  source: string;
  /** The deadline has passed and the window is still open: the keeper has not acted (yet, or at all). */
  overdue: boolean;
  /** What the rollback at the deadline goes back to; absent if there is nothing (or it cannot be read: `rollbackProblem`). */
  rollsBackTo?: { at: string; source: string };
  rollbackProblem?: string;
}

export interface StatusInputs {
  nf: Netfilter;
  store: StateStore;
  /** Milliseconds since the epoch; the clock by default. */
  now?: number;
  /** Where a degraded note that cannot be read is reported (it does not stop status). */
  warn?: (line: string) => void;
}

/** Reads the kernel (with counters, once per family) and the state directory. Throws StateFileError for a record that is not valid. */
export async function readStatus(inputs: StatusInputs): Promise<StatusReport> {
  const { nf, store } = inputs;
  const now = inputs.now ?? Date.now();
  // Strict: a state file that is not valid is reported (exit 2), never read as "nothing applied".
  const [current, pending, window] = await Promise.all([store.current(), store.pending(), readWindow(store)]);
  const [v4, v6, setsText] = await Promise.all([nf.save("ipv4", { counters: true }), nf.save("ipv6", { counters: true }), nf.ipsetSave()]);
  const saved: Record<Family, SavedState> = { ipv4: parseSave(v4), ipv6: parseSave(v6) };
  const liveSets = parseIpsetSave(setsText);
  // A note from before a later apply (`dockwall apply` by hand) is stale: it no longer says what holds.
  const note = await readDegraded(store.dir).catch((e: unknown) => {
    inputs.warn?.(e instanceof Error ? e.message : String(e));
    return undefined;
  });
  const degraded = note !== undefined && note.heldAt === current?.at ? note : undefined;

  const families = {} as Record<Family, FamilyStatus>;
  const drift: RuleDrift[] = [];
  for (const f of FAMILIES) {
    families[f] = familyStatus(saved[f]);
    if (current) drift.push(...ruleDrift(current.state[f], saved[f]));
  }
  const setsDrift = current ? setDrift(current.state.sets, liveSets) : [];
  const kernelHasDockwall = FAMILIES.some((f) => Object.keys(families[f].chains).length > 0 || families[f].jumps.state !== "none") || liveSets.size > 0;
  const policyFile = policyFileOf(current);
  const drifted = drift.length > 0 || setsDrift.length > 0;
  const awaitingConfirm = window && current && window.appliedAt === current.at ? await confirmPending(store, window, current, now) : undefined;
  return {
    format: STATUS_FORMAT,
    stateDir: path.resolve(store.dir),
    applied: current !== undefined,
    ...(current ? { appliedAt: current.at, source: current.source } : {}),
    ...(policyFile ? { policyFile } : {}),
    holdsRules: current !== undefined && holdsRules(current),
    variant: nf.variant,
    inSync: current !== undefined && !drifted && !pending,
    unrecorded: current === undefined && kernelHasDockwall,
    ...(pending ? { interrupted: { at: pending.at, pid: pending.pid, source: pending.source } } : {}),
    ...(awaitingConfirm ? { awaitingConfirm } : {}),
    ...(degraded ? { degraded } : {}),
    drift,
    setDrift: setsDrift,
    ...(current && drifted ? { repair: repairCommand(current, policyFile) } : {}),
    families,
    sets: [...liveSets.values()].map((s) => ({ name: s.name, family: s.family, members: s.members.length })),
  };
}

/** 0 applied and in sync; 3 drift, nothing applied, an interrupted apply, or DEGRADED (README "exit codes"). */
export function statusExitCode(r: StatusReport): number {
  return r.inSync && !r.degraded ? 0 : 3;
}

function familyStatus(saved: SavedState): FamilyStatus {
  const chains: Record<string, number> = {};
  let packets = 0;
  let bytes = 0;
  for (const table of saved.values()) {
    for (const chain of table.chains.values()) {
      if (!isDockwallChain(chain.name)) continue;
      chains[`${table.name}/${chain.name}`] = chain.rules.length;
      chain.rules.forEach((spec, i) => {
        const c = chain.counters?.[i];
        if (c && / -j (DROP|REJECT)\b/.test(` ${spec}`)) {
          packets += c.packets;
          bytes += c.bytes;
        }
      });
    }
  }
  const jumps = kernelJumps(saved);
  return { chains, jumps, jumpsFirst: jumps.state === "first", dropped: { packets, bytes } };
}

function holdsRules(r: AppliedRecord): boolean {
  return FAMILIES.some((f) => r.state[f].chains.length > 0 || r.state[f].jumps.length > 0) || r.state.sets.length > 0;
}

/** A record compiled from a policy carries its origin; its source is then the file (absolute since apply records it so). */
function policyFileOf(r: AppliedRecord | undefined): string | undefined {
  return r?.origin !== undefined && path.isAbsolute(r.source) ? r.source : undefined;
}

function repairCommand(r: AppliedRecord, policyFile: string | undefined): string {
  if (policyFile) return `dockwall apply --full-read -c ${shellWord(policyFile)}`;
  if (!holdsRules(r)) return "dockwall remove";
  // A rollback's state (or an old record with a relative path): no file to name.
  return "dockwall apply --full-read -c POLICY_FILE";
}

async function confirmPending(store: StateStore, w: { deadline: number; appliedAt: string }, current: AppliedRecord, now: number): Promise<ConfirmPending> {
  const base = { until: new Date(w.deadline).toISOString(), appliedAt: w.appliedAt, source: current.source, overdue: w.deadline < now };
  try {
    const target = await store.rollbackTarget();
    return { ...base, ...(target ? { rollsBackTo: { at: target.at, source: target.source } } : { rollbackProblem: "there is no earlier state to go back to" }) };
  } catch (e) {
    return { ...base, rollbackProblem: e instanceof Error ? e.message : String(e) };
  }
}

/** A path as one shell word: quoted when it holds anything but the safe characters. */
function shellWord(p: string): string {
  return /^[A-Za-z0-9_./+:@%-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`;
}
