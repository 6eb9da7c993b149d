/**
 * One nft rule (libnftables-json(5) `expr` list) turned into tests on a packet and what it does, as
 * rule.ts does for iptables. Understood: matches on meta iifname/oifname/iif/oif/l4proto/nfproto,
 * ip/ip6 saddr/daddr/protocol/nexthdr, tcp/udp/th ports, icmp/icmpv6 type, ct state/status/direction,
 * `fib saddr|daddr type`, against a value, prefix, range, anonymous or named set; counter, log,
 * limit; the verdicts (vmap included, anonymous or named) and dnat/snat/masquerade. Anything else
 * makes the rule not understood, and a walk reaching it says "unknown".
 *
 * A match on a header the packet does not have (`tcp dport` on a UDP packet, `ip saddr` on IPv6 in
 * an inet table) fails, whatever its operator: nft checks the protocol first (its implicit
 * dependency), as the kernel does.
 */
import type { PacketView } from "../packet.js";
import { addressBytes } from "../address-set.js";
import { UnknownAtRuntime } from "../rule.js";

export interface NftEnv {
  isLocal(address: string): boolean;
  /**
   * Whether conntrack has seen the packet (it runs at -200 on prerouting): before it, nft reads
   * `ct state` as invalid and no ct status; at -200 itself the order is not known.
   */
  conntrack: "before" | "at" | "after";
  /** A named set or map of the rule's own table. */
  set(name: string): NftSet | undefined;
}

export type NftVerdict =
  | { kind: "accept" | "drop" | "reject" | "continue" | "return" }
  | { kind: "jump" | "goto"; target: string };

export type NftAction =
  | NftVerdict
  | { kind: "vmap"; key: Key; lookup: (v: Value, env: NftEnv) => NftVerdict | undefined }
  | { kind: "dnat"; addr: string; port?: number; family?: "ipv4" | "ipv6" }
  | { kind: "snat" };

export interface NftRule {
  /** The rule as text, for explain (strings quoted, so a name cannot carry control characters). */
  text: string;
  conditions: ((p: PacketView, env: NftEnv) => boolean)[];
  /** The rule's verdict or NAT; none for a rule that only counts or logs. */
  action?: NftAction;
  /** Why the rule cannot be evaluated. */
  unknown?: string;
  /** Addresses its saddr/daddr matches name (CIDRs, or `@set`): the kinds of source and destination audit tells apart. */
  mentions: { dir: "src" | "dst"; cidr?: string; set?: string }[];
}

/** A named set or map: its elements (keys), and for a map their values, read lazily for the domain it is used in. */
export interface NftSet {
  name: string;
  /** What the kernel keys it by (`ipv4_addr`, `ifname`...); undefined for a concatenation. */
  keyType?: string;
  /** For a map: `verdict`, or the data type. */
  mapType?: string;
  keys: unknown[];
  values: unknown[];
  /** Why it cannot be used. */
  problem?: string;
}

type Value = string | number;
/** Not applicable: the packet has no such header. */
const NA = Symbol("n/a");

type Domain = "iface" | "port" | "addr4" | "addr6" | "l4proto" | "nfproto" | "ctstate" | "ctstatus" | "ctdirection" | "fibtype" | "icmptype" | "icmpv6type";

/** What a match's left side reads from the packet. */
export interface Key {
  text: string;
  domain: Domain;
  read(p: PacketView, env: NftEnv): Value | typeof NA;
  /** For saddr/daddr: which address, for audit's kinds. */
  dir?: "src" | "dst";
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

class NotUnderstood extends Error {}
const refuse = (what: string): never => {
  throw new NotUnderstood(what);
};
const show = (v: unknown): string => {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = "(unprintable)";
  }
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
};

/** A set element's value: `{elem: {val, timeout, comment}}` wraps one once (never nested, as nft prints it). */
export function elementValue(v: unknown): unknown {
  return isObject(v) && isObject(v.elem) ? v.elem.val : v;
}

