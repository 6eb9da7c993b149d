/**
 * The netfilter walk: where a new connection's first packet is decided. It follows the kernel's
 * order for a packet arriving from outside:
 *
 *   raw PREROUTING -> mangle PREROUTING -> nat PREROUTING (DNAT) -> routing
 *     -> local address: mangle INPUT -> filter INPUT
 *     -> otherwise:     mangle FORWARD -> filter FORWARD
 *
 * within a table, jumps, gotos, RETURN and chain policies as iptables does them. The rules come from
 * `iptables-save` text (all tables) and the sets from `ipset save`: any host's live rules, dockwall's
 * or not. A rule it does not understand, reached by the packet, makes the verdict `unknown`.
 */
import type { SavedState } from "../backends/iptables/save-parser.js";
import { addressBytes, cidrMatcher } from "./address-set.js";
import { SourceIndex } from "./source-index.js";
import type { TraceSets } from "./sets.js";
import { parseRule, UnknownAtRuntime, type MatchEnv, type ParsedRule } from "./rule.js";
import type { PacketView, Probe, TraceHost } from "./packet.js";

export type Verdict = "accept" | "drop" | "reject" | "unknown";

export interface TraceStep {
  table: string;
  chain: string;
  /** 1-based, as `iptables -L --line-numbers` counts; 0 for the chain's policy. */
  index: number;
  /** `-A CHAIN spec`, or `:CHAIN POLICY` for a policy. */
  rule: string;
  /** What it did: the target taken, "policy ACCEPT", "end of chain", "unknown: why". */
  action: string;
}

export interface TraceResult {
  verdict: Verdict;
  /** Where the verdict was decided: the input or forward path. */
  path: "input" | "forward";
  /** Every rule the packet matched (and every policy it fell to), in order. */
  steps: TraceStep[];
  /** The destination after DNAT, if a rule rewrote it. */
  dnat?: { dst: string; dport?: number };
  /** For `unknown`: the rule and option not understood. */
  reason?: string;
}

/** A host's rules, parsed once and traced many times (audit runs hundreds of probes). */
export class RuleWalker {
  private readonly parsed = new Map<string, { rules: ParsedRule[]; bySource: SourceIndex | undefined }>();

  constructor(
    readonly tables: SavedState,
    readonly sets: TraceSets,
    private readonly host: TraceHost,
    /** Skip the `-s` rules a source cannot match (source-index.ts); off only to check it changes nothing. */
    private readonly options: { skipBySource: boolean } = { skipBySource: true },
  ) {}

  private chain(table: string, chain: string): { rules: ParsedRule[]; bySource: SourceIndex | undefined } {
    const k = `${table}/${chain}`;
    let c = this.parsed.get(k);
    if (c === undefined) {
      const rules = (this.tables.get(table)?.chains.get(chain)?.rules ?? []).map(parseRule);
      c = { rules, bySource: this.options.skipBySource ? SourceIndex.of(rules) : undefined };
      this.parsed.set(k, c);
    }
    return c;
  }

  private readonly env: MatchEnv = {
    set: (name) => this.sets.get(name),
    isLocal: (address) => isLocal(this.host, address),
  };

  /** Throws MissingLookup when a set's answer must first be asked of the kernel (sets.ts: traceResolving). */
  trace(probe: Probe): TraceResult {
    const p: PacketView = {
      family: probe.family,
      proto: probe.proto,
      src: probe.src,
      dst: probe.dst,
      sport: probe.sport ?? 40000,
      ...(probe.dport !== undefined ? { dport: probe.dport } : {}),
      icmpType: probe.icmpType ?? (probe.proto === "icmpv6" ? 128 : 8),
      inIface: probe.inIface,
      ct: { dnat: false, origDst: probe.dst, ...(probe.dport !== undefined ? { origDport: probe.dport } : {}) },
    };
    const steps: TraceStep[] = [];
    let path: "input" | "forward" = isLocal(this.host, p.dst) ? "input" : "forward";
    const done = (verdict: Verdict, reason?: string): TraceResult => ({
      verdict,
      path,
      steps,
      ...(p.ct.dnat ? { dnat: { dst: p.dst, ...(p.dport !== undefined ? { dport: p.dport } : {}) } } : {}),
      ...(reason ? { reason } : {}),
    });
    for (const table of ["raw", "mangle", "nat"]) {
      const r = this.walk(table, "PREROUTING", p, steps);
      if (r.verdict !== "accept") return done(r.verdict, r.reason);
    }
    path = isLocal(this.host, p.dst) ? "input" : "forward";
    if (path === "forward") {
      const out = route(this.host, p.dst);
      if (out !== undefined) p.outIface = out;
    }
    const hook = path === "input" ? "INPUT" : "FORWARD";
    for (const table of ["mangle", "filter"]) {
      const r = this.walk(table, hook, p, steps);
      if (r.verdict !== "accept") return done(r.verdict, r.reason);
    }
    return done("accept");
  }

