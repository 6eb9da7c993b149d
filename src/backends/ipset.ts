/**
 * ipset: reading `ipset save`, and planning how to bring dockwall's sets to their desired members
 * in steps that can each be undone: nothing that rules use changes until `commit`.
 */
import type { Family } from "../policy/types.js";
import type { IpSetSpec } from "../ruleset/types.js";
import { isDockwallSet, scratchSetName } from "../compile/names.js";

export interface LiveSet {
  name: string;
  type: string;
  family: Family;
  maxelem: number;
  members: string[];
}

export function parseIpsetSave(text: string, keep: (name: string) => boolean = isDockwallSet): Map<string, LiveSet> {
  const sets = new Map<string, LiveSet>();
  for (const line of text.split("\n")) {
    if (line.startsWith("add ")) {
      const sp = line.indexOf(" ", 4);
      const set = sets.get(line.slice(4, sp));
      if (set) set.members.push(memberOf(line.slice(sp + 1)));
    } else if (line.startsWith("create ")) {
      const words = line.split(" ");
      const name = words[1]!;
      if (!keep(name)) continue;
      const opt = (k: string) => {
        const i = words.indexOf(k);
        return i >= 0 ? words[i + 1] : undefined;
      };
      sets.set(name, {
        name,
        type: words[2]!,
        family: opt("family") === "inet6" ? "ipv6" : "ipv4",
        maxelem: Number(opt("maxelem") ?? 65536),
        members: [],
      });
    }
  }
  return sets;
}

/** `add NAME 10.0.0.0/8 timeout 5` style lines may carry options after the member. */
function memberOf(rest: string): string {
  const sp = rest.indexOf(" ");
  return sp < 0 ? rest : rest.slice(0, sp);
}

/** ipset's default is 65,536: size from the member count, with room to grow. */
export function maxelemFor(count: number): number {
  let m = 65536;
  while (m < count * 1.25) m *= 2;
  return m;
}

/** Small changes go in as adds and deletes; large ones as a new set swapped in. */
const DELTA_LIMIT = 1000;

export interface SetPlan {
  /** Creates new sets and filled scratch sets; touches nothing in use. */
  prepare: string[];
  /** Swaps scratch sets in and applies small deltas: the moment members change. */
  commit: string[];
  /** Reverses `commit`. */
  undoCommit: string[];
  /** Destroys what `prepare` created (when aborting before rules use it). */
  discard: string[];
  /** After the rules are in: destroys scratch sets (old members) and sets no rule uses any more. */
  cleanup: string[];
  /** Human summary, one line per changed set. */
  summary: string[];
}

export function planSets(desired: IpSetSpec[], live: Map<string, LiveSet>): SetPlan {
  const plan: SetPlan = { prepare: [], commit: [], undoCommit: [], discard: [], cleanup: [], summary: [] };
  const wanted = new Set(desired.map((s) => s.name));
  // Scratch sets left by an interrupted run: no rule uses them, and they would block `create`.
  const leftovers = [...live.keys()].filter((n) => n.endsWith(scratchSetName(""))).sort();
  plan.prepare.push(...leftovers.map((n) => `destroy ${n}`));
  for (const want of desired) {
    const have = live.get(want.name);
    const maxelem = maxelemFor(want.members.length);
    if (have === undefined) {
      plan.prepare.push(createLine(want.name, want.family, maxelem), ...want.members.map((m) => `add ${want.name} ${m}`));
      plan.discard.push(`destroy ${want.name}`);
      plan.summary.push(`+ set ${want.name}: create with ${want.members.length} members`);
      continue;
    }
    const { added, removed } = memberDelta(have.members, want.members);
    const compatible = have.type === "hash:net" && have.family === want.family && have.maxelem >= want.members.length;
    if (compatible && added.length === 0 && removed.length === 0) continue;
    plan.summary.push(`~ set ${want.name}: ${added.length} members added, ${removed.length} removed`);
    if (compatible && added.length + removed.length <= DELTA_LIMIT) {
      plan.commit.push(...removed.map((m) => `del ${want.name} ${m}`), ...added.map((m) => `add ${want.name} ${m}`));
      plan.undoCommit.push(...added.map((m) => `del ${want.name} ${m}`), ...removed.map((m) => `add ${want.name} ${m}`));
      continue;
    }
    const scratch = scratchSetName(want.name);
    plan.prepare.push(
      createLine(scratch, want.family, maxelem),
      ...want.members.map((m) => `add ${scratch} ${m}`),
    );
    plan.discard.push(`destroy ${scratch}`);
    plan.commit.push(`swap ${scratch} ${want.name}`);
    plan.undoCommit.push(`swap ${scratch} ${want.name}`);
    plan.cleanup.push(`destroy ${scratch}`);
  }
  for (const name of [...live.keys()].sort()) {
    if (!wanted.has(name) && !leftovers.includes(name)) {
      plan.cleanup.push(`destroy ${name}`);
      plan.summary.push(`- set ${name}: remove (${live.get(name)!.members.length} members)`);
    }
  }
  return plan;
}

function createLine(name: string, family: Family, maxelem: number): string {
  return `create ${name} hash:net family ${family === "ipv4" ? "inet" : "inet6"} maxelem ${maxelem}`;
}

/**
 * Order-independent (ipset save prints in hash order). The common case, nothing changed, costs one
 * Set of the live members and one pass: with 100,000 members this is most of a no-op apply.
 */
export function memberDelta(before: string[], after: string[]): { added: string[]; removed: string[] } {
  const b = new Set(before);
  const added = after.filter((m) => !b.has(m));
  if (added.length === 0 && b.size === after.length) return { added, removed: [] };
  const a = new Set(after);
  return { added, removed: before.filter((m) => !a.has(m)) };
}
