/**
 * Whether a rule line, a chain or a jump is one render.ts could have written: what a stored state
 * (previous.json, the journal's `before`, current.json) may send to iptables-restore. The check is
 * structural: the line is read back into the renderer's words, in the renderer's order (see
 * renderRule), and each value is checked against what the renderer puts there. Anything else (a rule
 * of another chain, a second line, ACCEPT, a table header, an unknown match) is refused, so a
 * crafted state file cannot add a rule dockwall would never write. Pure.
 *
 * Kept next to render.ts on purpose: a shape added there must be added here, and the unit test that
 * runs every golden policy's output through this check fails until it is.
 */
import type { Family } from "../../policy/types.js";
import { memberSpelling, parseCidr } from "../../policy/addresses.js";
import { CHAIN_PREFIX, type CtState, type Table } from "../../ruleset/types.js";
import { CHAINS } from "../../compile/names.js";
import { jumpSpec, quote, type RenderedFamily } from "./render.js";
import { claimsTag, entryOfComment, unquoteWord } from "./entry-tag.js";

const TABLES: readonly Table[] = ["filter", "mangle"];
/** The jumps compile/index.ts makes, and no others: a jump into DOCKWALL-INPUT from FORWARD would filter routed traffic by the host's rules. */
const JUMPS: readonly { table: Table; from: string; to: string }[] = [
  { table: "filter", from: "INPUT", to: CHAINS.input },
  { table: "mangle", from: "FORWARD", to: CHAINS.forward },
];
/** The kernel's limits, in bytes (iptables refuses more; a longer text would not read back equal). */
const MAX_LOG_PREFIX = 29;
const MAX_COMMENT = 255;
const CT_ORDER: readonly CtState[] = ["INVALID", "NEW", "RELATED", "ESTABLISHED", "DNAT"];
const PROTOS: Record<Family, readonly string[]> = { ipv4: ["tcp", "udp", "icmp", "esp"], ipv6: ["tcp", "udp", "ipv6-icmp", "esp"] };
const REJECT_WITH: Record<Family, readonly string[]> = { ipv4: ["tcp-reset", "icmp-port-unreachable"], ipv6: ["tcp-reset", "icmp6-port-unreachable"] };
/** iptables' chain names are at most 28 characters. */
const CHAIN_NAME = new RegExp(`^${CHAIN_PREFIX}[A-Za-z0-9_-]{1,${28 - CHAIN_PREFIX.length}}$`);
/** ipset names are at most 31 characters; dockwall's say their family (compile/names.ts setName). */
const SET_NAME: Record<Family, RegExp> = { ipv4: /^dw4-[A-Za-z0-9_-]{1,27}$/, ipv6: /^dw6-[A-Za-z0-9_-]{1,27}$/ };
/**
 * An interface name as one word: at most 15 characters (IFNAMSIZ), no '/', ':' or whitespace (the
 * kernel's rule), no quote or backslash, not an option (a leading '-' or '!'); '+' is the wildcard.
 */