const L4: Record<string, string> = { tcp: "tcp", udp: "udp", icmp: "icmp", "ipv6-icmp": "icmpv6", icmpv6: "icmpv6", "6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6" };
const ICMP_TYPES: Record<string, number> = { "echo-reply": 0, "destination-unreachable": 3, "echo-request": 8, "time-exceeded": 11 };
const ICMPV6_TYPES: Record<string, number> = {
  "destination-unreachable": 1,
  "packet-too-big": 2,
  "time-exceeded": 3,
  "echo-request": 128,
  "echo-reply": 129,
  "nd-router-solicit": 133,
  "nd-router-advert": 134,
  "nd-neighbor-solicit": 135,
  "nd-neighbor-advert": 136,
};
const CT_STATES = new Set(["new", "established", "related", "invalid", "untracked"]);
/** ct status bits as they stand while the first packet is on its way: only DNAT may be set (once rewritten). */
const CT_STATUS = new Set(["dnat", "snat", "expected", "seen-reply", "assured", "confirmed", "dying"]);

function keyOf(left: unknown): Key {
  if (!isObject(left)) return refuse(`match on ${show(left)}`);
  if (isObject(left.meta)) {
    const k = left.meta.key;
    switch (k) {
      case "iifname":
      case "iif":
        return { text: k, domain: "iface", read: (p) => p.inIface };
      case "oifname":
      case "oif":
        // Before routing there is no output interface: nft reads an empty name.
        return { text: k, domain: "iface", read: (p) => p.outIface ?? "" };
      case "l4proto":
        return { text: "meta l4proto", domain: "l4proto", read: (p) => p.proto };
      case "nfproto":
        return { text: "meta nfproto", domain: "nfproto", read: (p) => p.family };
      default:
        return refuse(`meta ${show(k)}`);
    }
  }
  if (isObject(left.payload)) {
    const { protocol, field } = left.payload;
    const text = `${String(protocol)} ${String(field)}`;
    const v4 = (f: (p: PacketView) => Value) => (p: PacketView) => (p.family === "ipv4" ? f(p) : NA);
    const v6 = (f: (p: PacketView) => Value) => (p: PacketView) => (p.family === "ipv6" ? f(p) : NA);
    if (protocol === "ip" && field === "saddr") return { text, domain: "addr4", dir: "src", read: v4((p) => p.src) };
    if (protocol === "ip" && field === "daddr") return { text, domain: "addr4", dir: "dst", read: v4((p) => p.dst) };
    if (protocol === "ip" && field === "protocol") return { text, domain: "l4proto", read: v4((p) => p.proto) };
    if (protocol === "ip6" && field === "saddr") return { text, domain: "addr6", dir: "src", read: v6((p) => p.src) };
    if (protocol === "ip6" && field === "daddr") return { text, domain: "addr6", dir: "dst", read: v6((p) => p.dst) };
    // The probes carry no extension headers: the first next header is the transport's.
    if (protocol === "ip6" && field === "nexthdr") return { text, domain: "l4proto", read: v6((p) => p.proto) };
    if ((protocol === "tcp" || protocol === "udp") && (field === "dport" || field === "sport")) {
      return { text, domain: "port", read: (p) => (p.proto !== protocol ? NA : field === "dport" ? (p.dport ?? NA) : p.sport) };
    }
    if (protocol === "th" && (field === "dport" || field === "sport")) {
      return {
        text,
        domain: "port",
        read: (p) => {
          if (p.proto !== "tcp" && p.proto !== "udp") throw new UnknownAtRuntime(`th ${field} of an ${p.proto} packet`);
          return field === "dport" ? (p.dport ?? NA) : p.sport;
        },
      };
    }
    if (protocol === "icmp" && field === "type") return { text, domain: "icmptype", read: (p) => (p.proto === "icmp" ? p.icmpType : NA) };
    if (protocol === "icmpv6" && field === "type") return { text, domain: "icmpv6type", read: (p) => (p.proto === "icmpv6" ? p.icmpType : NA) };
    return refuse(`payload ${show(left.payload)}`);
  }
  if (isObject(left.ct)) {
    const k = left.ct.key;
    if (left.ct.dir !== undefined || left.ct.family !== undefined) return refuse(`ct ${show(left.ct)}`);
    const tracked = (env: NftEnv): boolean => {
      if (env.conntrack === "at") throw new UnknownAtRuntime("ct in a chain at conntrack's own priority (-200)");
      return env.conntrack === "after";
    };
    if (k === "state") return { text: "ct state", domain: "ctstate", read: (_p, env) => (tracked(env) ? "new" : "invalid") };
    if (k === "status") return { text: "ct status", domain: "ctstatus", read: (p, env) => (tracked(env) && p.ct.dnat ? "dnat" : "") };
    if (k === "direction") return { text: "ct direction", domain: "ctdirection", read: (_p, env) => (tracked(env) ? "original" : NA) };
    return refuse(`ct ${show(k)}`);
  }
  if (isObject(left.fib)) {
    const { result, flags } = left.fib;
    const flag = Array.isArray(flags) && flags.length === 1 ? flags[0] : undefined;
    if (result !== "type" || (flag !== "daddr" && flag !== "saddr")) return refuse(`fib ${show(left.fib)}`);
    return { text: `fib ${flag} type`, domain: "fibtype", read: (p, env) => (env.isLocal(flag === "daddr" ? p.dst : p.src) ? "local" : "unicast") };
  }
  return refuse(`match on ${show(left)}`);
}

