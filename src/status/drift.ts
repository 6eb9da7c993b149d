/**
 * Drift as `status` reports it: what the applied record holds that the kernel does not ("missing")
 * and what the kernel holds in dockwall's part that the record does not ("extra"). The direction is
 * the kernel's, not a plan's: a rule deleted by hand is missing, never "+ added". Pure.
 */
import type { Family } from "../policy/types.js";
import type { IpSetSpec } from "../ruleset/types.js";
import { diffFamily } from "../backends/iptables/diff.js";
import { jumpSpec, type RenderedFamily } from "../backends/iptables/render.js";
import type { SavedState } from "../backends/iptables/save-parser.js";
import { memberDelta, type LiveSet } from "../backends/ipset.js";
import { scratchSetName } from "../compile/names.js";

export type DriftKind = "missing" | "extra";

/** One rule (or chain, or jump) that differs between the record and the kernel. */
export interface RuleDrift {
  family: Family;
  table: string;
  /** The chain the rule is in: a dockwall chain, or the built-in chain of a jump (INPUT, FORWARD). */
  chain: string;
  /** The rule after `-A CHAIN `, as iptables-save prints it; null for the chain itself. */
  rule: string | null;
  kind: DriftKind;
  /** Why, when the kind alone does not say: "out of order", "not first", "duplicated". */
  detail?: string;
}

/** One set, or one member of a set, that differs between the record and the kernel. */
export interface SetDrift {
  family: Family;
  set: string;
  /** Absent for the set itself. */
  member?: string;
  kind: DriftKind;
  detail?: string;
}

export function ruleDrift(recorded: RenderedFamily, saved: SavedState): RuleDrift[] {
  const family = recorded.family;
  const diff = diffFamily(recorded, saved);
  const out: RuleDrift[] = [];
  for (const c of diff.chains) {
    const at = { family, table: c.table, chain: c.name };
    if (c.missing) out.push({ ...at, rule: null, kind: "missing" });
    if (c.stale) out.push({ ...at, rule: null, kind: "extra" });
    // diff.ts gives the whole chain on both sides when only the order differs.
    const reordered = !c.missing && !c.stale && sameMultiset(c.added, c.removed);
    const detail = reordered ? { detail: "out of order" } : {};
    out.push(...c.added.map((rule) => ({ ...at, rule, kind: "missing" as const, ...detail })));
    out.push(...c.removed.map((rule) => ({ ...at, rule, kind: "extra" as const, ...detail })));
  }
  for (const j of diff.jumps) {
    const at = { family, table: j.table, chain: j.from, rule: jumpSpec(j.to) };
    if (j.problem === "missing") out.push({ ...at, kind: "missing" });
    // Below Docker's ACCEPTs a jump filters nothing: the jump that counts, the first rule, is missing.
    else if (j.problem === "not first") out.push({ ...at, kind: "missing", detail: "not first" });
    else if (j.problem === "duplicated") out.push({ ...at, kind: "extra", detail: "duplicated" });
    else out.push({ ...at, kind: "extra" });
  }
  return out;
}

/** `live` as status reads it: every member of every dockwall set (no record trusted). */
export function setDrift(recorded: IpSetSpec[], live: Map<string, LiveSet>): SetDrift[] {
  const out: SetDrift[] = [];
  const wanted = new Set(recorded.map((s) => s.name));
  for (const want of recorded) {
    const have = live.get(want.name);
    const at = { family: want.family, set: want.name };
    if (have === undefined) {
      out.push({ ...at, kind: "missing", detail: `${want.members.length} members` });
      continue;
    }
    if (have.type !== "hash:net" || have.family !== want.family) {
      out.push({ ...at, kind: "missing", detail: `the kernel's set is ${have.type} ${have.family}, not hash:net ${want.family}` });
    }
    const { added, removed } = memberDelta(have.members, want.members);
    out.push(...added.map((member) => ({ ...at, member, kind: "missing" as const })));
    out.push(...removed.map((member) => ({ ...at, member, kind: "extra" as const })));
  }
  for (const have of [...live.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    // Scratch sets are an interrupted apply's leftovers: no rule uses them, the next apply clears them.
    if (wanted.has(have.name) || have.name.endsWith(scratchSetName(""))) continue;
    out.push({ family: have.family, set: have.name, kind: "extra", detail: `${have.members.length} members` });
  }
  return out;
}

function sameMultiset(a: string[], b: string[]): boolean {
  if (a.length !== b.length || a.length === 0) return false;
  const x = [...a].sort();
  const y = [...b].sort();
  return x.every((v, i) => v === y[i]);
}