const IFACE = /^(?![-!])[\x21-\x7e]{1,15}$/;
const FORBIDDEN_IN_IFACE = /[/:"'\\]/;
const PORT = /^(0|[1-9]\d{0,4})$/;

export function isDockwallChainName(name: string): boolean {
  return CHAIN_NAME.test(name);
}

export function isDockwallSetName(name: string, family: Family): boolean {
  return SET_NAME[family].test(name);
}

/** What a rule may refer to: the chains it may go to (same table) and the sets it may match. */
export interface RuleContext {
  family: Family;
  /** The dockwall chains of the rule's table, in the same state. */
  chains: ReadonlySet<string>;
  /** The state's sets of this family. */
  sets: ReadonlySet<string>;
}

/** Why `spec` (a rule as after `-A CHAIN `) is not one render.ts writes; undefined if it is. */
export function ruleProblem(spec: string, ctx: RuleContext): string | undefined {
  return acceptedQuickly(spec, ctx) ? undefined : explainedProblem(spec, ctx);
}

/** A word as render's quote() writes it: bare, or double-quoted with `"` and `\` escaped. */
const QUOTED = '(?:[A-Za-z0-9_-]+|"(?:[^"\\\\\\x00-\\x1f\\x7f]|\\\\["\\\\])*")';
const PORTS = "(\\d{1,5}(?::\\d{1,5})?)";
const WORD = "([^ \\x00-\\x1f\\x7f\"]+)";
/** renderRule's order, as one expression: the words, and the values to check, captured. */
const RULE_SHAPE = new RegExp(
  "^" +
    [
      `(?:-s ${WORD} )?(?:-d ${WORD} )?(?:-i ${WORD} )?(?:-o ${WORD} )?(?:-p (tcp|udp|icmp|ipv6-icmp|esp) )?`,
      `(?:-m (tcp|udp) --dport ${PORTS} |-m icmp --icmp-type (\\d{1,3}) |-m icmp6 --icmpv6-type (\\d{1,3}) )?`,
      `(?:-m set --match-set ${WORD} src )?`,
      `(?:-m conntrack(?: --ctstate ([A-Z,]+))?(?: --ctorigdst ${WORD})?(?: --ctorigdstport ${PORTS} --ctdir ORIGINAL)? )?`,
      `(?:-m limit --limit ([1-9]\\d{0,8}/(?:sec|min|hour|day)) )?`,
      `(?:-m comment --comment (${QUOTED}) )?`,
      `(?:-j (RETURN|DROP)|-j REJECT --reject-with ([a-z0-9-]+)|-j LOG --log-prefix (${QUOTED})|-g ${WORD})$`,
    ].join(""),
);

/**
 * The fast path (every apply reads the record: hundreds of rules): one regular expression for the
 * shape, then the captured values. True only for what explainedProblem accepts too (the unit tests
 * hold the two to agreeing); false leaves the verdict, and the reason, to explainedProblem.
 */
export function acceptedQuickly(spec: string, ctx: RuleContext): boolean {
  const m = RULE_SHAPE.exec(spec);
  if (m === null) return false;
  const [, src, dst, inIface, outIface, proto, portProto, dport, icmpType, icmp6Type, set, ctstate, ctorigdst, ctorigdstport, limit, comment, , rejectWith, logPrefix, goto] = m;
  const { family } = ctx;
  if (src !== undefined && !isCidr(src, family)) return false;
  if (dst !== undefined && !isCidr(dst, family)) return false;
  if (inIface !== undefined && !isIface(inIface)) return false;
  if (outIface !== undefined && !isIface(outIface)) return false;
  if (proto !== undefined && !PROTOS[family].includes(proto)) return false;
  if (portProto !== undefined && (portProto !== proto || !isPorts(dport!))) return false;
  if (icmpType !== undefined && (proto !== "icmp" || !isByte(icmpType))) return false;
  if (icmp6Type !== undefined && (proto !== "ipv6-icmp" || !isByte(icmp6Type))) return false;
  if (set !== undefined && (!isDockwallSetName(set, family) || !ctx.sets.has(set))) return false;
  if (spec.includes("-m conntrack") && ctstate === undefined && ctorigdst === undefined && ctorigdstport === undefined) return false;
  if (ctstate !== undefined && CT_ORDER.filter((s) => ctstate.split(",").includes(s)).join(",") !== ctstate) return false;
  if (ctorigdst !== undefined && !isAddressOrNetwork(ctorigdst, family)) return false;
  if (ctorigdstport !== undefined && !isPorts(ctorigdstport)) return false;
  if (limit === undefined && spec.includes("-m limit")) return false;
  if (comment !== undefined && (!isQuoted(comment, MAX_COMMENT) || tagProblem(unquoteWord(comment)) !== undefined)) return false;
  if (rejectWith !== undefined && !REJECT_WITH[family].includes(rejectWith)) return false;
  if (logPrefix !== undefined && !isQuoted(logPrefix, MAX_LOG_PREFIX)) return false;
  if (goto !== undefined && !ctx.chains.has(goto)) return false;
  return true;
}

function isIface(n: string): boolean {
  return IFACE.test(n) && !FORBIDDEN_IN_IFACE.test(n) && n !== "." && n !== "..";
}

/** The word-by-word check: slower, and says what is wrong. */
export function explainedProblem(spec: string, ctx: RuleContext): string | undefined {
  // One rule, one line: a newline would start a second rule (or COMMIT) in the restore payload.
  if (/[\x00-\x1f\x7f]/.test(spec)) return "contains a control character (a newline would start another line of the restore payload)";
  const words = splitWords(spec);
  if (typeof words === "string") return words;
  let i = 0;
  const peek = (...w: string[]) => w.every((x, k) => words[i + k] === x);
  const take = (): string | undefined => words[i++];
  const flag = (f: string) => {
    if (!peek(f)) return undefined;
    i++;
    return take() ?? "";
  };
  const problems: string[] = [];
  const check = (ok: boolean, problem: string) => ok || problems.push(problem);

  for (const f of ["-s", "-d"]) {
    const a = flag(f);
    if (a !== undefined) check(isCidr(a, ctx.family), `${f} ${a} is not an ${ctx.family} address/prefix as iptables prints it`);
  }
  for (const f of ["-i", "-o"]) {
    const n = flag(f);
    if (n !== undefined) check(isIface(n), `${f} ${n} is not an interface name`);
  }
  const proto = flag("-p");
  if (proto !== undefined) check(PROTOS[ctx.family].includes(proto), `-p ${proto} is not a protocol dockwall writes for ${ctx.family}`);
  if ((proto === "tcp" || proto === "udp") && peek("-m", proto, "--dport")) {
    i += 3;
    const p = take() ?? "";
    check(isPorts(p), `--dport ${p} is not a port or port range`);
  } else if (proto === "icmp" && peek("-m", "icmp", "--icmp-type")) {
    i += 3;
    const t = take() ?? "";
    check(isByte(t), `--icmp-type ${t} is not an ICMP type`);
  } else if (proto === "ipv6-icmp" && peek("-m", "icmp6", "--icmpv6-type")) {
    i += 3;
    const t = take() ?? "";
    check(isByte(t), `--icmpv6-type ${t} is not an ICMPv6 type`);
  }
  if (peek("-m", "set", "--match-set")) {
    i += 3;
    const name = take() ?? "";
    check(isDockwallSetName(name, ctx.family), `--match-set ${name} is not a dockwall ${ctx.family} set`);
    check(ctx.sets.has(name) || !isDockwallSetName(name, ctx.family), `--match-set ${name}: the state has no such set`);
    check(take() === "src", "--match-set must match src");
  }
  if (peek("-m", "conntrack")) {
    i += 2;
    let any = false;
    const states = flag("--ctstate");
    if (states !== undefined) {
      any = true;
      const list = states.split(",");
      const ordered = CT_ORDER.filter((s) => list.includes(s as CtState));
      check(ordered.length === list.length && ordered.join(",") === states, `--ctstate ${states} is not a state list as dockwall writes it`);
    }
    const origDst = flag("--ctorigdst");
    if (origDst !== undefined) {
      any = true;
      check(isAddressOrNetwork(origDst, ctx.family), `--ctorigdst ${origDst} is not an ${ctx.family} address or network as iptables prints it`);
    }
    const origPort = flag("--ctorigdstport");
    if (origPort !== undefined) {
      any = true;
      check(isPorts(origPort), `--ctorigdstport ${origPort} is not a port or port range`);
      check(peek("--ctdir", "ORIGINAL"), "--ctorigdstport must be followed by --ctdir ORIGINAL");
      if (peek("--ctdir", "ORIGINAL")) i += 2;
    }
    check(any, "-m conntrack without a condition");
  }
  if (peek("-m", "limit", "--limit")) {
    i += 3;
    const rate = take() ?? "";
    check(/^[1-9]\d{0,8}\/(sec|min|hour|day)$/.test(rate), `--limit ${rate} is not a rate`);
  }
  if (peek("-m", "comment", "--comment")) {
    i += 3;
    const c = take() ?? "";
    check(isQuoted(c), `--comment ${c} is not quoted as iptables prints it`);
    check(!isQuoted(c) || isQuoted(c, MAX_COMMENT), `--comment is longer than ${MAX_COMMENT} bytes (the kernel's limit)`);
    const tag = isQuoted(c) ? tagProblem(unquoteWord(c)) : undefined;
    if (tag !== undefined) problems.push(tag);
  }
  const target = words[i];
  if (peek("-j", "RETURN") || peek("-j", "DROP")) {
    i += 2;
  } else if (peek("-j", "REJECT", "--reject-with")) {
    i += 3;
    const w = take() ?? "";
    check(REJECT_WITH[ctx.family].includes(w), `--reject-with ${w} is not one dockwall writes for ${ctx.family}`);
  } else if (peek("-j", "LOG", "--log-prefix")) {
    i += 3;
    const prefix = take() ?? "";
    check(isQuoted(prefix), `--log-prefix ${prefix} is not quoted as iptables prints it`);
    check(!isQuoted(prefix) || isQuoted(prefix, MAX_LOG_PREFIX), `--log-prefix ${prefix} is longer than ${MAX_LOG_PREFIX} bytes (the kernel would cut it, and it would not read back)`);
  } else if (peek("-g")) {
    i++;
    const to = take() ?? "";
    check(ctx.chains.has(to), `-g ${to} is not a dockwall chain of this table`);
  } else {
    const what = target === "-j" || target === "-g" ? `${target} ${words[i + 1] ?? ""}`.trim() : (target ?? "nothing");
    return problems.concat(`its target (${what}) is not one dockwall writes (RETURN, DROP, REJECT, LOG, or -g to its own chain)`).join("; ");
  }
  if (i < words.length) problems.push(`"${words.slice(i).join(" ")}" is not something dockwall writes (at that place, or at all)`);
  return problems.length > 0 ? problems.join("; ") : undefined;
}

/**
 * Every problem of a stored family state: tables, chain names, each rule, each jump. `sets`: the
 * names of the state's sets of this family. An empty list means iptables-restore may be given it.
 */
export function familyProblems(f: RenderedFamily, family: Family, sets: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  const chains = new Map<Table, Set<string>>(TABLES.map((t) => [t, new Set()]));
  for (const c of f.chains) {
    const chain = printable(c.name);
    if (!TABLES.includes(c.table)) problems.push(`chain ${chain} is in table ${printable(c.table)}: dockwall writes only ${TABLES.join(" and ")}`);
    else if (!isDockwallChainName(c.name)) problems.push(`chain ${chain} is not a dockwall chain (${CHAIN_PREFIX}...)`);
    else if (chains.get(c.table)!.has(c.name)) problems.push(`chain ${c.table} ${chain} is there twice`);
    else chains.get(c.table)!.add(c.name);
  }
  for (const c of f.chains) {
    const ctx: RuleContext = { family, chains: chains.get(c.table) ?? new Set(), sets };
    c.rules.forEach((rule, n) => {
      const problem = ruleProblem(rule, ctx);
      if (problem !== undefined) problems.push(`${printable(c.table)} ${printable(c.name)} rule ${n + 1} "${printable(rule)}": ${problem}`);
    });
  }
  for (const j of f.jumps) {
    const where = `jump ${printable(`${j.table} ${j.from} -> ${j.to}`)}`;
    if (!JUMPS.some((k) => k.table === j.table && k.from === j.from && k.to === j.to)) {
      problems.push(`${where}: dockwall jumps only ${JUMPS.map((k) => `${k.table} ${k.from} -> ${k.to}`).join(" and ")}`);
    }
    else if (!chains.get(j.table)!.has(j.to)) problems.push(`${where}: not to a dockwall chain of that table in this state`);
    else if (j.spec !== jumpSpec(j.to)) problems.push(`${where}: "${printable(j.spec)}" is not the jump dockwall writes ("${jumpSpec(j.to)}")`);
  }
  return problems;
}

/** Words as iptables-save prints them: space-separated, a double-quoted word may hold spaces. */
function splitWords(spec: string): string[] | string {
  const words: string[] = [];
  let i = 0;
  while (i < spec.length) {
    if (spec[i] === " ") return "has a double or leading space";
    let end: number;
    if (spec[i] === '"') {
      end = i + 1;
      while (end < spec.length && spec[end] !== '"') end += spec[end] === "\\" ? 2 : 1;
      if (end >= spec.length) return "has an unterminated quote";
      end++;
    } else {
      end = spec.indexOf(" ", i);
      if (end < 0) end = spec.length;
    }
    words.push(spec.slice(i, end));
    i = end;
    if (i < spec.length) {
      if (spec[i] !== " ") return "has a quote inside a word";
      i++;
      if (i === spec.length) return "ends with a space";
    }
  }
  return words;
}

/**
 * A comment is free text (a comment changes nothing a rule does, and records written before entry
 * tags hold every older form), but one that opens with `[` claims an entry tag and must be one:
 * `[ID]` or `[ID] text`, ID as compile/entries.ts makes them (what explain and the metrics read).
 */
function tagProblem(comment: string): string | undefined {
  if (!claimsTag(comment) || entryOfComment(comment) !== undefined) return undefined;
  return `--comment ${JSON.stringify(printable(comment))} opens with "[" but not with an entry tag ([ID] with ID lower-case letters, digits and -)`;
}

/** A word as render's quote() writes it: its unquoted text quoted again gives it back; at most `maxBytes` unquoted. */
function isQuoted(word: string, maxBytes = Infinity): boolean {
  const inner = word.startsWith('"') ? word.slice(1, -1).replace(/\\(.)/g, "$1") : word;
  return quote(inner) === word && Buffer.byteLength(inner) <= maxBytes;
}

function isCidr(text: string, family: Family): boolean {
  const parsed = parseCidr(text);
  return parsed.ok && parsed.hostBits === undefined && parsed.cidr.family === family && parsed.cidr.cidr === text;
}

/** An address, or a network with its prefix, as conntrack and ipset print them: a host has no /32 or /128. */
export function isAddressOrNetwork(text: string, family: Family): boolean {
  const parsed = parseCidr(text);
  return parsed.ok && parsed.hostBits === undefined && parsed.cidr.family === family && memberSpelling(parsed.cidr) === text;
}

function isPorts(text: string): boolean {
  const [from, to, ...rest] = text.split(":");
  if (rest.length > 0 || !PORT.test(from!) || Number(from) > 65535) return false;
  return to === undefined || (PORT.test(to) && Number(to) <= 65535 && Number(to) > Number(from));
}

function isByte(text: string): boolean {
  return /^(0|[1-9]\d{0,2})$/.test(text) && Number(text) <= 255;
}

/** For messages: control characters shown, so a crafted line cannot forge output lines. */
export function printable(s: string): string {
  const shown = s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  return shown.length > 200 ? `${shown.slice(0, 200)}...` : shown;
}