/** The test one right-hand value (or set element) makes, in the left side's domain. */
function valueTest(element: unknown, domain: Domain): (x: Value) => boolean {
  const v = elementValue(element);
  if (isObject(v) && isObject(v.prefix) && (domain === "addr4" || domain === "addr6")) {
    const net = addr(v.prefix.addr, domain);
    const len = v.prefix.len;
    if (typeof len !== "number" || !Number.isInteger(len) || len < 0 || len > net.length * 8) return refuse(`prefix ${show(v)}`);
    return (x) => {
      const b = typeof x === "string" ? addressBytes(x) : undefined;
      return b !== undefined && b.length === net.length && samePrefix(b, net, len);
    };
  }
  if (isObject(v) && Array.isArray(v.range) && v.range.length === 2) {
    if (domain === "addr4" || domain === "addr6") {
      const [lo, hi] = [addr(v.range[0], domain), addr(v.range[1], domain)];
      return (x) => {
        const b = typeof x === "string" ? addressBytes(x) : undefined;
        return b !== undefined && b.length === lo.length && compare(b, lo) >= 0 && compare(b, hi) <= 0;
      };
    }
    const [lo, hi] = [scalar(v.range[0], domain), scalar(v.range[1], domain)];
    if (typeof lo !== "number" || typeof hi !== "number") return refuse(`range ${show(v)}`);
    return (x) => typeof x === "number" && x >= lo && x <= hi;
  }
  if (domain === "addr4" || domain === "addr6") {
    const want = addr(v, domain);
    return (x) => {
      const b = typeof x === "string" ? addressBytes(x) : undefined;
      return b !== undefined && b.length === want.length && compare(b, want) === 0;
    };
  }
  if (domain === "iface") {
    if (typeof v !== "string" || v.includes("\\")) return refuse(`interface ${show(v)}`);
    // `eth*` is a prefix match, as nft prints one.
    if (v.endsWith("*")) return (x) => typeof x === "string" && x.startsWith(v.slice(0, -1));
    return (x) => x === v;
  }
  const want = scalar(v, domain);
  return (x) => x === want;
}

/** A value of a non-address domain as the packet's value reads. */
function scalar(v: unknown, domain: Domain): Value {
  switch (domain) {
    case "port":
      if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 65535) return v;
      return refuse(`port ${show(v)}`);
    case "l4proto":
      return L4[String(v)] ?? refuse(`protocol ${show(v)}`);
    case "nfproto":
      return v === "ipv4" || v === "ipv6" ? v : refuse(`nfproto ${show(v)}`);
    case "ctstate":
      return typeof v === "string" && CT_STATES.has(v) ? v : refuse(`ct state ${show(v)}`);
    case "ctstatus":
      return typeof v === "string" && CT_STATUS.has(v) ? v : refuse(`ct status ${show(v)}`);
    case "ctdirection":
      return v === "original" || v === "reply" ? v : refuse(`ct direction ${show(v)}`);
    case "fibtype":
      // Probes go to unicast addresses: local or not is all a first packet's fib type can be, where routed.
      return v === "local" || v === "unicast" ? v : refuse(`fib type ${show(v)}`);
    case "icmptype":
      if (typeof v === "number" && Number.isInteger(v)) return v;
      return ICMP_TYPES[String(v)] ?? refuse(`icmp type ${show(v)}`);
    case "icmpv6type":
      if (typeof v === "number" && Number.isInteger(v)) return v;
      return ICMPV6_TYPES[String(v)] ?? refuse(`icmpv6 type ${show(v)}`);
    default:
      return refuse(`value ${show(v)}`);
  }
}

