/**
 * The live kernel as the tracer needs it: every table of both families, every set (not only
 * dockwall's: audit judges any host's rules) asked of the kernel as needed, nftables' own tables
 * (`nft -j list ruleset`: Docker 29's docker-bridges), and the host's interfaces. Read-only.
 */
import type { Family } from "../policy/types.js";
import type { Netfilter } from "../backends/netfilter.js";
import type { Runner } from "../exec/runner.js";
import { parseSave, type SavedState } from "../backends/iptables/save-parser.js";
import { parseIpsetHeaders } from "../backends/ipset.js";
import { readInterfaces } from "../facts/host.js";
import { RuleWalker } from "./trace.js";
import { kernelSets, type TraceSets } from "./sets.js";
import type { TraceHost } from "./packet.js";
import { emptyNftRuleset, parseNftRuleset, type NftRuleset } from "./nft/ruleset.js";

export interface LiveTables {
  host: TraceHost;
  tables: Record<Family, SavedState>;
  sets: TraceSets;
  /** nft's tables beside iptables'; `unreadable` says why there are none (no nft on the host, say). */
  nft: NftRuleset;
}

export interface LiveRules {
  host: TraceHost;
  walkers: Record<Family, RuleWalker>;
  nft: NftRuleset;
}

export async function readLiveTables(nf: Netfilter, host?: TraceHost): Promise<LiveTables> {
  const [v4, v6, sets, nft] = await Promise.all([nf.save("ipv4"), nf.save("ipv6"), readKernelSets(nf), readNft(nf)]);
  return { host: host ?? { interfaces: readInterfaces() }, tables: { ipv4: parseSave(v4), ipv6: parseSave(v6) }, sets, nft };
}

/**
 * Tables already read (apply's own read, for the lock-out guard), with the kernel's sets beside them.
 * The guard judges dockwall's own rules on the session's path and does not read nft (apply's time is
 * budgeted), so nft's tables are left out.
 */
export async function liveTablesFrom(nf: Netfilter, tables: Record<Family, SavedState>): Promise<LiveTables> {
  return { host: { interfaces: readInterfaces() }, tables, sets: await readKernelSets(nf), nft: emptyNftRuleset("not read for the lock-out guard") };
}

/** nft's ruleset, less the tables iptables-nft owns when that is where dockwall reads iptables. */
async function readNft(nf: Netfilter): Promise<NftRuleset> {
  try {
    return parseNftRuleset(await nf.nftRuleset(), { iptablesNft: nf.variant === "nft" });
  } catch (e) {
    return emptyNftRuleset(e instanceof Error ? e.message : String(e));
  }
}

/**
 * The host as audit and explain trace it. getifaddrs (facts/host.ts) lists only interfaces with an
 * address, but a connection can come in on one without: Linux takes a packet for any of its
 * addresses on any interface, and forwards one for a container from any. So every link that is up
 * and not a port of another (a bridge port's or bond member's packets arrive on its master, a
 * container's veth among them) is added without addresses. `ip -j link` asks the kernel over
 * netlink, in this process's namespace; when it cannot answer, the interfaces with an address are
 * all there is to go on (what audit traced before).
 */
export async function readTraceHost(runner: Runner): Promise<TraceHost> {
  const interfaces = readInterfaces();
  const known = new Set(interfaces.map((i) => i.name));
  const links = await runner.run("ip", ["-j", "link", "show"]).catch(() => undefined);
  for (const name of links?.code === 0 ? unenslavedUpLinks(links.stdout) : []) {
    if (!known.has(name)) interfaces.push({ name, addresses: [] });
  }
  return { interfaces };
}

/** Names of the links that are up and have no master, from `ip -j link show`; none if it is not that. */
export function unenslavedUpLinks(json: string): string[] {
  let links: unknown;
  try {
    links = JSON.parse(json);
  } catch {
    return [];
  }
  if (!Array.isArray(links)) return [];
  return links.flatMap((l: unknown) => {
    if (typeof l !== "object" || l === null) return [];
    const link = l as { ifname?: unknown; flags?: unknown; master?: unknown };
    const up = Array.isArray(link.flags) && link.flags.includes("UP");
    return typeof link.ifname === "string" && up && link.master === undefined ? [link.ifname] : [];
  });
}

async function readKernelSets(nf: Netfilter): Promise<TraceSets> {
  // Without ipset installed there are no sets: a rule naming one traces as unknown.
  return kernelSets(nf, parseIpsetHeaders(await nf.ipsetHeaders().catch(() => ""), () => true));
}

export function walkersOf(live: LiveTables): LiveRules {
  const walker = (f: Family) => new RuleWalker(live.tables[f], live.sets, live.host, undefined, live.nft.families[f]);
  return { host: live.host, walkers: { ipv4: walker("ipv4"), ipv6: walker("ipv6") }, nft: live.nft };
}

export async function readLiveRules(nf: Netfilter, host?: TraceHost): Promise<LiveRules> {
  return walkersOf(await readLiveTables(nf, host));
}
