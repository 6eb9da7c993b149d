/**
 * `nft -j list ruleset` (libnftables-json(5)) read into what the tracer walks: per family, the
 * base chains of the hooks a packet from outside passes (prerouting, input, forward, postrouting)
 * with their priorities, every chain's rules compiled (expr.ts), and the named sets and maps. Pure.
 *
 * The JSON comes from a command but is read as hostile: anything not of the expected shape is not
 * guessed at. A rule or a set the tracer cannot read is kept, marked not understood, so that a walk
 * reaching it says "unknown"; a base chain it cannot place (another family's hook, an unknown hook
 * or type) makes every trace of the family unknown (`untraceable`). Nothing here can make a path
 * look closed that the kernel leaves open.
 *
 * The tables iptables-nft owns (filter, nat, mangle, raw, security of ip and ip6) are skipped when
 * dockwall reads iptables through iptables-nft: iptables-save prints them already, in the form
 * rule.ts reads, and walking them twice would count their rules twice.
 */
import type { Family } from "../../policy/types.js";
import { compileRule, compileSet, elementValue, type NftRule, type NftSet } from "./expr.js";

export type NftHook = "prerouting" | "input" | "forward" | "postrouting";

export interface NftChain {
  /** `ip docker-bridges`, as nft names the table. */
  table: string;
  name: string;
  rules: NftRule[];
  /** For a base chain: where it is attached. */
  base?: { hook: NftHook; type: "filter" | "nat"; prio: number; policy: "accept" | "drop" };
}

/** One family's view: `ip` and `inet` tables for IPv4, `ip6` and `inet` for IPv6. */
export interface NftFamily {
  /** Base chains on the hooks walked, in the order nft listed them. */
  baseChains: NftChain[];
  /** Every chain of the family's tables, base or not. */
  chains: NftChain[];
  /** A chain by table and name (jumps stay within a table). */
  chain(table: string, name: string): NftChain | undefined;
  /** A named set or map by table and name. */
  set(table: string, name: string): NftSet | undefined;
  /** Why no path of this family can be traced: a base chain the tracer cannot place. */
  untraceable?: string;
}

export interface NftRuleset {
  families: Record<Family, NftFamily>;
  /** Why the ruleset could not be read at all (nft missing or failing, not JSON): nothing is traced from it. */
  unreadable?: string;
}

const IPTABLES_TABLES = new Set(["filter", "nat", "mangle", "raw", "security"]);
const WALKED_HOOKS = new Set<string>(["prerouting", "input", "forward", "postrouting"]);
/** Hooks that never see a packet arriving from outside: their base chains are harmless to skip. */
const UNWALKED_HOOKS = new Set<string>(["output"]);

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** A ruleset with nothing in it: what a host without nft tables has. */
export function emptyNftRuleset(unreadable?: string): NftRuleset {
  const empty: NftFamily = { baseChains: [], chains: [], chain: () => undefined, set: () => undefined };
  return { families: { ipv4: empty, ipv6: empty }, ...(unreadable !== undefined ? { unreadable } : {}) };
}

/**
 * Reads the JSON text. `iptablesNft`: dockwall reads iptables through iptables-nft, so the tables it
 * owns are skipped here (see the top).
 */