function addr(v: unknown, domain: "addr4" | "addr6"): number[] {
  const b = typeof v === "string" ? addressBytes(v) : undefined;
  const ok = b !== undefined && b.length === (domain === "addr4" ? 4 : 16) && (domain === "addr4") === !String(v).includes(":");
  return ok ? b! : refuse(`address ${show(v)}`);
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

function samePrefix(a: number[], b: number[], len: number): boolean {
  for (let bit = 0; bit < len; bit += 8) {
    const n = Math.min(8, len - bit);
    const mask = (0xff << (8 - n)) & 0xff;
    if ((a[bit / 8]! & mask) !== (b[bit / 8]! & mask)) return false;
  }
  return true;
}

/** A named set's elements as tests in a domain, compiled once per domain. */
const setTests = new WeakMap<NftSet, Map<Domain, ((x: Value) => boolean)[]>>();

function elementTests(s: NftSet, domain: Domain): ((x: Value) => boolean)[] {
  if (s.problem !== undefined) throw new UnknownAtRuntime(`set ${s.name}: ${s.problem}`);
  let byDomain = setTests.get(s);
  if (byDomain === undefined) setTests.set(s, (byDomain = new Map()));
  let tests = byDomain.get(domain);
  if (tests === undefined) {
    try {
      tests = s.keys.map((k) => valueTest(k, domain));
    } catch (e) {
      throw new UnknownAtRuntime(`set ${s.name}: ${e instanceof NotUnderstood ? e.message : "an element"} is not understood`);
    }
    byDomain.set(domain, tests);
  }
  return tests;
}

/** The right-hand side as a membership test; a named set is looked up when the rule runs. */
function rightTest(right: unknown, domain: Domain): { text: string; test: (x: Value, env: NftEnv) => boolean; set?: string; cidrs: string[] } {
  if (typeof right === "string" && right.startsWith("@")) {
    const name = right.slice(1);
    return {
      text: `@${name}`,
      set: name,
      cidrs: [],
      test: (x, env) => {
        const s = env.set(name);
        if (s === undefined) throw new UnknownAtRuntime(`set ${name} is not in the table`);
        if (s.mapType !== undefined) throw new UnknownAtRuntime(`${name} is a map, not a set`);
        return elementTests(s, domain).some((t) => t(x));
      },
    };
  }
  const elements = isObject(right) && Array.isArray(right.set) ? right.set : Array.isArray(right) ? right : [right];
  const tests = elements.map((e) => valueTest(e, domain));
  const text = elements.length === 1 && !(isObject(right) && Array.isArray(right.set)) ? valueText(elements[0]) : `{ ${elements.map(valueText).join(", ")} }`;
  const cidrs = domain === "addr4" || domain === "addr6" ? elements.flatMap((e) => cidrOf(e)) : [];
  return { text, cidrs, test: (x) => tests.some((t) => t(x)) };
}

function cidrOf(element: unknown): string[] {
  const e = elementValue(element);
  if (typeof e === "string") return [e];
  if (isObject(e) && isObject(e.prefix)) return [`${String(e.prefix.addr)}/${String(e.prefix.len)}`];
  if (isObject(e) && Array.isArray(e.range)) return [String(e.range[0])];
  return [];
}

function valueText(element: unknown): string {
  const v = elementValue(element);
  if (typeof v === "string") return /^[\w.:/-]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === "number") return String(v);
  if (isObject(v) && isObject(v.prefix)) return `${show(v.prefix.addr).replace(/"/g, "")}/${show(v.prefix.len)}`;
  if (isObject(v) && Array.isArray(v.range)) return `${show(v.range[0]).replace(/"/g, "")}-${show(v.range[1]).replace(/"/g, "")}`;
  return show(v);
}