  /** One table's built-in chain: its rules, jumps and policy. */
  private walk(table: string, builtin: string, p: PacketView, steps: TraceStep[]): { verdict: Verdict; reason?: string } {
    const chain = this.tables.get(table)?.chains.get(builtin);
    if (chain === undefined) return { verdict: "accept" };
    // The frames of jumped-to chains: where a RETURN (or a chain's end) resumes.
    const stack: { chain: string; next: number }[] = [];
    let current = builtin;
    let i = 0;
    const src = addressBytes(p.src);
    for (let guard = 0; guard < 100_000; guard++) {
      const { rules, bySource } = this.chain(table, current);
      if (bySource !== undefined && i < rules.length) i = bySource.next(src, i);
      if (i >= rules.length) {
        if (current === builtin) {
          const policy = chain.policy ?? "ACCEPT";
          // An empty chain that accepts, outside filter, says nothing worth showing in explain.
          const silent = policy === "ACCEPT" && table !== "filter" && chain.rules.length === 0;
          if (!silent) steps.push({ table, chain: builtin, index: 0, rule: `:${builtin} ${policy}`, action: `policy ${policy}` });
          return { verdict: policy === "DROP" ? "drop" : "accept" };
        }
        // The end of a user chain returns to the last jump; reached by gotos only, to the policy.
        const frame = stack.pop() ?? { chain: builtin, next: Number.MAX_SAFE_INTEGER };
        current = frame.chain;
        i = frame.next;
        continue;
      }
      const rule = rules[i]!;
      const index = i + 1;
      const step = (action: string): TraceStep => ({ table, chain: current, index, rule: `-A ${current} ${rule.spec}`, action });
      if (rule.unknown !== undefined) {
        const reason = `${table} ${current} rule ${index} (-A ${current} ${rule.spec}): "${rule.unknown}" is not understood`;
        steps.push(step(`unknown: ${rule.unknown}`));
        return { verdict: "unknown", reason };
      }
      let matched: boolean;
      try {
        matched = rule.conditions.every((c) => c.test(p, this.env));
      } catch (e) {
        if (!(e instanceof UnknownAtRuntime)) throw e;
        steps.push(step(`unknown: ${e.message}`));
        return { verdict: "unknown", reason: `${table} ${current} rule ${index}: ${e.message}` };
      }
      i++;
      if (!matched || rule.target === undefined) continue;
      const t = rule.target;
      switch (t.name) {
        case "ACCEPT":
          steps.push(step("ACCEPT"));
          return { verdict: "accept" };
        case "DROP":
          steps.push(step("DROP"));
          return { verdict: "drop" };
        case "REJECT":
          steps.push(step("REJECT"));
          return { verdict: "reject" };
        case "RETURN": {
          steps.push(step("RETURN"));
          const frame = stack.pop();
          // RETURN from a built-in chain (or a chain reached only by gotos from it): its policy.
          const back = frame ?? { chain: builtin, next: Number.MAX_SAFE_INTEGER };
          current = back.chain;
          i = back.next;
          continue;
        }
        case "LOG":
        case "NFLOG":
        case "TCPMSS":
          steps.push(step(t.name));
          continue;
        case "DNAT": {
          const to = t.options.get("--to-destination");
          const parsed = to === undefined ? undefined : parseDnat(to);
          if (table !== "nat" || parsed === undefined) {
            steps.push(step(`unknown: DNAT ${to ?? ""}`));
            return { verdict: "unknown", reason: `${table} ${current} rule ${index}: DNAT ${to ?? "without --to-destination"} is not understood` };
          }
          p.dst = parsed.dst;
          if (parsed.port !== undefined) p.dport = parsed.port;
          p.ct.dnat = true;
          steps.push(step(`DNAT to ${to}`));
          return { verdict: "accept" };
        }
        default: {
          if (this.tables.get(table)?.chains.has(t.name) !== true) {
            steps.push(step(`unknown: target ${t.name}`));
            return { verdict: "unknown", reason: `${table} ${current} rule ${index}: target ${t.name} is not understood` };
          }
          steps.push(step(`${t.goto ? "goto" : "jump"} ${t.name}`));
          if (!t.goto) stack.push({ chain: current, next: i });
          current = t.name;
          i = 0;
        }
      }
    }
    return { verdict: "unknown", reason: `${table} ${builtin}: a loop in the chains` };
  }
}

/** `172.17.0.2:5432`, `[fd00::2]:80`, `172.17.0.2`, `fd00::2` */
function parseDnat(to: string): { dst: string; port?: number } | undefined {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(to);
  if (v6) return { dst: v6[1]!, ...(v6[2] ? { port: Number(v6[2]) } : {}) };
  const v4 = /^([\d.]+)(?::(\d+))?$/.exec(to);
  if (v4) return { dst: v4[1]!, ...(v4[2] ? { port: Number(v4[2]) } : {}) };
  if (!to.includes("-") && to.includes(":") && !to.includes("[")) return { dst: to };
  return undefined;
}

function addressOf(cidr: string): string {
  const slash = cidr.indexOf("/");
  return slash < 0 ? cidr : cidr.slice(0, slash);
}

const isLoopback = cidrMatcher("127.0.0.0/8")!;

export function isLocal(host: TraceHost, address: string): boolean {
  if (address === "::1" || isLoopback(address)) return true;
  return host.interfaces.some((i) => i.addresses.some((a) => addressOf(a) === address));
}

/** Each host's connected subnets, parsed once: route() runs for every forwarded probe audit traces. */
const subnets = new WeakMap<TraceHost, { name: string; prefix: number; holds: (address: string) => boolean }[]>();

function subnetsOf(host: TraceHost): { name: string; prefix: number; holds: (address: string) => boolean }[] {
  let s = subnets.get(host);
  if (s === undefined) {
    s = host.interfaces.flatMap((i) =>
      i.addresses.flatMap((a) => {
        const holds = cidrMatcher(a);
        return holds === undefined ? [] : [{ name: i.name, prefix: Number(a.split("/")[1] ?? 128), holds }];
      }),
    );
    subnets.set(host, s);
  }
  return s;
}

/** The interface a forwarded packet leaves by: the longest matching connected subnet. */
export function route(host: TraceHost, address: string): string | undefined {
  let best: { name: string; prefix: number } | undefined;
  for (const s of subnetsOf(host)) {
    if ((best === undefined || s.prefix > best.prefix) && s.holds(address)) best = s;
  }
  return best?.name;
}
