/**
 * One `iptables-save` rule spec turned into tests on a packet and a target. Only matches whose
 * meaning for the first packet of a new connection is certain are understood; anything else makes
 * the rule `unknown`, and a walk that reaches it gives the verdict `unknown`, never a guess.
 */
import type { PacketView } from "./packet.js";
import { cidrMatcher } from "./address-set.js";

/** One set as a `set` match sees it. `has` may throw MissingLookup (sets.ts) when asked of the kernel. */
export interface SetView {
  family: "ipv4" | "ipv6";
  /** 1 for hash:ip / hash:net; more for hash:net,port and the like (not traced). */
  dimensions: number;
  has(address: string): boolean;
}

export interface MatchEnv {
  /** Sets by name; undefined for a set the kernel does not hold (the rule cannot be loaded then). */
  set(name: string): SetView | undefined;
  isLocal(address: string): boolean;
}

export interface Condition {
  /** As written in the rule, for `explain`. */
  text: string;
  test(p: PacketView, env: MatchEnv): boolean;
  /** For a `-s CIDR` (not negated): the condition holds exactly for sources inside it (source-index.ts). */
  source?: string;
  /** For a set match: testing it may throw (a set missing, or a kernel lookup not made yet). */
  lookup?: true;
}

export interface ParsedRule {
  spec: string;
  conditions: Condition[];
  /** `-j X` or `-g X`; none for a rule that only counts. */
  target?: { name: string; goto: boolean; options: Map<string, string> };
  /** Why the rule cannot be evaluated: the option the tracer does not understand. */
  unknown?: string;
}

/** Splits a spec as iptables-save quotes it: "a b" is one word, \" a quote. */
export function words(spec: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < spec.length) {
    if (spec[i] === " ") {
      i++;
      continue;
    }
    let w = "";
    if (spec[i] === '"') {
      i++;
      while (i < spec.length && spec[i] !== '"') {
        if (spec[i] === "\\" && i + 1 < spec.length) i++;
        w += spec[i++];
      }
      i++;
    } else {
      while (i < spec.length && spec[i] !== " ") w += spec[i++];
    }
    out.push(w);
  }
  return out;
}

