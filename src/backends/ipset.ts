/**
 * ipset: reading `ipset save`, and planning how to bring dockwall's sets to their desired members
 * in steps that can each be undone: nothing that rules use changes until `commit`.
 */
import type { Family } from "../policy/types.js";
import type { IpSetSpec } from "../ruleset/types.js";
import { isDockwallSet, scratchSetName } from "../compile/names.js";
import { memberCount } from "../ruleset/members.js";

export interface LiveSet {
  name: string;
  type: string;
  family: Family;
  maxelem: number;
  members: string[];
  /** Set when the kernel's entry count matched the applied record: `members` are the record's. */
  recorded?: IpSetSpec;
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

/** A set as `ipset list -t` describes it: everything but the members, which is cheap to read. */
export interface SetHeader {
  name: string;
  type: string;
  family: Family;
  maxelem: number;
  entries: number;
}

export function parseIpsetHeaders(text: string, keep: (name: string) => boolean = isDockwallSet): Map<string, SetHeader> {
  const headers = new Map<string, SetHeader>();
  for (const block of text.split(/\n(?=Name: )/)) {
    const field = (k: string) => new RegExp(`^${k}: (.*)$`, "m").exec(block)?.[1]?.trim();
    const name = field("Name");
    if (name === undefined || !keep(name)) continue;
    const header = ` ${field("Header") ?? ""} `;
    headers.set(name, {
      name,
      type: field("Type") ?? "",
      family: header.includes(" family inet6 ") ? "ipv6" : "ipv4",
      maxelem: Number(/ maxelem (\d+) /.exec(header)?.[1] ?? 65536),
      entries: Number(field("Number of entries") ?? NaN),
    });
  }
  return headers;
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
  /**
   * Creates and fills new sets and scratch sets (and destroys leftover scratch sets); touches nothing
   * in use. One `ipset restore`: filling a set created by an earlier ipset process costs the kernel
   * about twice as much (100,000 members: 1.1 s instead of 0.5 s, measured with ipset 7.17).
   */
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
    if (have === undefined) {
      plan.prepare.push(createLine(want.name, want.family, want.members.length));
      addLines(plan.prepare, want.name, want.members);
      plan.discard.push(`destroy ${want.name}`);
      plan.summary.push(`+ set ${want.name}: create with ${want.members.length} members`);
      continue;
    }
    const compatible = have.type === "hash:net" && have.family === want.family && have.maxelem >= memberCount(want);
    // The very members the kernel was found to hold (the record reused as the desired state).
    if (compatible && have.recorded === want) continue;
    const { added, removed } = memberDelta(have.members, want.members);
    if (compatible && added.length === 0 && removed.length === 0) continue;
    plan.summary.push(`~ set ${want.name}: ${added.length} members added, ${removed.length} removed`);
    if (compatible && added.length + removed.length <= DELTA_LIMIT) {
      plan.commit.push(...removed.map((m) => `del ${want.name} ${m}`), ...added.map((m) => `add ${want.name} ${m}`));
      plan.undoCommit.push(...added.map((m) => `del ${want.name} ${m}`), ...removed.map((m) => `add ${want.name} ${m}`));
      continue;
    }
    const scratch = scratchSetName(want.name);
    plan.prepare.push(createLine(scratch, want.family, want.members.length));
    addLines(plan.prepare, scratch, want.members);
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

/**
 * All of a set's add lines as one string (one join instead of 100,000 small strings to build and
 * collect); an element of a restore payload may hold several lines.
 */
function addLines(into: string[], set: string, members: string[]): void {
  if (members.length > 0) into.push(`add ${set} ${members.join(`\nadd ${set} `)}`);
}

function createLine(name: string, family: Family, count: number): string {
  return `create ${name} hash:net family ${family === "ipv4" ? "inet" : "inet6"} maxelem ${maxelemFor(count)}`;
}

/**
 * Order-independent (ipset save prints in hash order). Members from the applied record come in the
 * order they were written, as do the desired ones (group file order), so the common prefix and
 * suffix are set aside first: one member added or removed compares 100,000 strings in order and
 * hashes only what lies between.
 */
export function memberDelta(before: string[], after: string[]): { added: string[]; removed: string[] } {
  let start = 0;
  const shorter = Math.min(before.length, after.length);
  while (start < shorter && before[start] === after[start]) start++;
  let endB = before.length;
  let endA = after.length;
  while (endB > start && endA > start && before[endB - 1] === after[endA - 1]) {
    endB--;
    endA--;
  }
  const b = new Set(before.slice(start, endB));
  const a = new Set(after.slice(start, endA));
  return { added: [...a].filter((m) => !b.has(m)), removed: [...b].filter((m) => !a.has(m)) };
}