function ifaceText(key: Key, right: unknown): string {
  return key.domain === "iface" && typeof right === "string" ? JSON.stringify(right) : "";
}

/** A rule while it is read: its text in parts. */
interface Builder {
  text: string[];
  conditions: NftRule["conditions"];
  mentions: NftRule["mentions"];
  action?: NftAction;
}

function matchOf(m: Json, rule: Builder): void {
  const key = keyOf(m.left);
  const op = m.op;
  if (op !== "==" && op !== "!=" && op !== "in") return refuse(`operator ${show(op)}`);
  const right = rightTest(m.right, key.domain);
  if (key.dir !== undefined) {
    for (const cidr of right.cidrs) rule.mentions.push({ dir: key.dir, cidr });
    if (right.set !== undefined) rule.mentions.push({ dir: key.dir, set: right.set });
  }
  const negate = op === "!=";
  rule.conditions.push((p, env) => {
    const x = key.read(p, env);
    if (x === NA) return false;
    return right.test(x, env) !== negate;
  });
  const shown = ifaceText(key, m.right) || right.text;
  rule.text.push(`${key.text} ${negate ? "!= " : ""}${shown}`);
}

function verdictOf(v: unknown): NftVerdict {
  if (!isObject(v)) return refuse(`verdict ${show(v)}`);
  const [kind, body] = Object.entries(v)[0] ?? [];
  if (kind === "accept" || kind === "drop" || kind === "continue" || kind === "return") return { kind };
  if ((kind === "jump" || kind === "goto") && isObject(body) && typeof body.target === "string") return { kind, target: body.target };
  return refuse(`verdict ${show(v)}`);
}

function verdictText(v: NftVerdict): string {
  return v.kind === "jump" || v.kind === "goto" ? `${v.kind} ${valueText(v.target)}` : v.kind;
}

function vmapOf(body: Json): Extract<NftAction, { kind: "vmap" }> {
  const key = keyOf(body.key);
  const data = body.data;
  if (typeof data === "string" && data.startsWith("@")) {
    const name = data.slice(1);
    return {
      kind: "vmap",
      key,
      lookup: (x, env) => {
        const s = env.set(name);
        if (s === undefined) throw new UnknownAtRuntime(`map ${name} is not in the table`);
        if (s.mapType !== "verdict") throw new UnknownAtRuntime(`${name} is not a verdict map`);
        const tests = elementTests(s, key.domain);
        const i = tests.findIndex((t) => t(x));
        if (i < 0) return undefined;
        try {
          return verdictOf(s.values[i]);
        } catch (e) {
          throw new UnknownAtRuntime(`map ${name}: ${e instanceof NotUnderstood ? e.message : "a verdict"} is not understood`);
        }
      },
    };
  }
  if (!isObject(data) || !Array.isArray(data.set)) return refuse(`vmap ${show(data)}`);
  const entries = data.set.map((e) => {
    if (!Array.isArray(e) || e.length !== 2) return refuse(`vmap element ${show(e)}`);
    return { test: valueTest(e[0], key.domain), verdict: verdictOf(e[1]) };
  });
  return { kind: "vmap", key, lookup: (x) => entries.find((e) => e.test(x))?.verdict };
}

function dnatOf(body: Json): Extract<NftAction, { kind: "dnat" }> {
  const family = body.family === undefined ? undefined : body.family === "ip" ? "ipv4" : body.family === "ip6" ? "ipv6" : refuse(`dnat family ${show(body.family)}`);
  if (body.flags !== undefined || body.type_flags !== undefined) return refuse(`dnat ${show(body)}`);
  const a = body.addr;
  if (typeof a !== "string" || addressBytes(a) === undefined) return refuse(`dnat to ${show(a)}`);
  const port = body.port;
  if (port !== undefined && (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535)) return refuse(`dnat port ${show(port)}`);
  return { kind: "dnat", addr: a, ...(port !== undefined ? { port } : {}), ...(family !== undefined ? { family } : {}) };
}

