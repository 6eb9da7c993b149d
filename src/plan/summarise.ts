/**
 * What a change means at policy level: the openings, settings and group members of dockwall's part
 * of the kernel before it, against those of the state it brings in. Both sides are read from their
 * rules (rule-meaning.ts), so the summary says what the rules do, not what a file says they should:
 * `plan` passes the kernel's part as it is now, `apply`, `remove` and `rollback` the part they found
 * and replaced. Pure.
 */
import type { DesiredState } from "../backends/rendered.js";
import type { RenderedFamily } from "../backends/iptables/render.js";
import type { Family } from "../policy/types.js";
import type { IpSetSpec } from "../ruleset/types.js";
import { memberDelta } from "../backends/ipset.js";
import { memberCount, sameSet } from "../ruleset/members.js";
import { ruleMeaning, targetKey, type Meaning, type Setting, type Target } from "./rule-meaning.js";
import { DOCKER_BRIDGE_PATTERNS } from "../compile/interfaces.js";

export type PolicyChange =
  /** dockwall starts (`in`) or stops (`out`) filtering these families. */
  | { kind: "dockwall"; now: "in" | "out"; families: Family[]; refusal?: string }
  /** `target` opened to `sources` (none for a route); `already`: the sources it was open to before. */
  | { kind: "opens"; target: Target; sources: string[]; already: string[] }
  /** `target` closed to `sources`; `still`: the sources it stays open to (none: closed entirely). */
  | { kind: "closes"; target: Target; sources: string[]; still: string[] }
  | { kind: "setting"; setting: Setting; before: string[]; after: string[] }
  /** A group's members (both families); `was`/`now` are its member counts, 0 when the group is new or gone. */
  | { kind: "group"; group: string; added: string[]; removed: string[]; was: number; now: number }
  /** Rules that change without changing any of the above: the kernel differed from the policy there (drift, a hand-made rule). */
  | { kind: "rules"; count: number };

const FAMILIES: Family[] = ["ipv4", "ipv6"];

/** One state's meaning: what each opening is open to, each setting's values, and the rules behind each. */
interface Meanings {
  /** Target key -> the target and its sources, in rule order. */
  openings: Map<string, { target: Target; sources: string[] }>;
  settings: Map<Setting, string[]>;
  /** Meaning key -> the rules that carry it (family, table, chain and spec), for counting what changed unexplained. */
  rules: Map<string, string[]>;
  /** Families dockwall is in force in: the jump into its chains is there. */
  active: Family[];
}

/** Rules already read, by family, chain and spec: the two sides of a change share most of theirs. */
type Seen = Map<string, { meaning: Meaning; key: string }>;

function meanings(state: DesiredState, seen: Seen = new Map()): Meanings {
  const m: Meanings = { openings: new Map(), settings: new Map(), rules: new Map(), active: [] };
  const addRule = (key: string, rule: string) => {
    const list = m.rules.get(key);
    if (list) list.push(rule);
    else m.rules.set(key, [rule]);
  };
  for (const f of FAMILIES) {
    const part = state[f];
    if (part.jumps.length > 0) m.active.push(f);
    for (const j of part.jumps) addRule("jump", JSON.stringify([f, j.table, j.from, j.to, j.spec]));
    for (const c of part.chains) {
      for (const spec of c.rules) {
        const id = `${f} ${c.name} ${spec}`;
        let read = seen.get(id);
        if (read === undefined) {
          const meaning = ruleMeaning(f, c.name, spec);
          seen.set(id, (read = { meaning, key: meaning.kind === "opening" ? targetKey(meaning.target) : "" }));
        }
        const meaning = read.meaning;
        let key: string;
        if (meaning.kind === "opening") {
          const tk = read.key;
          let o = m.openings.get(tk);
          if (o === undefined) m.openings.set(tk, (o = { target: meaning.target, sources: [] }));
          const from = meaning.source ?? "";
          if (meaning.source !== undefined && !o.sources.includes(from)) o.sources.push(from);
          key = `opening ${tk} ${from}`;
        } else if (meaning.kind === "setting") {
          const values = m.settings.get(meaning.setting) ?? [];
          if (!values.includes(meaning.value)) values.push(meaning.value);
          m.settings.set(meaning.setting, values);
          key = `setting ${meaning.setting} ${meaning.value}`;
        } else if (meaning.kind === "base") {
          key = `base ${meaning.what}`;
        } else {
          key = `unknown ${f} ${c.table} ${c.name} ${spec}`;
        }
        addRule(key, JSON.stringify([f, c.table, c.name, spec]));
      }
    }
  }
  return m;
}

