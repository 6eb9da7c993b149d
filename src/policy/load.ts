/**
 * Policy loading: YAML text -> validated Policy, or every error at once as FILE:LINE:COL.
 *
 * The YAML tree is walked by hand rather than converted to plain objects and checked with a schema
 * library: every message must point at the key or value the user wrote (a plain object has lost
 * those positions), and cross-references (group names) must be checked even when other parts of the
 * file are wrong, so that one run reports everything.
 */
import { readFile as fsReadFile } from "node:fs/promises";
import path from "node:path";
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node, type Pair } from "yaml";
import { distinct, hostBitsWarning, memberSpelling, parseCidr } from "./addresses.js";
import { mergePortRanges, parsePort } from "./ports.js";
import { sortPolicyErrors, type PolicyError } from "./errors.js";
import { parseGroupFile } from "./group-file.js";
import { interfaceNameProblem } from "./interface-name.js";
import type { Cidr, ContainerOpening, Group, Location, Opening, Policy, PortRange, Proto, Route, Source } from "./types.js";

export type LoadResult =
  | { ok: true; policy: Policy; warnings: PolicyError[] }
  | { ok: false; errors: PolicyError[]; warnings: PolicyError[] };

export type ReadText = (file: string) => Promise<string>;

const GROUP_NAME = /^[A-Za-z0-9_-]{1,24}$/;
const CONTAINER_NAME = /^\/?[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const LOG_RATE = /^([1-9]\d{0,3})\/(second|minute|hour|day)$/;

const TOP_KEYS = ["interfaces", "groups", "trusted", "host", "containers", "routes", "swarm", "icmp", "default", "log"];
const HOST_KEYS = ["port", "proto", "from"];
const CONTAINER_KEYS = ["port", "proto", "from", "container"];

export async function loadPolicy(file: string, readText: ReadText = (p) => fsReadFile(p, "utf8")): Promise<LoadResult> {
  let text: string;
  try {
    text = await readText(file);
  } catch (err) {
    return { ok: false, errors: [{ file, line: 1, col: 1, message: `cannot read the policy file: ${reason(err)}` }], warnings: [] };
  }
  return loadPolicyText(text, file, readText);
}

export async function loadPolicyText(text: string, file: string, readText: ReadText): Promise<LoadResult> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, strict: true });
  const r = new Reader(file, doc, lineCounter);
  for (const e of doc.errors) r.errorAtOffset(e.pos[0], yamlMessage(e.code, e.message));
  for (const w of doc.warnings) r.warnAtOffset(w.pos[0], yamlMessage(w.code, w.message));
  if (doc.errors.length > 0) return r.result(undefined);

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
  if (top.swarm && r.mapping(top.swarm, "swarm")) {
    const swarm = r.entries(top.swarm, ["peers"]);
    if (swarm.peers) policy.swarm = { peers: r.sources(swarm.peers, knownGroups, "swarm peers") };
    else r.error(top.swarm, "swarm needs peers: the addresses or groups of the other swarm nodes");
  }
  policy.groups = await groupsPending;
  if (!top.host && !top.containers && !top.trusted) {
    r.error(root, "the policy opens nothing: write at least one of host, containers or trusted");
  }
  warnLockout(r, policy, root);
  return r.result(policy);
}

interface DeclaredGroup {
  name: string;
  value: Node;
}

function declareGroups(r: Reader, node: Node): DeclaredGroup[] {
  const map = r.mapping(node, "groups");
  if (!map) return [];
  const out: DeclaredGroup[] = [];
  for (const pair of map.items as Pair<Node, Node>[]) {
    const name = r.key(pair);
    if (name === undefined) continue;
    if (!GROUP_NAME.test(name) || name === "any") {
      r.error(pair.key, name === "any"
        ? `"any" is reserved (it means every source) and cannot name a group`
        : `group name "${name}" must be 1-24 letters, digits, _ or -`);
      continue;
    }
    out.push({ name, value: (pair.value ?? pair.key) as Node });
  }
  return out;
}

