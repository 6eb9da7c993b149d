/**
 * A state file's content checked against its schema before anything uses it: every field's type,
 * the iptables variant, the set names, families and members, the counts, and every rule and jump
 * against what render.ts writes (rule-check.ts). The state is rebuilt from the checked fields only.
 * Pure: text in, a record or the list of what is wrong out.
 */
import type { DesiredState } from "../backends/rendered.js";
import type { RenderedChain, RenderedFamily, RenderedJump } from "../backends/iptables/render.js";
import { familyProblems, isAddressOrNetwork, isDockwallSetName, printable } from "../backends/iptables/rule-check.js";
import type { IptablesVariant } from "../facts/types.js";
import { BUILT_IN, ENTRY_ID, KEY_ENTRIES, type EntrySource } from "../compile/entries.js";
import { entryOfSpec } from "../backends/iptables/entry-tag.js";
import { POLICY_MAX_ITEMS } from "../policy/limits.js";
import type { CompileOrigin, GroupFileInput } from "../inputs.js";
import { scanV4 } from "../policy/addresses.js";
import { escapeControls } from "../policy/quote.js";
import type { Family } from "../policy/types.js";
import { lazySet } from "../ruleset/members.js";
import type { Table } from "../ruleset/types.js";
import type { AppliedRecord, PendingApply } from "./state-store.js";

/** On disk each set's members are one newline-joined string (one JSON string, not 100,000). */
export interface StoredSet {
  name: string;
  family: Family;
  count: number;
  members: string;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; problems: string[] };

/** Stored files say which layout they use; another one is another dockwall's. */
export const FORMAT = 3;
const FAMILIES: readonly Family[] = ["ipv4", "ipv6"];
const VARIANTS: readonly IptablesVariant[] = ["nft", "legacy"];
/** More problems than this are counted, not listed: one is enough to refuse the file. */
const MAX_PROBLEMS = 10;

/** The text of a record file (current.json, previous.json). */
export function parseRecordFile(text: string): Checked<AppliedRecord> {
  return parseFile(text, (r, p) => record(r, p, "record"));
}

/** The text of the journal (pending.json). */
export function parsePendingFile(text: string): Checked<PendingApply> {
  return parseFile(text, (r, p) => {
    const o = object(r, p, "record");
    if (o === undefined) return undefined;
    const at = timestamp(o.at, p, "record.at");
    const pid = typeof o.pid === "number" && Number.isSafeInteger(o.pid) && o.pid > 0 ? o.pid : p.add("record.pid: not a process id");
    const source = text1(o.source, p, "record.source");
    const before = record(o.before, p, "record.before");
    if (at === undefined || pid === undefined || source === undefined || before === undefined) return undefined;
    return { at, pid, source, before };
  });
}

class Problems {
  readonly list: string[] = [];
  private count = 0;
  add(problem: string): undefined {
    if (++this.count <= MAX_PROBLEMS) this.list.push(problem);
    else if (this.count === MAX_PROBLEMS + 1) this.list.push("and more");
    return undefined;
  }
  get empty(): boolean {
    return this.count === 0;
  }
}

function parseFile<T>(text: string, read: (record: unknown, p: Problems) => T | undefined): Checked<T> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return { ok: false, problems: [`JSON: ${escapeControls((e as Error).message)}`] };
  }
  const p = new Problems();
  const top = object(data, p, "the file");
  if (top === undefined) return { ok: false, problems: p.list };
  if (top.format !== FORMAT) {
    return { ok: false, problems: [`format ${printable(JSON.stringify(top.format) ?? "missing")}, not ${FORMAT} (written by another dockwall version?)`] };
  }
  const value = read(top.record, p);
  return value !== undefined && p.empty ? { ok: true, value } : { ok: false, problems: p.list };
}

function record(data: unknown, p: Problems, where: string): AppliedRecord | undefined {
  const o = object(data, p, where);
  if (o === undefined) return undefined;
  const at = timestamp(o.at, p, `${where}.at`);
  const source = text1(o.source, p, `${where}.source`);
  const variant = VARIANTS.includes(o.variant as IptablesVariant) ? (o.variant as IptablesVariant) : p.add(`${where}.variant: not "nft" or "legacy"`);
  const state = desired(o.state, p, `${where}.state`);
  const origin = o.origin === undefined ? undefined : compileOrigin(o.origin, p, `${where}.origin`);
  if (at === undefined || source === undefined || variant === undefined || state === undefined) return undefined;
  if (o.origin !== undefined && origin === undefined) return undefined;
  return { at, source, variant, state, ...(origin ? { origin } : {}) };
}