/** A group's name, from its set's (dw4-office, dw6-office: office); undefined for another set. */
function groupOf(set: IpSetSpec): string | undefined {
  return /^dw[46]-(.+)$/.exec(set.name)?.[1];
}

/** The member changes of every group, both families together, in group-name order. */
function groupChanges(before: IpSetSpec[], after: IpSetSpec[]): PolicyChange[] {
  const groups = new Map<string, { before: IpSetSpec[]; after: IpSetSpec[] }>();
  const add = (s: IpSetSpec, side: "before" | "after") => {
    const g = groupOf(s);
    if (g === undefined) return;
    const entry = groups.get(g) ?? { before: [], after: [] };
    entry[side].push(s);
    groups.set(g, entry);
  };
  for (const s of before) add(s, "before");
  for (const s of after) add(s, "after");
  const changes: PolicyChange[] = [];
  for (const group of [...groups.keys()].sort()) {
    const sides = groups.get(group)!;
    const added: string[] = [];
    const removed: string[] = [];
    for (const f of FAMILIES) {
      const b = sides.before.find((s) => s.family === f);
      const a = sides.after.find((s) => s.family === f);
      // Same name, family and members (a digest, kept per set): 100,000 members are not compared again.
      if (b !== undefined && a !== undefined && sameSet(b, a)) continue;
      const delta = memberDelta(b?.members ?? [], a?.members ?? []);
      added.push(...delta.added);
      removed.push(...delta.removed);
    }
    const count = (sets: IpSetSpec[]) => sets.reduce((n, s) => n + memberCount(s), 0);
    const [was, now] = [count(sides.before), count(sides.after)];
    // A group that comes or goes with no members (an empty set created) still changes which groups exist.
    if (added.length > 0 || removed.length > 0 || (sides.before.length === 0) !== (sides.after.length === 0)) {
      changes.push({ kind: "group", group, added, removed, was, now });
    }
  }
  return changes;
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** Multiset difference size: how many rules one side has that the other has not. */
function ruleDifference(a: string[], b: string[]): number {
  const counts = new Map<string, number>();
  for (const r of a) counts.set(r, (counts.get(r) ?? 0) + 1);
  let extra = 0;
  for (const r of b) {
    const n = counts.get(r) ?? 0;
    if (n > 0) counts.set(r, n - 1);
    else extra++;
  }
  for (const n of counts.values()) extra += n;
  return extra;
}

/** The same chains with the same rules and the same jumps, in the same order. */
function sameFamily(a: RenderedFamily, b: RenderedFamily): boolean {
  const sameRules = (x: string[], y: string[]) => x.length === y.length && x.every((r, i) => r === y[i]);
  return (
    a.chains.length === b.chains.length &&
    a.jumps.length === b.jumps.length &&
    a.chains.every((c, i) => c.table === b.chains[i]!.table && c.name === b.chains[i]!.name && sameRules(c.rules, b.chains[i]!.rules)) &&
    a.jumps.every((j, i) => j.table === b.jumps[i]!.table && j.from === b.jumps[i]!.from && j.to === b.jumps[i]!.to && j.spec === b.jumps[i]!.spec)
  );
}

const SETTING_ORDER: Setting[] = ["outside", "inside", "default", "log"];

/** The policy-level changes from `before` (dockwall's part as found) to `after`; empty when they mean the same. */
export function summarise(before: DesiredState, after: DesiredState): PolicyChange[] {
  // Only members changed (a group file edited, a re-apply): nothing to read in the rules.
  if (FAMILIES.every((f) => sameFamily(before[f], after[f]))) return groupChanges(before.sets, after.sets);
  const seen: Seen = new Map();
  const b = meanings(before, seen);
  const a = meanings(after, seen);
  const changes: PolicyChange[] = [];
  const groups = groupChanges(before.sets, after.sets);
  // Taken out entirely: every opening "closes" would be false (dockwall only takes away; without it
  // nothing of its is refused). Said once, with the groups that go.
  if (a.active.length === 0 && b.active.length > 0) {
    return [{ kind: "dockwall", now: "out", families: b.active }, ...groups];
  }
  const comingIn = b.active.length === 0 && a.active.length > 0;
  if (comingIn) {
    changes.push({ kind: "dockwall", now: "in", families: a.active, refusal: a.settings.get("default")?.[0] ?? "drop" });
  } else {
    const gained = a.active.filter((f) => !b.active.includes(f));
    const lost = b.active.filter((f) => !a.active.includes(f));
    if (gained.length > 0) changes.push({ kind: "dockwall", now: "in", families: gained });
    if (lost.length > 0) changes.push({ kind: "dockwall", now: "out", families: lost });
  }
  // Chains that no jump leads into filtered nothing: a state coming in is measured against none.
  const was = comingIn ? meanings({ ...before, ipv4: { ...before.ipv4, chains: [] }, ipv6: { ...before.ipv6, chains: [] } }, seen) : b;
  const reported = new Set<string>();
  for (const [key, now] of a.openings) {
    const then = was.openings.get(key);
    const sources = now.sources.filter((s) => !then?.sources.includes(s));
    const gone = then?.sources.filter((s) => !now.sources.includes(s)) ?? [];
    if (then === undefined) {
      changes.push({ kind: "opens", target: now.target, sources: now.sources, already: [] });
    } else {
      const kept = now.sources.filter((s) => then.sources.includes(s));
      if (sources.length > 0) changes.push({ kind: "opens", target: now.target, sources, already: kept });
      if (gone.length > 0) changes.push({ kind: "closes", target: now.target, sources: gone, still: now.sources });
    }
    if (then === undefined || sources.length > 0 || gone.length > 0) reported.add(`opening ${key}`);
  }
  for (const [key, then] of was.openings) {
    if (a.openings.has(key)) continue;
    changes.push({ kind: "closes", target: then.target, sources: then.sources, still: [] });
    reported.add(`opening ${key}`);
  }
  for (const setting of SETTING_ORDER) {
    const [then, now] = [was.settings.get(setting) ?? [], a.settings.get(setting) ?? []];
    // Coming in, what every policy has unless it says otherwise goes without saying (the refusal is in the first line).
    const usual = comingIn && (setting === "default" || (setting === "outside" && sameList(now, ["*"])) || (setting === "inside" && now.every((v) => DOCKER_BRIDGE_PATTERNS.includes(v))));
    if (!usual && !sameList(then, now)) {
      changes.push({ kind: "setting", setting, before: then, after: now });
      reported.add(`setting ${setting}`);
    }
  }
  // Whatever else changed in the rules changed nothing above: count it, so a summary never hides a change.
  if (!comingIn) {
    let count = 0;
    for (const key of new Set([...was.rules.keys(), ...a.rules.keys()])) {
      const explained = [...reported].some((r) => key === r || key.startsWith(`${r} `));
      if (!explained) count += ruleDifference(was.rules.get(key) ?? [], a.rules.get(key) ?? []);
    }
    // Taken out of one family: its rules went with it, as said above.
    if (count > 0 && sameList(a.active, b.active)) changes.push({ kind: "rules", count });
  }
  return [...changes, ...groups];
}