const PROTO_NUMBERS: Record<string, string> = { "6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "ipv6-icmp": "icmpv6", icmp6: "icmpv6" };

function protoName(p: string): string {
  return PROTO_NUMBERS[p] ?? p;
}

/** `80`, `8000:8010`, `:1024`, `1024:` */
function portRange(text: string): ((port: number | undefined) => boolean) | undefined {
  const m = /^(\d*)(?::(\d*))?$/.exec(text);
  if (!m) return undefined;
  const lo = m[1] === "" ? 0 : Number(m[1]);
  const hi = m[2] === undefined ? lo : m[2] === "" ? 65535 : Number(m[2]);
  return (port) => port !== undefined && port >= lo && port <= hi;
}

function portList(text: string): ((port: number | undefined) => boolean) | undefined {
  const parts = text.split(",").map(portRange);
  if (parts.some((p) => p === undefined)) return undefined;
  return (port) => parts.some((p) => p!(port));
}

function ifaceMatch(pattern: string): (name: string | undefined) => boolean {
  return pattern.endsWith("+") ? (n) => n !== undefined && n.startsWith(pattern.slice(0, -1)) : (n) => n === pattern;
}

const ICMP_NAMES: Record<string, number> = { "echo-request": 8, "echo-reply": 0, "destination-unreachable": 3, "time-exceeded": 11, any: -1 };
const ICMPV6_NAMES: Record<string, number> = {
  "echo-request": 128,
  "echo-reply": 129,
  "router-solicitation": 133,
  "router-advertisement": 134,
  "neighbour-solicitation": 135,
  "neighbor-solicitation": 135,
  "neighbour-advertisement": 136,
  "neighbor-advertisement": 136,
  "destination-unreachable": 1,
  "packet-too-big": 2,
  "time-exceeded": 3,
  any: -1,
};

function icmpType(text: string, names: Record<string, number>): ((t: number) => boolean) | undefined {
  const n = names[text];
  if (n !== undefined) return n < 0 ? () => true : (t) => t === n;
  // "8" or "8/0": the first packet of an echo is code 0; only the type is compared.
  const m = /^(\d+)(?:\/(\d+))?$/.exec(text);
  if (!m || (m[2] !== undefined && m[2] !== "0")) return undefined;
  return (t) => t === Number(m[1]);
}

/** Conntrack states of the first packet of a new connection (plus DNAT once rewritten). */
function ctStates(text: string): ((p: PacketView) => boolean) | undefined {
  const states = text.split(",");
  const known = new Set(["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", "DNAT", "SNAT"]);
  if (states.some((s) => !known.has(s))) return undefined;
  return (p) => states.includes("NEW") || (states.includes("DNAT") && p.ct.dnat);
}

const LOCAL_TYPES = new Set(["LOCAL", "UNICAST"]);

/** A condition from one option, or the reason it is not understood. */
type OptionParser = (value: string, negate: boolean) => Condition | string;

function cond(text: string, negate: boolean, test: (p: PacketView, env: MatchEnv) => boolean): Condition {
  return { text: `${negate ? "! " : ""}${text}`, test: negate ? (p, e) => !test(p, e) : test };
}

function addressOption(flag: string, pick: (p: PacketView) => string): OptionParser {
  return (v, neg) => {
    const inside = cidrMatcher(v);
    if (inside === undefined) return `${flag} ${v}`;
    const c = cond(`${flag} ${v}`, neg, (p) => inside(pick(p)));
    return flag === "-s" && !neg ? { ...c, source: v } : c;
  };
}

function portOption(flag: string, pick: (p: PacketView) => number | undefined, list = false): OptionParser {
  return (v, neg) => {
    const m = list ? portList(v) : portRange(v);
    return m === undefined ? `${flag} ${v}` : cond(`${flag} ${v}`, neg, (p) => m(pick(p)));
  };
}

const GENERIC: Record<string, OptionParser> = {
  "-s": addressOption("-s", (p) => p.src),
  "-d": addressOption("-d", (p) => p.dst),
  "-i": (v, neg) => cond(`-i ${v}`, neg, (p) => ifaceMatch(v)(p.inIface)),
  "-o": (v, neg) => cond(`-o ${v}`, neg, (p) => ifaceMatch(v)(p.outIface)),
  "-p": (v, neg) => cond(`-p ${v}`, neg, (p) => protoName(v) === "all" || protoName(v) === p.proto),
};

const MODULES: Record<string, Record<string, OptionParser>> = {
  tcp: {
    "--dport": portOption("--dport", (p) => p.dport),
    "--sport": portOption("--sport", (p) => p.sport),
    "--syn": (_v, neg) => cond("--syn", neg, () => true),
    "--tcp-flags": (v, neg) => {
      // The first packet of a connection carries SYN alone.
      const [mask, comp] = v.split(" ");
      const flags = (s: string) => new Set(s === "ALL" ? ["SYN", "ACK", "FIN", "RST", "URG", "PSH"] : s === "NONE" ? [] : s.split(","));
      const m = flags(mask!);
      const c = flags(comp!);
      const set: string[] = [...m].filter((f) => f === "SYN");
      return cond(`--tcp-flags ${v}`, neg, () => set.length === c.size && [...c].every((f) => set.includes(f)));
    },
  },
  udp: {
    "--dport": portOption("--dport", (p) => p.dport),
    "--sport": portOption("--sport", (p) => p.sport),
  },
  multiport: {
    "--dports": portOption("--dports", (p) => p.dport, true),
    "--sports": portOption("--sports", (p) => p.sport, true),
    "--ports": (v, neg) => {
      const m = portList(v);
      return m === undefined ? `--ports ${v}` : cond(`--ports ${v}`, neg, (p) => m(p.dport) || m(p.sport));
    },
  },
  icmp: {
    "--icmp-type": (v, neg) => {
      const m = icmpType(v, ICMP_NAMES);
      return m === undefined ? `--icmp-type ${v}` : cond(`--icmp-type ${v}`, neg, (p) => p.proto === "icmp" && m(p.icmpType));
    },
  },
  icmp6: {
    "--icmpv6-type": (v, neg) => {
      const m = icmpType(v, ICMPV6_NAMES);
      return m === undefined ? `--icmpv6-type ${v}` : cond(`--icmpv6-type ${v}`, neg, (p) => p.proto === "icmpv6" && m(p.icmpType));
    },
  },
  conntrack: {
    "--ctstate": (v, neg) => {
      const m = ctStates(v);
      return m === undefined ? `--ctstate ${v}` : cond(`--ctstate ${v}`, neg, m);
    },
    "--ctorigdstport": portOption("--ctorigdstport", (p) => p.ct.origDport),
    "--ctorigdst": addressOption("--ctorigdst", (p) => p.ct.origDst),
    "--ctorigsrc": addressOption("--ctorigsrc", (p) => p.src),
    "--ctdir": (v, neg) => (v === "ORIGINAL" || v === "REPLY" ? cond(`--ctdir ${v}`, neg, () => v === "ORIGINAL") : `--ctdir ${v}`),
    "--ctproto": (v, neg) => cond(`--ctproto ${v}`, neg, (p) => protoName(v) === p.proto),
  },
  state: {
    "--state": (v, neg) => {
      const m = ctStates(v);
      return m === undefined ? `--state ${v}` : cond(`--state ${v}`, neg, m);
    },
  },
  set: {
    "--match-set": (v, neg) => {
      const [name, dirs] = v.split(" ");
      if (!dirs || !/^(src|dst)$/.test(dirs)) return `--match-set ${v}`;
      const c = cond(`--match-set ${v}`, neg, (p, env) => {
        const s = env.set(name!);
        if (s === undefined) throw new UnknownAtRuntime(`set ${name} is not in the kernel`);
        if (s.dimensions !== 1) throw new UnknownAtRuntime(`set ${name} has ${s.dimensions} dimensions`);
        return s.family === p.family && s.has(dirs === "src" ? p.src : p.dst);
      });
      return { ...c, lookup: true };
    },
  },
  addrtype: {
    "--dst-type": (v, neg) =>
      LOCAL_TYPES.has(v) ? cond(`--dst-type ${v}`, neg, (p, env) => (v === "LOCAL" ? env.isLocal(p.dst) : !env.isLocal(p.dst))) : `--dst-type ${v}`,
    "--src-type": (v, neg) =>
      LOCAL_TYPES.has(v) ? cond(`--src-type ${v}`, neg, (p, env) => (v === "LOCAL" ? env.isLocal(p.src) : !env.isLocal(p.src))) : `--src-type ${v}`,
  },
  comment: { "--comment": () => ({ text: "", test: () => true }) },
  // A first packet is within any burst: limit lets it through (LOG rules are what use it).
  limit: { "--limit": () => ({ text: "", test: () => true }), "--limit-burst": () => ({ text: "", test: () => true }) },
};

/** Options taking two words (`--match-set NAME src`, `--tcp-flags MASK COMP`). */
const TWO_WORDS = new Set(["--match-set", "--tcp-flags"]);
/** Options taking no value. */
const NO_VALUE = new Set(["--syn"]);

/** Thrown by a condition that cannot be decided for this packet (a set missing from the kernel). */
export class UnknownAtRuntime extends Error {}

export function parseRule(spec: string): ParsedRule {
  const w = words(spec);
  const rule: ParsedRule = { spec, conditions: [] };
  let module: Record<string, OptionParser> | undefined;
  let moduleName = "";
  for (let i = 0; i < w.length; i++) {
    let negate = false;
    if (w[i] === "!") {
      negate = true;
      i++;
    }
    const opt = w[i]!;
    if (opt === "-m") {
      moduleName = w[++i]!;
      module = MODULES[moduleName];
      if (module === undefined) return { ...rule, unknown: `-m ${moduleName}` };
      continue;
    }
    if (opt === "-j" || opt === "-g") {
      const options = new Map<string, string>();
      const name = w[++i]!;
      for (i++; i < w.length; i++) {
        if (w[i]!.startsWith("--")) options.set(w[i]!, w[i + 1] !== undefined && !w[i + 1]!.startsWith("--") ? w[++i]! : "");
      }
      rule.target = { name, goto: opt === "-g", options };
      break;
    }
    const parser = opt.startsWith("--") ? module?.[opt] : GENERIC[opt];
    if (parser === undefined) return { ...rule, unknown: moduleName && opt.startsWith("--") ? `-m ${moduleName} ${opt}` : opt };
    let value = "";
    if (!NO_VALUE.has(opt)) value = TWO_WORDS.has(opt) ? `${w[++i]} ${w[++i]}` : w[++i]!;
    const c = parser(value, negate);
    if (typeof c === "string") return { ...rule, unknown: c };
    if (c.text !== "") rule.conditions.push(c);
  }
  return rule;
}
