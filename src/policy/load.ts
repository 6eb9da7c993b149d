/**
 * Policy loading: YAML text -> validated Policy, or every error at once as FILE:LINE:COL.
 *
 * The YAML tree is walked by hand rather than converted to plain objects and checked with a schema
 * library: every message must point at the key or value the user wrote (a plain object has lost
 * those positions), and cross-references (group names) must be checked even when other parts of the
 * file are wrong, so that one run reports everything.
 */
import path from "node:path";
import { LineCounter, isAlias, isMap, isNode, isPair, isScalar, isSeq, parseDocument, type Alias, type Document, type Node, type Pair, type Scalar } from "yaml";
import { distinct, everyAddress, everyAddressInGroup, hostBitsWarning, memberSpelling, parseCidr } from "./addresses.js";
import { mergePortRanges, parsePort } from "./ports.js";
import { firstErrors, sortPolicyErrors, type PolicyError } from "./errors.js";
import { parseGroupFile, type GroupFile } from "./group-file.js";
import { GROUP_FILE_LIMIT, GROUP_FILES_MAX_BYTES, MAX_ERRORS_SHOWN, POLICY_LIMIT, POLICY_MAX_ITEMS, POLICY_MAX_RULES } from "./limits.js";
import { escapeControls, quote } from "./quote.js";
import { readFailure, readTextWithin, readWithin, size, type ReadLimit, type ReadText } from "./read-file.js";
import { interfaceNameProblem } from "./interface-name.js";
import { keptRate, type RateUnit } from "./log-rate.js";
import type { Cidr, ContainerOpening, Group, Location, Opening, Policy, PortRange, Proto, Route, RuleKey, Source } from "./types.js";

export type LoadResult =
  | { ok: true; policy: Policy; warnings: PolicyError[] }
  | { ok: false; errors: PolicyError[]; warnings: PolicyError[] };

export type { ReadLimit, ReadText } from "./read-file.js";