function desired(data: unknown, p: Problems, where: string): DesiredState | undefined {
  const o = object(data, p, where);
  if (o === undefined) return undefined;
  const sets = array(o.sets, p, `${where}.sets`)?.map((s, i) => storedSet(s, p, `${where}.sets[${i}]`));
  if (sets === undefined || sets.some((s) => s === undefined)) return undefined;
  const valid = sets as StoredSet[];
  const names = new Set<string>();
  for (const s of valid) {
    if (names.has(s.name)) p.add(`${where}.sets: ${s.name} is there twice`);
    names.add(s.name);
  }
  const families: Partial<Record<Family, RenderedFamily>> = {};
  for (const f of FAMILIES) {
    const fam = renderedFamily(o[f], p, `${where}.${f}`, f);
    if (fam === undefined) continue;
    const setNames = new Set(valid.filter((s) => s.family === f).map((s) => s.name));
    for (const problem of familyProblems(fam, f, setNames)) p.add(`${where}.${f}: ${problem}`);
    families[f] = fam;
  }
  if (families.ipv4 === undefined || families.ipv6 === undefined) return undefined;
  const state: DesiredState = { ipv4: families.ipv4, ipv6: families.ipv6, sets: valid.map((s) => lazySet(s.name, s.family, s.members, s.count)) };
  // Records written before entries existed have none, and still load.
  if (o.entries === undefined) return state;
  const entries = entrySources(o.entries, state, p, `${where}.entries`);
  return entries === undefined ? undefined : { ...state, entries };
}

/**
 * Where each policy entry was written: `explain` and the metrics print these, so each is checked as
 * closely as the rules: an id as compile/entries.ts makes them, once; a file named on one line; a
 * line and column. And every entry tag in the state's rules is one of these, a key's or a built-in
 * one: a rule cannot claim an entry the record does not know.
 */
function entrySources(data: unknown, state: DesiredState, p: Problems, where: string): EntrySource[] | undefined {
  const list = array(data, p, where);
  if (list === undefined) return undefined;
  if (list.length > POLICY_MAX_ITEMS) return p.add(`${where}: ${list.length} entries, more than a policy may have (${POLICY_MAX_ITEMS})`);
  const ids = new Set<string>();
  const out: EntrySource[] = [];
  list.forEach((e, i) => {
    const at = `${where}[${i}]`;
    const eo = object(e, p, at);
    if (eo === undefined) return;
    const id = typeof eo.id === "string" && ENTRY_ID.test(eo.id) ? eo.id : p.add(`${at}.id: not an entry id (lower-case letters, digits and -)`);
    const file = text1(eo.file, p, `${at}.file`);
    const line = position(eo.line, p, `${at}.line`);
    const col = position(eo.col, p, `${at}.col`);
    if (id !== undefined && ids.has(id)) p.add(`${at}.id: ${id} is there twice`);
    if (file === "") p.add(`${at}.file: empty`);
    if (id === undefined || file === undefined || file === "" || line === undefined || col === undefined) return;
    ids.add(id);
    out.push({ id, file, line, col });
  });
  if (out.length !== list.length) return undefined;
  const known = new Set([...ids, ...Object.values(BUILT_IN), ...KEY_ENTRIES]);
  for (const f of FAMILIES) {
    for (const c of state[f].chains) {
      c.rules.forEach((rule, n) => {
        const id = entryOfSpec(rule);
        if (id !== undefined && !known.has(id)) p.add(`${where}: ${f} ${printable(c.table)} ${printable(c.name)} rule ${n + 1} names entry ${id}, which the record does not list`);
      });
    }
  }
  return out;
}

function position(data: unknown, p: Problems, where: string): number | undefined {
  return typeof data === "number" && Number.isSafeInteger(data) && data >= 1 ? data : p.add(`${where}: not a line or column number`);
}

function renderedFamily(data: unknown, p: Problems, where: string, family: Family): RenderedFamily | undefined {
  const o = object(data, p, where);
  if (o === undefined) return undefined;
  if (o.family !== family) return p.add(`${where}.family: not "${family}"`);
  const chains = array(o.chains, p, `${where}.chains`)?.map((c, i): RenderedChain | undefined => {
    const at = `${where}.chains[${i}]`;
    const co = object(c, p, at);
    if (co === undefined) return undefined;
    const table = text1(co.table, p, `${at}.table`) as Table | undefined;
    const name = text1(co.name, p, `${at}.name`);
    const rules = array(co.rules, p, `${at}.rules`);
    if (rules?.some((r) => typeof r !== "string")) return p.add(`${at}.rules: not all strings`);
    if (table === undefined || name === undefined || rules === undefined) return undefined;
    return { table, name, rules: rules as string[] };
  });
  const jumps = array(o.jumps, p, `${where}.jumps`)?.map((j, i): RenderedJump | undefined => {
    const at = `${where}.jumps[${i}]`;
    const jo = object(j, p, at);
    if (jo === undefined) return undefined;
    const [table, from, to, spec] = (["table", "from", "to", "spec"] as const).map((k) => text1(jo[k], p, `${at}.${k}`));
    if (table === undefined || from === undefined || to === undefined || spec === undefined) return undefined;
    return { table: table as Table, from, to, spec };
  });
  if (chains === undefined || jumps === undefined || chains.some((c) => c === undefined) || jumps.some((j) => j === undefined)) return undefined;
  return { family, chains: chains as RenderedChain[], jumps: jumps as RenderedJump[] };
}

