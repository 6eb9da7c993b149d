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
 *
 * Beside them, the nftables tables of `nft -j list ruleset` (nft/), such as Docker 29's
 * `docker-bridges`: at each hook every base chain runs in priority order, iptables' tables at theirs
 * (raw -300, mangle -150, nat -100, filter 0) and nft's at what they declare. An accept ends only its
 * own base chain and the packet goes on to the next; a drop is final. NAT chains run at the NAT
 * core's place in the hook (-100 prerouting, 100 postrouting, whatever they declare, in their own
 * order), and once one has rewritten the destination the later ones are not run: as the kernel does.
 * nft's postrouting base chains are walked too (iptables' never were: dockwall and Docker's iptables
 * rules drop nothing there).
 */
import type { SavedState } from "../backends/iptables/save-parser.js";
import { addressBytes, cidrMatcher } from "./address-set.js";
import { SourceIndex } from "./source-index.js";
import type { TraceSets } from "./sets.js";
import { parseRule, UnknownAtRuntime, type MatchEnv, type ParsedRule } from "./rule.js";
import type { PacketView, Probe, TraceHost } from "./packet.js";
import { emptyNftRuleset, type NftChain, type NftFamily, type NftHook } from "./nft/ruleset.js";
import { walkNftChain } from "./nft/walk.js";

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

/** One base chain of a hook: an iptables table's built-in chain or an nft base chain. */
type Stage =
  | { kind: "iptables"; table: string; chain: string; prio: number; nat: boolean }
  | { kind: "nft"; chain: NftChain & { base: NonNullable<NftChain["base"]> }; prio: number; nat: boolean };

/** iptables' tables on each hook, at their priorities (NF_IP_PRI_*), as the walk has always taken them. */
const IPTABLES_STAGES: Record<NftHook, [string, number][]> = {
  prerouting: [["raw", -300], ["mangle", -150], ["nat", -100]],
  input: [["mangle", -150], ["filter", 0]],
  forward: [["mangle", -150], ["filter", 0]],
  postrouting: [],
};

/** Where the NAT core runs a hook's NAT chains (NF_IP_PRI_NAT_DST / NF_IP_PRI_NAT_SRC). */
const NAT_PRIO: Record<NftHook, number> = { prerouting: -100, input: 100, forward: 0, postrouting: 100 };

const NO_NFT = emptyNftRuleset().families.ipv4;

/** A host's rules, parsed once and traced many times (audit runs hundreds of probes). */
export class RuleWalker {
  private readonly parsed = new Map<string, { rules: ParsedRule[]; bySource: SourceIndex | undefined }>();

  constructor(
    readonly tables: SavedState,
    readonly sets: TraceSets,
    private readonly host: TraceHost,
    /** Skip the `-s` rules a source cannot match (source-index.ts); off only to check it changes nothing. */
    private readonly options: { skipBySource: boolean } = { skipBySource: true },
    /** The family's nftables tables other than iptables' own (nft/ruleset.ts). */
    readonly nft: NftFamily = NO_NFT,
  ) {}

  private readonly stagesByHook = new Map<NftHook, Stage[]>();

  /** The hook's base chains in the order the kernel runs them; iptables' first among equals. */
  private stages(hook: NftHook): Stage[] {
    let s = this.stagesByHook.get(hook);
    if (s === undefined) {
      const iptables: Stage[] = IPTABLES_STAGES[hook].map(([table, prio]) => ({ kind: "iptables", table, chain: hook.toUpperCase(), prio, nat: table === "nat" }));
      const nft: Stage[] = this.nft.baseChains.flatMap((chain) => {
        const base = chain.base;
        return base?.hook === hook ? [{ kind: "nft" as const, chain: { ...chain, base }, prio: base.prio, nat: base.type === "nat" }] : [];
      });
      // NAT chains at the NAT core's place, among themselves by their own priority; ties in the order listed.
      const at = (x: Stage) => (x.nat ? NAT_PRIO[hook] : x.prio);
      s = [...iptables, ...nft].map((x, order) => ({ x, order })).sort((a, b) => at(a.x) - at(b.x) || a.x.prio - b.x.prio || a.order - b.order).map((e) => e.x);
      this.stagesByHook.set(hook, s);
    }
    return s;
  }

  /** The hook's base chains walked in order: the first verdict other than accept ends the packet's way. */
  private runHook(hook: NftHook, p: PacketView, steps: TraceStep[]): { verdict: Verdict; reason?: string } {
    let natDone = false;
    for (const stage of this.stages(hook)) {
      if (stage.nat && natDone) continue;
      const wasDnat = p.ct.dnat;
      const r = stage.kind === "iptables" ? this.walk(stage.table, stage.chain, p, steps) : walkNftChain(stage.chain, this.nft, p, (a) => isLocal(this.host, a), steps);
      if (r.verdict !== "accept") return r;
      // The NAT core stops at the first chain that sets up the mapping (a DNAT here; an SNAT on postrouting).
      if (stage.nat && (p.ct.dnat !== wasDnat || (hook === "postrouting" && steps.at(-1)?.action === "SNAT"))) natDone = true;
    }
    return { verdict: "accept" };
  }

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
    if (this.nft.untraceable !== undefined) return done("unknown", this.nft.untraceable);
    const pre = this.runHook("prerouting", p, steps);
    if (pre.verdict !== "accept") return done(pre.verdict, pre.reason);
    path = isLocal(this.host, p.dst) ? "input" : "forward";
    if (path === "forward") {
      const out = route(this.host, p.dst);
      if (out !== undefined) p.outIface = out;
    }
    const r = this.runHook(path, p, steps);
    if (r.verdict !== "accept") return done(r.verdict, r.reason);
    if (path === "forward") {
      const post = this.runHook("postrouting", p, steps);
      if (post.verdict !== "accept") return done(post.verdict, post.reason);
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