const GROUP_NAME = /^[A-Za-z0-9_-]{1,24}$/;
const CONTAINER_NAME = /^\/?[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// The name goes into a rule comment ("container NAME PORT/PROTO"), which iptables caps at 255 bytes.
const CONTAINER_NAME_MAX = 128;
const LOG_RATE = /^([1-9]\d{0,3})\/(second|minute|hour|day)$/;

/** The lists of sources, with what to say when one is empty and what to write instead of a /0. */
const SOURCE_LISTS = {
  from: { empty: "from is empty: nobody could connect; list sources, or leave it out for anyone", everyone: "leave from out, or write any (every source)" },
  trusted: { empty: "trusted is empty: list trusted sources, or leave trusted out", everyone: "to trust every source write any (it opens every port to everyone)" },
  "swarm peers": { empty: "swarm peers is empty: list the other swarm nodes, or leave swarm out", everyone: "write any (every source)" },
};
type SourceList = keyof typeof SOURCE_LISTS;

const RULE_KEYS: readonly RuleKey[] = ["interfaces", "trusted", "swarm", "icmp", "default", "log"];
const TOP_KEYS = ["interfaces", "groups", "trusted", "host", "containers", "routes", "swarm", "icmp", "default", "log"];
const HOST_KEYS = ["port", "proto", "from"];
const CONTAINER_KEYS = ["port", "proto", "from", "container"];

export async function loadPolicy(file: string, readText: ReadText = readTextWithin): Promise<LoadResult> {
  let text: string;
  try {
    text = await readWithin(readText, file, POLICY_LIMIT);
  } catch (err) {
    return { ok: false, errors: [{ file, line: 1, col: 1, message: `cannot read the policy file: ${readFailure(err)}` }], warnings: [] };
  }
  return loadPolicyText(text, file, readText);
}

export async function loadPolicyText(text: string, file: string, readText: ReadText): Promise<LoadResult> {
  const lineCounter = new LineCounter();
  // Duplicate keys are found below: yaml's uniqueKeys compares each key with every key before it
  // (1 MB of group names: 86 s).
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false, strict: true });
  const r = new Reader(file, doc, lineCounter);
  for (const e of doc.errors) r.errorAtOffset(e.pos[0], yamlMessage(e.code, e.message));
  for (const w of doc.warnings) r.warnAtOffset(w.pos[0], yamlMessage(w.code, w.message));
  const duplicates = duplicateKeys(doc.contents);
  for (const key of duplicates) r.error(key, yamlMessage("DUPLICATE_KEY", ""));
  if (doc.errors.length > 0 || duplicates.length > 0) return r.result(undefined);

  const root = r.resolve(doc.contents);
  if (root === null || (isScalar(root) && root.value === null)) {
    r.errorAtOffset(0, "the policy is empty: write at least one of host, containers or trusted");
    return r.result(undefined);
  }
  if (!isMap(root)) {
    r.error(root, "the policy must be a mapping of keys (host, containers, groups, ...)");
    return r.result(undefined);
  }
  const top = r.entries(root, TOP_KEYS);

  // Group names are known before any file is read, so references are checked while the files load.
  const declared = top.groups ? declareGroups(r, top.groups) : [];
  const knownGroups = new Set(declared.map((g) => g.name));
  const groupsPending = readGroups(r, declared, readText);

  const policy: Policy = {
    file,
    groups: [],
    trusted: top.trusted ? r.sources(top.trusted, knownGroups, "trusted") : [],
    host: top.host ? r.list(top.host, (n) => r.opening(n, HOST_KEYS, knownGroups)?.opening) : [],
    containers: top.containers ? r.list(top.containers, (n) => r.containerOpening(n, knownGroups)) : [],
    routes: top.routes ? r.list(top.routes, (n) => r.route(n)) : [],
    icmp: top.icmp ? r.choice(top.icmp, ["allow", "drop"], "icmp", "allow") : "allow",
    default: top.default ? r.choice(top.default, ["drop", "reject"], "default", "drop") : "drop",
    log: top.log ? r.log(top.log) : { drops: false, rate: "10/minute" },
  };
  if (top.interfaces) Object.assign(policy, r.interfaces(top.interfaces));
  policy.keyLocations = r.keyLocations(root, RULE_KEYS);
  if (top.swarm && r.mapping(top.swarm, "swarm")) {
    const swarm = r.entries(top.swarm, ["peers"]);
    if (swarm.peers) policy.swarm = { peers: r.sources(swarm.peers, knownGroups, "swarm peers") };
    else r.error(top.swarm, "swarm needs peers: the addresses or groups of the other swarm nodes");
  }
  policy.groups = await groupsPending;
  // `host: []` says "no host port" and is taken as written; but all of them empty opens nothing at all.
  if ([top.host, top.containers, top.trusted].every((n) => n === undefined || r.emptyList(n))) {
    r.error(root, "the policy opens nothing: write at least one of host, containers or trusted");
  }
  warnLockout(r, policy, root);
  limitRules(r, policy);
  return r.result(policy);
}

interface DeclaredGroup {
  name: string;
  value: Node;
}

function declareGroups(r: Reader, node: Node): DeclaredGroup[] {
  const map = r.mapping(node, "groups");
  if (!map || !r.take(node, map.items.length)) return [];
  const out: DeclaredGroup[] = [];
  for (const pair of map.items as Pair<Node, Node>[]) {
    const name = r.key(pair);
    if (name === undefined) continue;
    if (!GROUP_NAME.test(name) || name === "any") {
      r.error(pair.key, name === "any"
        ? `"any" is reserved (it means every source) and cannot name a group`
        : `group name ${quote(name)} must be 1-24 letters, digits, _ or -`);
      continue;
    }
    out.push({ name, value: (pair.value ?? pair.key) as Node });
  }
  return out;
}

/**
 * Members: literal lists inline, or `{ file: PATH }` read relative to the policy file. The files are
 * read one after another, each within what the budget for all of them has left (see limits.ts), and
 * a file named by several groups is read and parsed once.
 */