function storedSet(data: unknown, p: Problems, where: string): StoredSet | undefined {
  const o = object(data, p, where);
  if (o === undefined) return undefined;
  if (!FAMILIES.includes(o.family as Family)) return p.add(`${where}.family: not "ipv4" or "ipv6"`);
  const family = o.family as Family;
  if (typeof o.name !== "string" || !isDockwallSetName(o.name, family)) return p.add(`${where}.name: not a dockwall ${family} set name`);
  if (typeof o.members !== "string") return p.add(`${where}.members: not a string`);
  if (typeof o.count !== "number" || !Number.isSafeInteger(o.count) || o.count < 0) return p.add(`${where}.count: not a count`);
  const problem = membersProblem(o.members, family, o.count);
  if (problem !== undefined) return p.add(`${where} (${o.name}): ${problem}`);
  return { name: o.name, family, count: o.count, members: o.members };
}

/**
 * Members as ipset prints them, one a line: each an address or network of the set's family, without
 * host bits, as `ipset save` spells it; as many as `count` says. Every apply reads the record, so
 * this is the fast part of reading it: IPv4 by one regular expression per member (host bits checked
 * only on members with a prefix), IPv6 by a character scanner; whatever they refuse goes through the
 * full check (parseCidr), which gives the verdict. 100,000 members: a few milliseconds. (Not one
 * regular expression over the whole text: its repetition recurses once per member, and a group file
 * of 64 MiB holds millions, which overflows the stack.)
 */
export function membersProblem(text: string, family: Family, count: number): string | undefined {
  if (text === "") return count === 0 ? undefined : `count ${count}, but no members`;
  const quick = family === "ipv4" ? quickV4Member : quickV6Member;
  let n = 0;
  for (let start = 0; start <= text.length; ) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    n++;
    const member = text.slice(start, end);
    if (!quick(member) && !isAddressOrNetwork(member, family)) {
      return `member ${n} "${printable(member)}" is not an ${family} address or network as ipset prints it`;
    }
    start = end + 1;
  }
  return n === count ? undefined : `count ${count}, but ${n} members`;
}

const OCTET = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
/** A member: a dotted quad without leading zeros, a prefix 0-31 or none (a host has no /32). */
const V4_MEMBER = `${OCTET}(?:\\.${OCTET}){3}(?:\\/(?:3[01]|[12]?\\d))?`;
const V4_MEMBER_LINE = new RegExp(`^${V4_MEMBER}$`);

/** The IPv4 fast path: true only for a member the full check accepts too (no host bits after a prefix). */
function quickV4Member(m: string): boolean {
  return V4_MEMBER_LINE.test(m) && (!m.includes("/") || scanV4(m) >= 0);
}

const COLON = 58;
const ZERO = 48;
const groups = new Uint16Array(8);
const parsed = new Uint16Array(8);

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * The IPv6 fast path: true only for text the full check accepts too (RFC 5952 spelling: lower case,
 * no leading zeros, "::" for the longest run of two or more zero groups, the first of equals; no
 * host bits, no /128, not IPv4-mapped); false sends the member to the full check. The unit tests
 * hold the two to agreeing.
 */