/** One rule object (`{family, table, chain, handle, expr, comment}`). Never throws. */
export function compileRule(body: Json): NftRule {
  const rule: Builder = { text: [], conditions: [], mentions: [] };
  const done = (unknown?: string): NftRule => {
    const comment = typeof body.comment === "string" ? ` comment ${JSON.stringify(body.comment)}` : "";
    const out: NftRule = { text: rule.text.join(" ") + comment, conditions: rule.conditions, mentions: rule.mentions };
    if (rule.action !== undefined) out.action = rule.action;
    if (unknown !== undefined) out.unknown = unknown;
    return out;
  };
  const exprs = body.expr;
  if (!Array.isArray(exprs)) return done(`rule ${show(body)}`);
  for (const e of exprs) {
    try {
      if (rule.action !== undefined) return refuse(`${show(e)} after the rule's verdict`);
      if (!isObject(e)) return refuse(show(e));
      const [kind, b] = Object.entries(e)[0] ?? [];
      switch (kind) {
        case "match":
          if (!isObject(b)) return refuse(show(e));
          matchOf(b, rule);
          break;
        case "counter":
        case "log":
          rule.text.push(kind);
          break;
        case "limit": {
          // A first packet is within any rate; `limit rate over` then never matches it.
          const over = isObject(b) && b.inv === true;
          rule.conditions.push(() => !over);
          rule.text.push(`limit rate ${over ? "over " : ""}${isObject(b) ? `${String(b.rate)}/${String(b.per)}` : ""}`);
          break;
        }
        case "accept":
        case "drop":
        case "continue":
        case "return":
        case "jump":
        case "goto":
          rule.action = verdictOf(e);
          rule.text.push(verdictText(rule.action));
          break;
        case "reject":
          rule.action = { kind: "reject" };
          rule.text.push("reject");
          break;
        case "vmap": {
          if (!isObject(b)) return refuse(show(e));
          const action = vmapOf(b);
          rule.action = action;
          rule.text.push(`${action.kind === "vmap" ? action.key.text : ""} vmap ${typeof b.data === "string" ? b.data : valueText(b.data)}`);
          break;
        }
        case "dnat": {
          if (!isObject(b)) return refuse(show(e));
          const action = dnatOf(b);
          rule.action = action;
          const to = action.port === undefined ? action.addr : action.addr.includes(":") ? `[${action.addr}]:${action.port}` : `${action.addr}:${action.port}`;
          rule.text.push(`dnat to ${to}`);
          break;
        }
        case "snat":
        case "masquerade":
          rule.action = { kind: "snat" };
          rule.text.push(kind);
          break;
        default:
          return refuse(show(e));
      }
    } catch (err) {
      // NotUnderstood, or what hostile JSON can do to the reading itself (nesting deep enough to overflow the stack).
      rule.text.push(show(e));
      return done(err instanceof NotUnderstood ? err.message : `${show(e)} (${err instanceof Error ? err.name : "error"})`);
    }
  }
  return done();
}

/** One set or map object (`{family, name, table, type, map?, flags?, elem?}`). Never throws. */
export function compileSet(body: Json): NftSet {
  const name = typeof body.name === "string" ? body.name : "";
  const keyType = typeof body.type === "string" ? body.type : undefined;
  const mapType = body.map === undefined ? undefined : typeof body.map === "string" ? body.map : "";
  const elems = body.elem === undefined ? [] : body.elem;
  const s: NftSet = { name, keys: [], values: [], ...(keyType !== undefined ? { keyType } : {}), ...(mapType !== undefined ? { mapType } : {}) };
  if (keyType === undefined) return { ...s, problem: `its type ${show(body.type)} is not understood` };
  if (!Array.isArray(elems)) return { ...s, problem: "its elements are not a list" };
  if (mapType === undefined) return { ...s, keys: elems };
  const pairs = elems.filter((e): e is [unknown, unknown] => Array.isArray(e) && e.length === 2);
  if (pairs.length !== elems.length) return { ...s, problem: "an element is not a key and a value" };
  return { ...s, keys: pairs.map((p) => p[0]), values: pairs.map((p) => p[1]) };
}
