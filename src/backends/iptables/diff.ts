/**
 * Compares dockwall's desired part of one family with what the kernel holds, and writes the
 * `iptables-restore --noflush` payload that turns one into the other. Only dockwall's own chains
 * are declared (and so flushed); built-in chains only get the jump deleted or inserted; Docker's
 * chains are never named.
 */
import type { Family } from "../../policy/types.js";
import type { Table } from "../../ruleset/types.js";
import { isDockwallChain } from "../../compile/names.js";
import type { RenderedFamily, RenderedJump } from "./render.js";
import { ruleTarget, type SavedState } from "./save-parser.js";

export interface ChainDiff {
  table: string;
  name: string;
  /** The chain is missing from the kernel. */
  missing: boolean;
  /** The chain is in the kernel but not wanted any more. */
  stale: boolean;
  added: string[];
  removed: string[];
}

export interface JumpDiff {
  table: string;
  from: string;
  to: string;
  problem: "missing" | "not first" | "duplicated" | "stale";
}

export interface FamilyDiff {
  family: Family;
  chains: ChainDiff[];
  jumps: JumpDiff[];
}

export function isEmptyDiff(d: FamilyDiff): boolean {
  return d.chains.length === 0 && d.jumps.length === 0;
}

/** dockwall's part of a saved state: its chains, and the jumps into them from built-in chains. */
export function dockwallPart(family: Family, state: SavedState): RenderedFamily {
  const part: RenderedFamily = { family, chains: [], jumps: [] };
  for (const table of state.values()) {
    for (const chain of table.chains.values()) {
      if (isDockwallChain(chain.name)) {
        part.chains.push({ table: table.name as Table, name: chain.name, rules: [...chain.rules] });
      } else if (chain.policy !== undefined) {
        for (const spec of chain.rules) {
          const to = ruleTarget(spec);
          if (to !== undefined && isDockwallChain(to)) part.jumps.push({ table: table.name as Table, from: chain.name, to, spec });
        }
      }
    }
  }
  return part;
}

export function diffFamily(desired: RenderedFamily, state: SavedState): FamilyDiff {
  const live = dockwallPart(desired.family, state);
  const diff: FamilyDiff = { family: desired.family, chains: [], jumps: [] };
  const key = (t: string, n: string) => `${t}/${n}`;
  const liveChains = new Map(live.chains.map((c) => [key(c.table, c.name), c]));
  const wanted = new Set(desired.chains.map((c) => key(c.table, c.name)));
  for (const c of desired.chains) {
    const l = liveChains.get(key(c.table, c.name));
    if (l === undefined) {
      diff.chains.push({ table: c.table, name: c.name, missing: true, stale: false, added: [...c.rules], removed: [] });
    } else if (!sameLines(l.rules, c.rules)) {
      diff.chains.push({ table: c.table, name: c.name, missing: false, stale: false, ...lineDiff(l.rules, c.rules) });
    }
  }
  for (const l of live.chains) {
    if (!wanted.has(key(l.table, l.name))) {
      diff.chains.push({ table: l.table, name: l.name, missing: false, stale: true, added: [], removed: [...l.rules] });
    }
  }
  const wantedJumps = new Set(desired.jumps.map((j) => key(j.table, `${j.from}>${j.to}`)));
  for (const j of desired.jumps) {
    const rules = state.get(j.table)?.chains.get(j.from)?.rules ?? [];
    const count = rules.filter((r) => ruleTarget(r) === j.to).length;
    if (count === 0) diff.jumps.push({ table: j.table, from: j.from, to: j.to, problem: "missing" });
    else if (rules[0] !== j.spec) diff.jumps.push({ table: j.table, from: j.from, to: j.to, problem: "not first" });
    else if (count > 1) diff.jumps.push({ table: j.table, from: j.from, to: j.to, problem: "duplicated" });
  }
  for (const j of live.jumps) {
    if (!wantedJumps.has(key(j.table, `${j.from}>${j.to}`))) {
      diff.jumps.push({ table: j.table, from: j.from, to: j.to, problem: "stale" });
    }
  }
  return diff;
}

/** The restore payload for `iptables-restore --noflush`, or null when the kernel already matches. */
export function restorePayload(desired: RenderedFamily, state: SavedState): string | null {
  const diff = diffFamily(desired, state);
  if (isEmptyDiff(diff)) return null;
  const live = dockwallPart(desired.family, state);
  const tables = new Set<string>([...diff.chains.map((c) => c.table), ...diff.jumps.map((j) => j.table)]);
  const out: string[] = [];
  for (const table of [...tables].sort()) {
    out.push(`*${table}`);
    const changed = diff.chains.filter((c) => c.table === table);
    for (const c of changed) out.push(`:${c.name} - [0:0]`);
    for (const c of changed) {
      if (c.stale) continue;
      const chain = desired.chains.find((d) => d.table === table && d.name === c.name)!;
      for (const rule of chain.rules) out.push(`-A ${c.name} ${rule}`);
    }
    // A jump that is not alone at the top is taken out everywhere and put back first: `-C`-style
    // presence is not enough, a jump below Docker's ACCEPTs filters nothing.
    const brokenFroms = new Set(diff.jumps.filter((j) => j.table === table).map((j) => `${j.from}>${j.to}`));
    for (const j of live.jumps) {
      if (j.table === table && brokenFroms.has(`${j.from}>${j.to}`)) out.push(`-D ${j.from} ${j.spec}`);
    }
    for (const j of desired.jumps) {
      if (j.table === table && brokenFroms.has(`${j.from}>${j.to}`)) out.push(`-I ${j.from} 1 ${j.spec}`);
    }
    for (const c of changed) if (c.stale) out.push(`-X ${c.name}`);
    out.push("COMMIT");
  }
  return out.join("\n") + "\n";
}

export function describeDiff(d: FamilyDiff): string[] {
  const lines: string[] = [];
  for (const c of d.chains) {
    const head = `${d.family} ${c.table} ${c.name}`;
    if (c.stale) lines.push(`- ${head}: remove chain (${c.removed.length} rules)`);
    else if (c.missing) lines.push(`+ ${head}: create chain (${c.added.length} rules)`);
    else lines.push(`~ ${head}: ${c.added.length} rules added, ${c.removed.length} removed`);
    for (const r of c.removed) lines.push(`    - ${r}`);
    for (const r of c.added) lines.push(`    + ${r}`);
  }
  for (const j of d.jumps) lines.push(`~ ${d.family} ${j.table} ${j.from} -> ${j.to}: jump ${j.problem}`);
  return lines;
}

function sameLines(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Multiset difference: which lines only one side has (order changes show as remove + add). */
function lineDiff(before: string[], after: string[]): { added: string[]; removed: string[] } {
  const count = new Map<string, number>();
  for (const l of before) count.set(l, (count.get(l) ?? 0) + 1);
  const added: string[] = [];
  for (const l of after) {
    const n = count.get(l) ?? 0;
    if (n > 0) count.set(l, n - 1);
    else added.push(l);
  }
  const removed: string[] = [];
  for (const [l, n] of count) for (let i = 0; i < n; i++) removed.push(l);
  if (added.length === 0 && removed.length === 0) return { added: [...after], removed: [...before] }; // reordered
  return { added, removed };
}

export type { RenderedJump };