/** Members: literal lists inline, or `{ file: PATH }` read (relative to the policy file) in parallel. */
async function readGroups(r: Reader, declared: DeclaredGroup[], readText: ReadText): Promise<Group[]> {
  const pending = declared.map(async ({ name, value }): Promise<Group | undefined> => {
    const node = r.resolve(value);
    if (!node || !isMap(node)) return { name, ...splitFamilies(r.cidrs(value, `group "${name}"`)) };
    const fileNode = r.entries(node, ["file"]).file;
    if (fileNode === undefined) {
      r.error(node, `group "${name}" needs a list of addresses or { file: PATH }`);
      return undefined;
    }
    const fileName = r.string(fileNode, "file");
    if (fileName === undefined) return undefined;
    const resolved = path.isAbsolute(fileName) ? fileName : path.join(path.dirname(r.file), fileName);
    let text: string;
    try {
      text = await readText(resolved);
    } catch (err) {
      r.error(fileNode, `cannot read group file ${resolved}: ${reason(err)}`);
      return undefined;
    }
    const parsed = parseGroupFile(text, resolved);
    r.errors.push(...parsed.errors);
    r.warnings.push(...parsed.warnings);
    return { name, ipv4: parsed.ipv4, ipv6: parsed.ipv6, file: resolved };
  });
  return (await Promise.all(pending)).filter((g): g is Group => g !== undefined);
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

function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === "ENOENT") return "no such file";
  if (e?.code === "EACCES") return "permission denied";
  if (e?.code === "EISDIR") return "it is a directory";
  return e?.message ?? String(err);
}

function yamlMessage(code: string, message: string): string {
  if (code === "DUPLICATE_KEY") return "duplicate key (each key may appear once in a mapping)";
  const first = message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
  return `YAML: ${first}`;
}

/** The typed walk over the YAML tree; every check records an error at the node and carries on. */
class Reader {
  readonly errors: PolicyError[] = [];
  readonly warnings: PolicyError[] = [];

  constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  result(policy: Policy | undefined): LoadResult {
    const warnings = sortPolicyErrors(this.warnings, this.file);
    if (policy === undefined || this.errors.length > 0) {
      return { ok: false, errors: sortPolicyErrors(this.errors, this.file), warnings };
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
    this.errors.push({ ...this.at(node), message });
  }
  warn(node: unknown, message: string): void {
    this.warnings.push({ ...this.at(node), message });
  }

  resolve(node: unknown): Node | null {
    if (node === null || node === undefined) return null;
    if (isAlias(node)) return (node.resolve(this.doc) as Node | undefined) ?? null;
    return node as Node;
  }

  key(pair: Pair<Node, Node>): string | undefined {
    const k = this.resolve(pair.key);
    if (k && isScalar(k) && typeof k.value === "string") return k.value;
    this.error(pair.key, "keys must be plain names");
    return undefined;
  }

  mapping(node: Node, what: string) {
    const n = this.resolve(node);
    if (n && isMap(n)) return n;
    this.error(node, `${what} must be a mapping (key: value)`);
    return undefined;
  }

  /** The known keys of a mapping; unknown keys are errors with a did-you-mean. */
  entries(node: Node, known: string[]): Record<string, Node> {
    const out: Record<string, Node> = {};
    const map = this.resolve(node);
    if (!map || !isMap(map)) return out;
    for (const pair of map.items as Pair<Node, Node>[]) {
      const name = this.key(pair);
      if (name === undefined) continue;
      if (!known.includes(name)) {
        this.error(pair.key, `unknown key "${name}"${didYouMean(name, known)}; expected one of: ${known.join(", ")}`);
        continue;
      }
      // An explicit null (`from:` with nothing after it) is reported where it stands, not as "missing".
      if (pair.value === null || (isScalar(pair.value) && pair.value.value === null)) this.error(pair.key, `${name} has no value`);
      else out[name] = pair.value;
    }
    return out;
  }

  /** A list, or a single item written without brackets. */
  items(node: Node): Node[] {
    const n = this.resolve(node);
    if (n && isSeq(n)) return (n.items as Node[]).map((i) => this.resolve(i) ?? i);
    return n ? [n] : [];
  }

  list<T>(node: Node, each: (n: Node) => T | undefined): T[] {
    const n = this.resolve(node);
    if (!n || !isSeq(n)) {
      this.error(node, "expected a list (- item, or [a, b])");
      return [];
    }
    return (n.items as Node[]).map((i) => each(this.resolve(i) ?? i)).filter((x): x is T => x !== undefined);
  }

  string(node: Node, what: string): string | undefined {
    const n = this.resolve(node);
    if (n && isScalar(n) && (typeof n.value === "string" || typeof n.value === "number")) return String(n.value);
    this.error(node, `${what} must be a single value`);
    return undefined;
  }

  choice<T extends string>(node: Node, options: readonly T[], what: string, fallback: T): T {
    const v = this.string(node, what);
    if (v !== undefined && (options as readonly string[]).includes(v)) return v as T;
    if (v !== undefined) this.error(node, `${what} must be ${options.join(" or ")}, not "${v}"`);
    return fallback;
  }

  cidrs(node: Node, what: string): Cidr[] {
    const out: Cidr[] = [];
    const n = this.resolve(node);
    if (!n || !isSeq(n)) {
      this.error(node, `${what} must be a list of addresses or CIDRs, or { file: PATH }`);
      return out;
    }
    for (const item of n.items as Node[]) {
      const text = this.string(item, "an address");
      if (text === undefined) continue;
      const c = this.cidr(item, text);
      if (c) out.push(c);
    }
    return out;
  }

  cidr(node: Node, text: string): Cidr | undefined {
    const parsed = parseCidr(text);
    if (!parsed.ok) {
      this.error(node, parsed.message);
      return undefined;
    }
    const warning = hostBitsWarning(parsed);
    if (warning) this.warn(node, warning);
    return parsed.cidr;
  }

  /** `from`, `trusted`, `peers`: "any", group names, literal addresses and CIDRs. */
  sources(node: Node, groups: Set<string>, what: string): Source[] {
    const out: Source[] = [];
    const list = this.items(node);
    if (list.length === 0) this.error(node, `${what} is empty: nobody could connect; list sources, or leave it out for anyone`);
    for (const item of list) {
      const text = this.string(item, "a source");
      if (text === undefined) continue;
      if (text === "any") out.push({ kind: "any" });
      else if (GROUP_NAME.test(text)) {
        if (groups.has(text)) out.push({ kind: "group", name: text });
        else this.error(item, `unknown group "${text}"${didYouMean(text, [...groups])}`);
      } else {
        const c = this.cidr(item, text);
        if (c) out.push({ kind: "cidr", cidr: c });
      }
    }
    return out;
  }

  ports(node: Node): PortRange[] {
    const out: PortRange[] = [];
    const list = this.items(node);
    if (list.length === 0) this.error(node, "port is empty");
    for (const item of list) {
      const n = this.resolve(item);
      const value = n && isScalar(n) ? n.value : undefined;
      const parsed = parsePort(value);
      if (parsed.ok) out.push(parsed.range);
      else this.error(item, parsed.message);
    }
    return mergePortRanges(out);
  }

  protos(node: Node): Proto[] {
    const out = new Set<Proto>();
    for (const item of this.items(node)) {
      const text = this.string(item, "proto");
      if (text === undefined) continue;
      if (text === "tcp" || text === "udp") out.add(text);
      else this.error(item, `unknown protocol "${text}": write tcp or udp (ICMP is the icmp key)`);
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
    if (!CONTAINER_NAME.test(name)) {
      this.error(keys.container, `"${name}" is not a container name (letters, digits, _ . -)`);
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
    this.error(node, `${JSON.stringify(name)} is not an interface name: ${problem}`);
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
      if (rate !== undefined && LOG_RATE.test(rate)) log.rate = rate;
      else if (rate !== undefined) this.error(e.rate, `rate "${rate}" must look like 10/minute (N per second, minute, hour or day)`);
    }
    return log;
  }
}

/** ` (did you mean "x"?)` for the nearest known word within two edits, or nothing. */
function didYouMean(word: string, options: string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const o of options) {
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