export function parseNftRuleset(text: string, opts: { iptablesNft: boolean }): NftRuleset {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return emptyNftRuleset("nft -j list ruleset did not print JSON");
  }
  if (!isObject(doc) || !Array.isArray(doc.nftables)) return emptyNftRuleset('nft -j list ruleset printed no "nftables" array');
  const tables = new Map<string, { key: string; family: string; chains: Map<string, NftChain>; sets: Map<string, NftSet> }>();
  const problems: Record<Family, string[]> = { ipv4: [], ipv6: [] };
  const skipped = (family: string, table: string) => opts.iptablesNft && (family === "ip" || family === "ip6") && IPTABLES_TABLES.has(table);
  const familiesOf = (family: string): Family[] => (family === "ip" ? ["ipv4"] : family === "ip6" ? ["ipv6"] : family === "inet" ? ["ipv4", "ipv6"] : []);
  const tableOf = (family: string, name: string) => {
    const k = `${family} ${name}`;
    let t = tables.get(k);
    if (t === undefined) tables.set(k, (t = { key: k, family, chains: new Map(), sets: new Map() }));
    return t;
  };
  const pending: { family: string; table: string; chain: string; rule: Json }[] = [];
  for (const item of doc.nftables) {
    if (!isObject(item)) continue;
    const [kind, body] = Object.entries(item)[0] ?? [];
    if (kind === undefined || kind === "metainfo" || !isObject(body)) continue;
    const family = str(body.family);
    const table = kind === "table" ? str(body.name) : str(body.table);
    if (family === undefined || table === undefined) continue;
    if (skipped(family, table)) continue;
    if (kind === "table") {
      tableOf(family, table);
    } else if (kind === "chain") {
      const name = str(body.name);
      if (name === undefined) continue;
      const chain: NftChain = { table: `${family} ${table}`, name, rules: [] };
      if (body.hook !== undefined) {
        const placed = baseOf(body);
        if (typeof placed === "string") {
          // Another family's chain (netdev ingress, bridge, arp) or a hook or type not modelled: it may
          // drop or change what the walk sees, so nothing of the families it touches is traced.
          if (placed !== "output") {
            const why = `nft chain ${family} ${table} ${name}: ${placed}`;
            const touched = familiesOf(family);
            for (const f of touched.length > 0 ? touched : (["ipv4", "ipv6"] as Family[])) problems[f].push(why);
          }
        } else {
          chain.base = placed;
        }
      }
      tableOf(family, table).chains.set(name, chain);
    } else if (kind === "set" || kind === "map") {
      const name = str(body.name);
      if (name !== undefined) tableOf(family, table).sets.set(name, compileSet(body));
    } else if (kind === "rule") {
      const chain = str(body.chain);
      if (chain !== undefined) pending.push({ family, table, chain, rule: body });
    }
    // Other objects (counters, quotas, ct helpers, flowtables...) hold no rules of their own.
  }
  for (const r of pending) {
    const chain = tables.get(`${r.family} ${r.table}`)?.chains.get(r.chain);
    if (chain === undefined) continue;
    chain.rules.push(compileRule(r.rule));
  }
  const familyView = (f: Family): NftFamily => {
    const own = [...tables.values()].filter((t) => familiesOf(t.family).includes(f));
    const byTable = new Map(own.map((t) => [t.key, t] as const));
    const view: NftFamily = {
      baseChains: own.flatMap((t) => [...t.chains.values()].filter((c) => c.base !== undefined)),
      chains: own.flatMap((t) => [...t.chains.values()]),
      chain: (table, name) => byTable.get(table)?.chains.get(name),
      set: (table, name) => byTable.get(table)?.sets.get(name),
    };
    return problems[f].length > 0 ? { ...view, untraceable: problems[f].join("; ") } : view;
  };
  return { families: { ipv4: familyView("ipv4"), ipv6: familyView("ipv6") } };
}

/** A base chain's place, or why it has none the tracer models ("output": one it need not walk). */
function baseOf(body: Json): NftChain["base"] | string {
  const family = str(body.family);
  const hook = str(body.hook);
  const type = str(body.type);
  const prio = body.prio;
  const policy = body.policy === undefined ? "accept" : str(body.policy);
  if (family !== "ip" && family !== "ip6" && family !== "inet") return `a base chain of the ${family ?? "unnamed"} family is not traced`;
  if (hook !== undefined && UNWALKED_HOOKS.has(hook)) return "output";
  if (hook === undefined || !WALKED_HOOKS.has(hook)) return `hook ${hook ?? "(none)"} is not traced`;
  if (type !== "filter" && type !== "nat") return `chain type ${type ?? "(none)"} is not traced`;
  if (typeof prio !== "number" || !Number.isInteger(prio)) return `priority ${JSON.stringify(prio)} is not understood`;
  if (policy !== "accept" && policy !== "drop") return `policy ${JSON.stringify(body.policy)} is not understood`;
  return { hook: hook as NftHook, type, prio, policy };
}

/**
 * The addresses the family's rules tell sources (or destinations) apart by, for audit's stand-ins
 * (audit.ts sourceKinds, destinationKinds): every CIDR an `ip saddr` / `ip6 daddr` match names, and
 * the first element of each named set it names (a set's members are alike to its rules, as an
 * ipset's are), with every element of those sets in `all`, so a stranger is chosen outside them.
 */
export function nftAddresses(nft: NftFamily, dir: "src" | "dst"): { kinds: string[]; all: string[] } {
  const kinds: string[] = [];
  const all: string[] = [];
  for (const chain of nft.chains) {
    for (const rule of chain.rules) {
      for (const m of rule.mentions) {
        if (m.dir !== dir) continue;
        if (m.cidr !== undefined) {
          kinds.push(m.cidr);
          all.push(m.cidr);
        }
        const set = m.set === undefined ? undefined : nft.set(chain.table, m.set);
        const members = set === undefined || set.problem !== undefined ? [] : set.keys.flatMap(cidrOfElement);
        if (members[0] !== undefined) kinds.push(members[0]);
        all.push(...members);
      }
    }
  }
  return { kinds, all };
}

function cidrOfElement(element: unknown): string[] {
  const e = elementValue(element);
  if (typeof e === "string") return [e];
  if (isObject(e) && isObject(e.prefix) && typeof e.prefix.addr === "string" && typeof e.prefix.len === "number") return [`${e.prefix.addr}/${e.prefix.len}`];
  // A range: its first address stands for it (a stranger inside one is not excluded: audit then errs towards "anyone").
  if (isObject(e) && Array.isArray(e.range) && typeof e.range[0] === "string") return [e.range[0]];
  return [];
}
