/**
 * ipset: reading `ipset save`, and planning how to bring dockwall's sets to their desired members
 * in steps that can each be undone: nothing that rules use changes until `commit`.
 */
import type { Family } from "../policy/types.js";
import type { IpSetSpec } from "../ruleset/types.js";
import { isDockwallSet, scratchSetName } from "../compile/names.js";
import { memberCount, sameSet } from "../ruleset/members.js";

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

/** Members to load into a set `prepare` creates (a new set or a scratch set). */
export interface SetFill {
  name: string;
  /** The set's create line, as in `prepare`. */
  create: string;
  members: string[];
}

export interface SetPlan {
  /** Destroys scratch sets left by an interrupted run: before `prepare`, which may reuse their names. */
  clear: string[];
  /**
   * Creates new sets and scratch sets, empty: touches nothing in use, and is quick, so the rules that
   * name the sets can be tested while `fill` runs.
   */
  prepare: string[];
  /**
   * Members for what `prepare` creates, loaded side by side with it (see fillPayloads): each load
   * carries the same create lines, a no-op under `-exist` for whichever comes second.
   */
  fill: SetFill[];
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
  const plan: SetPlan = { clear: [], prepare: [], fill: [], commit: [], undoCommit: [], discard: [], cleanup: [], summary: [] };
  const wanted = new Set(desired.map((s) => s.name));
  // Scratch sets left by an interrupted run: no rule uses them, and they would block `create`.
  const leftovers = [...live.keys()].filter((n) => n.endsWith(scratchSetName(""))).sort();
  plan.clear.push(...leftovers.map((n) => `destroy ${n}`));
  for (const want of desired) {
    const have = live.get(want.name);
    if (have === undefined) {
      createAndFill(plan, want.name, want);
      plan.discard.push(`destroy ${want.name}`);
      plan.summary.push(`+ set ${want.name}: create with ${want.members.length} members`);
      continue;
    }
    const compatible = have.type === "hash:net" && have.family === want.family && have.maxelem >= memberCount(want);
    // The members the kernel was found to hold (by count, against the record) are the ones wanted:
    // the record reused as the desired state, or the same members compiled again.
    if (compatible && have.recorded !== undefined && sameSet(have.recorded, want)) continue;
    const { added, removed } = memberDelta(have.members, want.members);
    if (compatible && added.length === 0 && removed.length === 0) continue;
    plan.summary.push(`~ set ${want.name}: ${added.length} members added, ${removed.length} removed`);
    if (compatible && added.length + removed.length <= DELTA_LIMIT) {
      plan.commit.push(...removed.map((m) => `del ${want.name} ${m}`), ...added.map((m) => `add ${want.name} ${m}`));
      plan.undoCommit.push(...added.map((m) => `del ${want.name} ${m}`), ...removed.map((m) => `add ${want.name} ${m}`));
      continue;
    }
    const scratch = scratchSetName(want.name);
    createAndFill(plan, scratch, want);
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

function createAndFill(plan: SetPlan, name: string, want: IpSetSpec): void {
  const create = createLine(name, want.family, want.members.length);
  plan.prepare.push(create);
  if (want.members.length > 0) plan.fill.push({ name, create, members: want.members });
}

/** Below this many members per process, another `ipset restore` costs more than it saves. */
const MEMBERS_PER_LOADER_MIN = 20_000;

/**
 * The `ipset -exist restore` payloads that load `fills`, to run side by side: at most `loaders` of
 * them, members split evenly. Most of a large load is ipset's own parsing of each line in user space
 * (ipset 7.17: a getaddrinfo and a stat of /etc/resolv.conf per member), which spreads over cores;
 * the kernel side is serialised per message. 100,000 members on 2 cores: 0.25 s instead of 0.43 s.
 * Each payload starts with the set's create line, a no-op under `-exist` for an identical set, which
 * tells ipset the set's type: without it ipset asks the kernel for the set's header before every
 * add, and the load takes twice as long.
 */
export function fillPayloads(fills: SetFill[], loaders: number): string[] {
  const total = fills.reduce((n, f) => n + f.members.length, 0);
  if (total === 0) return [];
  const count = Math.max(1, Math.min(Math.floor(loaders), Math.floor(total / MEMBERS_PER_LOADER_MIN)));
  const each = Math.ceil(total / count);
  const payloads: string[][] = [[]];
  let room = each;
  for (const f of fills) {
    for (let at = 0; at < f.members.length; ) {
      if (room === 0) {
        payloads.push([]);
        room = each;
      }
      const take = Math.min(room, f.members.length - at);
      const payload = payloads[payloads.length - 1]!;
      payload.push(f.create);
      addLines(payload, f.name, take === f.members.length ? f.members : f.members.slice(at, at + take));
      at += take;
      room -= take;
    }
  }
  return payloads.map((p) => p.join("\n") + "\n");
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
  // apply plans the sets, then sums the change up for the admin (src/plan/) from the same two lists.
  let known = deltas.get(before);
  if (known === undefined) deltas.set(before, (known = new WeakMap()));
  let delta = known.get(after);
  if (delta === undefined) known.set(after, (delta = computeDelta(before, after)));
  return delta;
}

/** Member lists are not changed once made (members.ts): a delta computed once holds. */
const deltas = new WeakMap<string[], WeakMap<string[], { added: string[]; removed: string[] }>>();

function computeDelta(before: string[], after: string[]): { added: string[]; removed: string[] } {
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