async function readGroups(r: Reader, declared: DeclaredGroup[], readText: ReadText): Promise<Group[]> {
  const files = new Map<string, Promise<GroupFile | string>>();
  let bytesLeft = GROUP_FILES_MAX_BYTES;
  const readOnce = (resolved: string): Promise<GroupFile | string> => {
    const known = files.get(resolved);
    if (known) return known;
    const used = GROUP_FILES_MAX_BYTES - bytesLeft;
    const limit: ReadLimit = {
      ...GROUP_FILE_LIMIT,
      maxBytes: bytesLeft,
      sizeRule: `group files may hold ${size(GROUP_FILES_MAX_BYTES)}, all of them together` + (used > 0 ? `, and those before this one hold ${size(used)}` : ""),
    };
    const parsed = readWithin(readText, resolved, limit).then(
      (text) => {
        // UTF-16 units, as readWithin counts: the bytes themselves for the ASCII of address lists.
        bytesLeft -= text.length;
        return parseGroupFile(text, resolved);
      },
      (err: unknown) => readFailure(err),
    );
    files.set(resolved, parsed);
    return parsed;
  };
  const out: Group[] = [];
  for (const { name, value } of declared) {
    const node = r.resolve(value);
    if (r.broken(value)) continue;
    if (!node || !isMap(node)) {
      const cidrs = r.cidrs(value, `group "${name}"`, "group");
      if (cidrs.length === 0 && r.emptyList(value)) r.warn(value, `group "${name}" has no members: it matches no source`);
      out.push({ name, ...splitFamilies(cidrs) });
      continue;
    }
    const fileNode = r.entries(node, ["file"]).file;
    if (fileNode === undefined) {
      r.error(node, `group "${name}" needs a list of addresses or { file: PATH }`);
      continue;
    }
    const fileName = r.string(fileNode, "file");
    if (fileName === undefined) continue;
    if (fileName === "" || escapeControls(fileName) !== fileName) {
      r.error(fileNode, fileName === "" ? "file needs a path" : `the file name ${quote(fileName)} holds a control character`);
      continue;
    }
    // A policy cut short by the item limit reads no more files: it is refused anyway.
    if (r.stopped) break;
    const resolved = path.isAbsolute(fileName) ? fileName : path.join(path.dirname(r.file), fileName);
    const first = !files.has(resolved);
    const parsed = await readOnce(resolved);
    if (typeof parsed === "string") {
      r.error(fileNode, `cannot read group file ${escapeControls(resolved)}: ${parsed}`);
      continue;
    }
    if (first) {
      r.errors.push(...parsed.errors);
      r.warnings.push(...parsed.warnings);
    }
    out.push({ name, ipv4: parsed.ipv4, ipv6: parsed.ipv6, file: resolved });
  }
  return out;
}

export function splitFamilies(cidrs: Cidr[]): { ipv4: string[]; ipv6: string[] } {
  const ipv4: string[] = [];
  const ipv6: string[] = [];
  for (const c of cidrs) (c.family === "ipv4" ? ipv4 : ipv6).push(memberSpelling(c));
  return { ipv4: distinct(ipv4), ipv6: distinct(ipv6) };
}

/** Everyone loses SSH the moment a policy without it is applied from a remote shell; say so before that. */
function warnLockout(r: Reader, policy: Policy, root: Node): void {
  if (policy.trusted.length > 0) return;
  const opens22 = policy.host.some((o) => o.protos.includes("tcp") && o.ports.some((p) => p.from <= 22 && 22 <= p.to));
  if (!opens22) r.warn(root, "no host entry opens port 22/tcp: applying this from an SSH session will cut it off for new connections");
}

/**
 * Rules the entries ask for (see POLICY_MAX_RULES): one per source, protocol and port range. The
 * error stands at the entry that takes the count over, with that entry's own product.
 */
function limitRules(r: Reader, policy: Policy): void {
  // A walk cut short by the item limit has partial lists: its one error says enough.
  if (r.stopped) return;
  let rules = policy.trusted.length + (policy.swarm?.peers.length ?? 0);
  for (const entry of [...policy.host, ...policy.containers]) {
    const own = entry.from.length * entry.protos.length * entry.ports.length;
    rules += own;
    if (rules <= POLICY_MAX_RULES) continue;
    r.errors.push({
      ...entry.loc,
      message:
        `this entry opens ${entry.from.length} sources × ${entry.ports.length} ports × ${entry.protos.length} protocols = ${own.toLocaleString("en-US")} rules, ` +
        `which takes the policy over the ${POLICY_MAX_RULES.toLocaleString("en-US")} it may compile into: put the sources in a group (one rule for all of them) or the ports in ranges`,
    });
    return;
  }
}

/** The YAML library's message on one line, without its own position (ours is in front). */
function yamlMessage(code: string, message: string): string {
  if (code === "DUPLICATE_KEY") return "duplicate key (each key may appear once in a mapping)";
  // Nesting deep enough to exhaust the parser's stack: a policy needs five levels.
  if (/Maximum call stack/.test(message)) return "YAML: nested too deeply (a policy needs only a few levels)";
  const first = message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
  return `YAML: ${escapeControls(first.length > 200 ? `${first.slice(0, 200)}…` : first)}`;
}