export function quickV6Member(m: string): boolean {
  const slash = m.indexOf("/");
  const end = slash < 0 ? m.length : slash;
  let prefix = 128;
  if (slash >= 0) {
    const p = m.slice(slash + 1);
    if (!/^(0|[1-9]\d?|1[01]\d|12[0-7])$/.test(p)) return false;
    prefix = Number(p);
  }
  let count = 0;
  let gap = -1;
  let i = 0;
  if (m.charCodeAt(0) === COLON) {
    if (m.charCodeAt(1) !== COLON) return false;
    gap = 0;
    i = 2;
  }
  while (i < end) {
    const start = i;
    let v = 0;
    while (i < end && i - start < 5) {
      const d = hexDigit(m.charCodeAt(i));
      if (d < 0) break;
      v = v * 16 + d;
      i++;
    }
    const len = i - start;
    if (len === 0 || len > 4 || (len > 1 && m.charCodeAt(start) === ZERO) || count === 8) return false;
    parsed[count++] = v;
    if (i === end) break;
    if (m.charCodeAt(i) !== COLON) return false;
    i++;
    if (m.charCodeAt(i) === COLON) {
      if (gap >= 0) return false;
      gap = count;
      i++;
    } else if (i === end) {
      return false;
    }
  }
  if (gap < 0 ? count !== 8 : count > 6) return false;
  const zeros = 8 - count;
  groups.fill(0);
  for (let k = 0; k < count; k++) groups[gap >= 0 && k >= gap ? k + zeros : k] = parsed[k]!;
  let bestStart = -1;
  let bestLength = 1;
  for (let k = 0; k < 8; ) {
    let j = k;
    while (j < 8 && groups[j] === 0) j++;
    if (j - k > bestLength) {
      bestStart = k;
      bestLength = j - k;
    }
    k = j === k ? k + 1 : j;
  }
  if (gap >= 0 ? bestStart !== gap || bestLength !== zeros : bestStart !== -1) return false;
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) return false;
  for (let g = prefix >> 4; g < 8; g++) {
    if ((groups[g]! & (0xffff >> Math.max(0, prefix - g * 16))) !== 0) return false;
  }
  return true;
}

function compileOrigin(data: unknown, p: Problems, where: string): CompileOrigin | undefined {
  const o = object(data, p, where);
  const inputs = o && object(o.inputs, p, `${where}.inputs`);
  if (o === undefined || inputs === undefined) return undefined;
  const warnings = strings(o.warnings, p, `${where}.warnings`);
  const code = text1(inputs.code, p, `${where}.inputs.code`);
  const facts = text1(inputs.facts, p, `${where}.inputs.facts`);
  const policy = fileInput(inputs.policy, p, `${where}.inputs.policy`);
  const groupFiles = array(inputs.groupFiles, p, `${where}.inputs.groupFiles`)?.map((g, i): GroupFileInput | undefined => {
    const at = `${where}.inputs.groupFiles[${i}]`;
    const file = fileInput(g, p, at);
    const go = object(g, p, at);
    const group = go && text1(go.group, p, `${at}.group`);
    const w = go && strings(go.warnings, p, `${at}.warnings`);
    return file && group !== undefined && w !== undefined ? { ...file, group, warnings: w } : undefined;
  });
  if (warnings === undefined || code === undefined || facts === undefined || policy === undefined || groupFiles === undefined) return undefined;
  if (groupFiles.some((g) => g === undefined)) return undefined;
  return { inputs: { code, policy, groupFiles: groupFiles as GroupFileInput[], facts }, warnings };
}

function fileInput(data: unknown, p: Problems, where: string): { path: string; digest: string } | undefined {
  const o = object(data, p, where);
  if (o === undefined) return undefined;
  const file = text1(o.path, p, `${where}.path`);
  const digest = typeof o.digest === "string" && /^[0-9a-f]{64}$/.test(o.digest) ? o.digest : p.add(`${where}.digest: not a sha256 digest`);
  return file !== undefined && digest !== undefined ? { path: file, digest } : undefined;
}

function object(data: unknown, p: Problems, where: string): Record<string, unknown> | undefined {
  if (typeof data === "object" && data !== null && !Array.isArray(data)) return data as Record<string, unknown>;
  return p.add(`${where}: not an object`);
}

function array(data: unknown, p: Problems, where: string): unknown[] | undefined {
  return Array.isArray(data) ? data : p.add(`${where}: not a list`);
}

/** A string on one line: it ends up in messages and, for rules, in restore payloads. */
function text1(data: unknown, p: Problems, where: string): string | undefined {
  if (typeof data !== "string") return p.add(`${where}: not a string`);
  if (/[\x00-\x1f\x7f]/.test(data)) return p.add(`${where}: contains a control character`);
  return data;
}

function strings(data: unknown, p: Problems, where: string): string[] | undefined {
  const list = array(data, p, where);
  if (list === undefined) return undefined;
  // Warnings are shown again as they were written: any text, but text.
  return list.every((s) => typeof s === "string") ? (list as string[]) : p.add(`${where}: not all strings`);
}

function timestamp(data: unknown, p: Problems, where: string): string | undefined {
  const t = text1(data, p, where);
  if (t === undefined) return undefined;
  return Number.isNaN(Date.parse(t)) ? p.add(`${where}: not a time`) : t;
}
