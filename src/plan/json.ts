/**
 * `plan --json`: the summary and the diff as data. `format` changes only when a field changes meaning
 * or goes; new fields may appear within a format. Pure.
 */
import type { FamilyDiff } from "../backends/iptables/diff.js";
import { memberDelta } from "../backends/ipset.js";
import type { IpSetSpec } from "../ruleset/types.js";
import { sameSet } from "../ruleset/members.js";
import { describeTarget } from "./rule-meaning.js";
import { describeChange, lineText } from "./describe.js";
import type { PolicyChange } from "./summarise.js";

export const PLAN_FORMAT = 1;

export interface SetChange {
  name: string;
  family: string;
  change: "create" | "update" | "remove";
  added: string[];
  removed: string[];
}

export interface PlanJson {
  format: number;
  /** Whether `apply` would change anything. */
  changed: boolean;
  /** Each change with the line `plan` prints for it. */
  summary: (PolicyChange & { text: string })[];
  diff: {
    chains: { family: string; table: string; chain: string; change: "create" | "remove" | "update"; added: string[]; removed: string[] }[];
    jumps: { family: string; table: string; from: string; to: string; problem: string }[];
    sets: SetChange[];
  };
}

/** Each set's member changes from `before` to `after`, by set name. */
export function setChanges(before: IpSetSpec[], after: IpSetSpec[]): SetChange[] {
  const out: SetChange[] = [];
  const was = new Map(before.map((s) => [s.name, s]));
  for (const a of after) {
    const b = was.get(a.name);
    if (b !== undefined && sameSet(b, a)) continue;
    const delta = memberDelta(b?.members ?? [], a.members);
    if (b !== undefined && delta.added.length === 0 && delta.removed.length === 0 && b.family === a.family) continue;
    out.push({ name: a.name, family: a.family, change: b === undefined ? "create" : "update", ...delta });
  }
  const wanted = new Set(after.map((s) => s.name));
  for (const b of before) if (!wanted.has(b.name)) out.push({ name: b.name, family: b.family, change: "remove", added: [], removed: [...b.members] });
  return out;
}

export function planJson(changed: boolean, changes: PolicyChange[], diffs: FamilyDiff[], sets: SetChange[]): PlanJson {
  return {
    format: PLAN_FORMAT,
    changed,
    summary: changes.map((c) => ({
      ...c,
      ...("target" in c ? { target: { ...c.target, text: describeTarget(c.target) } } : {}),
      text: lineText(describeChange(c, { rulesHint: "see the diff" }), false),
    })),
    diff: {
      chains: diffs.flatMap((d) =>
        d.chains.map((c) => ({ family: d.family, table: c.table, chain: c.name, change: c.stale ? ("remove" as const) : c.missing ? ("create" as const) : ("update" as const), added: c.added, removed: c.removed })),
      ),
      jumps: diffs.flatMap((d) => d.jumps.map((j) => ({ family: d.family, ...j }))),
      sets,
    },
  };
}