/** The text of a scalar as written (`0x50`, not 80; `1e3`, not "1000"); undefined for null and non-text values. */
function scalarText(n: Scalar): string | undefined {
  const v = n.value;
  if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean" && typeof v !== "bigint") return undefined;
  return typeof n.source === "string" ? n.source : String(v);
}

/** Keys written twice in one mapping (the second and later), by their text as written; one pass over the document. */
function duplicateKeys(root: unknown): Node[] {
  const out: Node[] = [];
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const n = stack.pop();
    if (isMap(n)) {
      const seen = new Set<string>();
      for (const pair of n.items) {
        const key = pair.key;
        const text = !isScalar(key) ? undefined : key.value === null ? "\0null" : scalarText(key);
        if (text !== undefined && seen.has(text)) out.push(key as Node);
        if (text !== undefined) seen.add(text);
        stack.push(pair.key, pair.value);
      }
    } else if (isSeq(n)) {
      for (const item of n.items) stack.push(item);
    }
  }
  return out;
}

/** Every alias with the node it stands for: the last node anchored with its name before it, as YAML defines. */
function aliasTargets(root: unknown): Map<Alias, Node | undefined> {
  const targets = new Map<Alias, Node | undefined>();
  const anchors = new Map<string, Node>();
  // Iterative, in document order: a deeply nested document must not exhaust the stack here.
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const n = stack.pop();
    if (isAlias(n)) {
      targets.set(n, anchors.get(n.source));
    } else if (isPair(n)) {
      stack.push(n.value, n.key);
    } else if (isNode(n)) {
      if (n.anchor) anchors.set(n.anchor, n);
      if (isMap(n) || isSeq(n)) for (let i = n.items.length - 1; i >= 0; i--) stack.push(n.items[i]);
    }
  }
  return targets;
}

/** The typed walk over the YAML tree; every check records an error at the node and carries on. */
class Reader {
  readonly errors: PolicyError[] = [];
  readonly warnings: PolicyError[] = [];
  /** Set once POLICY_MAX_ITEMS is passed: nothing more is walked or reported. */
  stopped = false;
  private itemsLeft = POLICY_MAX_ITEMS;
  private targets?: Map<Alias, Node | undefined>;
  private readonly reportedAliases = new Set<Alias>();

  constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  result(policy: Policy | undefined): LoadResult {
    const warnings = firstErrors(sortPolicyErrors(this.warnings, this.file), MAX_ERRORS_SHOWN, "warnings");
    if (policy === undefined || this.errors.length > 0) {
      return { ok: false, errors: firstErrors(sortPolicyErrors(this.errors, this.file), MAX_ERRORS_SHOWN), warnings };
    }
    return { ok: true, policy, warnings };
  }

  private position(offset: number): Location {
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, col };
  }
  errorAtOffset(offset: number, message: string): void {
    this.errors.push({ ...this.position(offset), message });
  }
  warnAtOffset(offset: number, message: string): void {
    this.warnings.push({ ...this.position(offset), message });
  }
  at(node: unknown): Location {
    const range = (node as Node | null)?.range;
    return this.position(range ? range[0] : 0);
  }
  error(node: unknown, message: string): void {
    if (!this.stopped) this.errors.push({ ...this.at(node), message });
  }
  warn(node: unknown, message: string): void {
    if (!this.stopped) this.warnings.push({ ...this.at(node), message });
  }

  /**
   * Counts `count` more keys, items or addresses against POLICY_MAX_ITEMS; false once it is passed
   * (the caller then walks no further). Aliases are counted each time they are used, so a small file
   * whose aliases repeat big lists stops here.
   */
  take(node: unknown, count: number): boolean {
    if (this.stopped) return false;
    this.itemsLeft -= count;
    if (this.itemsLeft >= 0) return true;
    this.error(
      node,
      `the policy holds more than ${POLICY_MAX_ITEMS.toLocaleString("en-US")} keys, list items and addresses (an alias counts its list again each time): ` +
        "checking stopped here; long address lists belong in a group file",
    );
    this.stopped = true;
    return false;
  }

  /**
   * The node an alias stands for (reported once where it is unknown: null then, see broken), or the node.
   * Not yaml's Alias.resolve: that walks the whole document for every alias, quadratic in aliases.
   */
  resolve(node: unknown): Node | null {
    if (node === null || node === undefined) return null;
    if (!isAlias(node)) return node as Node;
    this.targets ??= aliasTargets(this.doc.contents);
    const target = this.targets.get(node);
    if (target === undefined && !this.reportedAliases.has(node)) {
      this.reportedAliases.add(node);
      this.error(node, `unknown alias ${quote(`*${node.source}`)}: an alias must come after its anchor (&${escapeControls(node.source)} before it)`);
    }
    return target ?? null;
  }

  /** An alias without an anchor: already reported, so callers add nothing of their own. */
  broken(node: unknown): boolean {
    return isAlias(node) && this.resolve(node) === null;
  }

  /** A list written with no items (`[]`), alias or not. */
  emptyList(node: Node): boolean {
    const n = this.resolve(node);
    return n !== null && isSeq(n) && n.items.length === 0;
  }

  key(pair: Pair<Node, Node>): string | undefined {
    const k = this.resolve(pair.key);
    // `80:` or `true:` as a key is its text, as for values.
    const text = k && isScalar(k) ? scalarText(k) : undefined;
    if (text !== undefined && text !== "") return text;
    if (!this.broken(pair.key)) this.error(pair.key, "keys must be plain names");
    return undefined;
  }

  mapping(node: Node, what: string) {
    const n = this.resolve(node);
    if (n && isMap(n)) return n;
    if (!this.broken(node)) this.error(node, `${what} must be a mapping (key: value)`);
    return undefined;
  }

  /** The known keys of a mapping; unknown keys are errors with a did-you-mean. */
  entries(node: Node, known: string[]): Record<string, Node> {
    const out: Record<string, Node> = {};
    const map = this.resolve(node);
    if (!map || !isMap(map) || !this.take(node, map.items.length)) return out;
    for (const pair of map.items as Pair<Node, Node>[]) {
      const name = this.key(pair);
      if (name === undefined) continue;
      if (!known.includes(name)) {
        this.error(pair.key, `unknown key ${quote(name)}${didYouMean(name, known)}; expected one of: ${known.join(", ")}`);
        continue;
      }
      // An explicit null (`from:` with nothing after it) is reported where it stands, not as "missing".
      if (pair.value === null || (isScalar(pair.value) && pair.value.value === null)) this.error(pair.key, `${name} has no value`);
      else out[name] = pair.value;
    }
    return out;
  }

  /** Where each of `keys` is written in `map` (the key itself, so FILE:LINE is the key's line). */
  keyLocations<K extends string>(map: Node, keys: readonly K[]): Partial<Record<K, Location>> {
    const out: Partial<Record<K, Location>> = {};
    const m = this.resolve(map);
    if (!m || !isMap(m)) return out;
    for (const pair of m.items as Pair<Node, Node>[]) {
      const name = isScalar(pair.key) ? String(pair.key.value) : undefined;
      if (name !== undefined && (keys as readonly string[]).includes(name) && out[name as K] === undefined) out[name as K] = this.at(pair.key);
    }
    return out;
  }

  /** A list, or a single item written without brackets. */
  items(node: Node): Node[] {
    const n = this.resolve(node);
    if (n && isSeq(n)) return this.take(node, n.items.length) ? (n.items as Node[]).map((i) => this.resolve(i) ?? i) : [];
    return n && this.take(node, 1) ? [n] : [];
  }

  list<T>(node: Node, each: (n: Node) => T | undefined): T[] {
    const n = this.resolve(node);
    if (!n || !isSeq(n)) {
      if (!this.broken(node)) this.error(node, "expected a list (- item, or [a, b])");
      return [];
    }
    if (!this.take(node, n.items.length)) return [];
    return (n.items as Node[]).map((i) => each(this.resolve(i) ?? i)).filter((x): x is T => x !== undefined);
  }

  /** A scalar's text as written (see scalarText). */
  string(node: Node, what: string): string | undefined {
    const n = this.resolve(node);
    const text = n && isScalar(n) ? scalarText(n) : undefined;
    if (text !== undefined) return text;
    if (!this.broken(node)) this.error(node, n && isScalar(n) && n.value === null ? `${what} has no value` : `${what} must be a single value`);
    return undefined;
  }

  choice<T extends string>(node: Node, options: readonly T[], what: string, fallback: T): T {
    const v = this.string(node, what);
    if (v !== undefined && (options as readonly string[]).includes(v)) return v as T;
    if (v !== undefined) this.error(node, `${what} must be ${options.join(" or ")}, not ${quote(v)}`);
    return fallback;
  }

  cidrs(node: Node, what: string, place: "group"): Cidr[] {
    const out: Cidr[] = [];
    const n = this.resolve(node);
    if (!n || !isSeq(n)) {
      if (!this.broken(node)) this.error(node, `${what} must be a list of addresses or CIDRs, or { file: PATH }`);
      return out;
    }
    if (!this.take(node, n.items.length)) return out;
    for (const item of n.items as Node[]) {
      const text = this.string(item, "an address");
      if (text === undefined) continue;
      const c = this.cidr(item, text, place);
      if (c) out.push(c);
    }
    return out;
  }

  /** `place` says what a /0 should have been written as there: none is taken (see everyAddress). */
  cidr(node: Node, text: string, place: SourceList | "group"): Cidr | undefined {
    const parsed = parseCidr(text);
    if (!parsed.ok) {
      this.error(node, parsed.message);
      return undefined;
    }
    const everything = place === "group" ? everyAddressInGroup(text, parsed.cidr) : everyAddress(text, parsed.cidr);
    if (everything) {
      this.error(node, place === "group" ? everything : `${everything}: ${SOURCE_LISTS[place].everyone}`);
      return undefined;
    }
    const warning = hostBitsWarning(parsed);
    if (warning) this.warn(node, warning);
    return parsed.cidr;
  }

  /** `from`, `trusted`, `peers`: "any", group names, literal addresses and CIDRs. */
  sources(node: Node, groups: Set<string>, what: SourceList): Source[] {
    const out: Source[] = [];
    const list = this.items(node);
    if (list.length === 0 && !this.broken(node) && !this.stopped) this.error(node, SOURCE_LISTS[what].empty);
    for (const item of list) {
      const text = this.string(item, "a source");
      if (text === undefined) continue;
      if (text === "any") {
        out.push({ kind: "any" });
        if (what === "trusted") this.warn(item, "trusted: any trusts every source: every port is open to everyone");
      } else if (GROUP_NAME.test(text)) {
        if (groups.has(text)) out.push({ kind: "group", name: text });
        // A suggestion costs a pass over every group: only for the errors that are shown.
        else this.error(item, `unknown group ${quote(text)}${this.errors.length < MAX_ERRORS_SHOWN ? didYouMean(text, [...groups]) : ""}`);
      } else {
        const c = this.cidr(item, text, what);
        if (c) out.push({ kind: "cidr", cidr: c });
      }
    }
    return out;
  }

  /** Judged on the text as written (see ports.ts): YAML reads 0x50, 1e2 and 80.0 as 80, 100 and 80. */
  ports(node: Node): PortRange[] {
    const out: PortRange[] = [];
    const list = this.items(node);
    if (list.length === 0 && !this.broken(node) && !this.stopped) this.error(node, "port is empty");
    for (const item of list) {
      const n = this.resolve(item);
      const text = n && isScalar(n) ? scalarText(n) : undefined;
      const parsed = text === undefined ? undefined : parsePort(text);
      if (parsed?.ok) out.push(parsed.range);
      else if (!this.broken(item)) this.error(item, parsed?.message ?? "a port must be a number 1-65535 or a range a-b");
    }
    return mergePortRanges(out);
  }

  protos(node: Node): Proto[] {
    const out = new Set<Proto>();
    const list = this.items(node);
    if (list.length === 0 && !this.broken(node) && !this.stopped) {
      this.error(node, "proto is empty, so the entry would open nothing: write tcp, udp or [tcp, udp], or leave proto out for tcp");
    }
    for (const item of list) {
      const text = this.string(item, "proto");
      if (text === undefined) continue;
      if (text === "tcp" || text === "udp") out.add(text);
      else this.error(item, `unknown protocol ${quote(text)}: write tcp or udp (ICMP is the icmp key)`);
    }
    return [...out].sort();
  }

  opening(node: Node, keys: string[], groups: Set<string>): { opening: Opening; keys: Record<string, Node> } | undefined {
    if (!this.mapping(node, "an entry")) return undefined;
    const e = this.entries(node, keys);
    if (!e.port) this.error(node, "this entry needs a port (a number, a range a-b, or a list)");
    const opening: Opening = {
      ports: e.port ? this.ports(e.port) : [],
      protos: e.proto ? this.protos(e.proto) : ["tcp"],
      from: e.from ? this.sources(e.from, groups, "from") : [{ kind: "any" }],
      loc: this.at(node),
    };
    return { opening, keys: e };
  }

  containerOpening(node: Node, groups: Set<string>): ContainerOpening | undefined {
    const read = this.opening(node, CONTAINER_KEYS, groups);
    if (!read) return undefined;
    const { opening, keys } = read;
    if (!keys.container) return opening;
    const name = this.string(keys.container, "container");
    if (name === undefined) return opening;
    if (!CONTAINER_NAME.test(name) || name.length > CONTAINER_NAME_MAX) {
      this.error(keys.container, `${quote(name)} is not a container name (letters, digits, _ . -; at most ${CONTAINER_NAME_MAX} characters)`);
      return opening;
    }
    return { ...opening, container: name.replace(/^\//, "") };
  }

  route(node: Node): Route | undefined {
    if (!this.mapping(node, "a route")) return undefined;
    const e = this.entries(node, ["in", "out"]);
    const iface = (key: "in" | "out") => {
      if (!e[key]) {
        this.error(node, `a route needs ${key}: an interface name`);
        return undefined;
      }
      return this.interfaceName(e[key]);
    };
    const inIf = iface("in");
    const outIf = iface("out");
    return inIf && outIf ? { in: inIf, out: outIf, loc: this.at(node) } : undefined;
  }

  interfaceName(node: Node): string | undefined {
    const name = this.string(node, "an interface");
    if (name === undefined) return undefined;
    const problem = interfaceNameProblem(name);
    if (problem === undefined) return name;
    this.error(node, `${quote(name)} is not an interface name: ${problem}`);
    return undefined;
  }

  /** The outside interfaces, each name once, and where each was first written (compile names that line). */
  interfaces(node: Node): Pick<Policy, "interfaces" | "interfaceLocations"> {
    const list = this.items(node);
    if (list.length === 0) this.error(node, "interfaces is empty: leave it out to mean every outside interface");
    const locations = new Map<string, Location>();
    for (const item of list) {
      const name = this.interfaceName(item);
      if (name !== undefined && !locations.has(name)) locations.set(name, this.at(item));
    }
    return { interfaces: [...locations.keys()], interfaceLocations: locations };
  }

  log(node: Node): Policy["log"] {
    const log = { drops: false, rate: "10/minute" };
    if (!this.mapping(node, "log")) return log;
    const e = this.entries(node, ["drops", "rate"]);
    if (e.drops) {
      const n = this.resolve(e.drops);
      if (n && isScalar(n) && typeof n.value === "boolean") log.drops = n.value;
      else this.error(e.drops, "drops must be true or false");
    }
    if (e.rate) {
      const rate = this.string(e.rate, "rate");
      const m = rate === undefined ? null : LOG_RATE.exec(rate);
      if (rate === undefined) {
        // Already reported.
      } else if (m === null) {
        this.error(e.rate, `rate ${quote(rate)} must look like 10/minute (N per second, minute, hour or day)`);
      } else {
        const kept = keptRate(Number(m[1]), m[2] as RateUnit);
        if (kept !== undefined && kept.n === Number(m[1]) && kept.unit === m[2]) log.rate = rate;
        else this.error(e.rate, `rate ${rate} cannot be kept as written by iptables (it would read back as ${kept ? `${kept.n}/${kept.unit}` : "too fast"}, and every apply would fail its read-back): write a rate iptables keeps, such as ${suggestion(kept)}`);
      }
    }
    return log;
  }
}

/** A rate to write instead: what iptables keeps, when the policy may spell it (at most 9999). */
function suggestion(kept: { n: number; unit: RateUnit } | undefined): string {
  return kept !== undefined && kept.n <= 9999 ? `${kept.n}/${kept.unit}` : "10/second";
}

/** ` (did you mean "x"?)` for the nearest known word within two edits, or nothing. */
function didYouMean(word: string, options: string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const o of options) {
    // The distance is at least the difference in length.
    if (Math.abs(o.length - word.length) >= bestDistance) continue;
    const d = editDistance(word.toLowerCase(), o.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = o;
    }
  }
  return best === undefined ? "" : ` (did you mean "${best}"?)`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
