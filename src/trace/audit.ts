/**
 * Who can open a new connection to each published port and listening socket, from outside, per
 * family: the tracer run for one stand-in source of every kind the rules tell apart (each set, each
 * `-s` address, and a stranger that matches none), on every outside interface of the host, to every
 * address the target can be reached at. Pure.
 */
import type { Family } from "../policy/types.js";
import { AddressSet, cidrContains, cidrMatcher, parseCidr } from "./address-set.js";
import { words } from "./rule.js";
import { isLocal, type RuleWalker, type TraceResult } from "./trace.js";
import { traceResolving } from "./sets.js";
import type { TraceHost, TraceProto } from "./packet.js";
import type { SocketOwner } from "../facts/socket-owners.js";
import { nftAddresses } from "./nft/ruleset.js";

export interface AuditTarget {
  kind: "container" | "host";
  proto: "tcp" | "udp";
  port: number;
  family: Family;
  /** The address it is bound to (0.0.0.0 / :: for every address). */
  bind: string;
  /** "container web 80/tcp", "host socket" */
  what: string;
  /** A host socket's process, from /proc (facts/socket-owners.ts). */
  process?: SocketOwner;
}

export type Reach = { who: "anyone" } | { who: "nobody" } | { who: "some"; sources: string[] } | { who: "unknown"; reason: string } | { who: "local only" };

export interface AuditRow {
  target: AuditTarget;
  reach: Reach;
}

/** A stand-in source address for one kind of source, and how to name it. */
interface Source {
  label: string;
  address: string;
}

const STRANGERS: Record<Family, string[]> = {
  ipv4: ["203.0.113.254", "198.51.100.254", "192.0.2.254", "100.127.255.254", "11.22.33.44", "151.101.1.1"],
  ipv6: ["2001:db8:ffff:ffff::fe", "2001:db8:fffe::fe", "3fff:ffff::fe", "2a00:ffff::1"],
};

/**
 * The sets and addresses the rules of one family tell sources apart by, and a stranger to all.
 * Addresses inside `inside` (Docker's subnets: the MASQUERADE rules' `-s`) cannot come from outside.
 * A set's stand-in is one of its members; the stranger is checked against every set by the kernel.
 */
export async function sourceKinds(walker: RuleWalker, family: Family, inside: string[] = []): Promise<Source[]> {
  const cidrs: string[] = [];
  const named = new Set<string>();
  for (const table of walker.tables.values()) {
    for (const chain of table.chains.values()) {
      for (const spec of chain.rules) {
        const w = words(spec);
        for (let i = 0; i < w.length; i++) {
          if (w[i] === "-s" && w[i - 1] !== "!" && w[i + 1] !== undefined) cidrs.push(w[i + 1]!);
          if (w[i] === "--match-set" && w[i + 2] === "src") named.add(w[i + 1]!);
        }
      }
    }
  }
  // nft's tables (Docker 29's docker-bridges, or a hand-written one) tell sources apart too.
  const nft = nftAddresses(walker.nft, "src");
  cidrs.push(...nft.kinds);
  const sources: Source[] = [];
  const seen = new Set<string>();
  const add = (label: string, address: string | undefined) => {
    if (address === undefined || seen.has(label)) return;
    seen.add(label);
    sources.push({ label, address });
  };
  const sets = [...named].sort().filter((name) => walker.sets.get(name)?.family === family && walker.sets.get(name)?.dimensions === 1);
  const firsts = await Promise.all(sets.map((name) => walker.sets.first(name)));
  sets.forEach((name, i) => {
    const group = /^dw[46]-(.+)$/.exec(name);
    add(group ? `group ${group[1]}` : `set ${name}`, firsts[i] === undefined ? undefined : AddressSet.firstAddress(firsts[i]!));
  });
  const known: string[] = [];
  for (const c of cidrs) {
    if (!c.includes(family === "ipv4" ? "." : ":") || /^(0\.0\.0\.0|::)\/0$/.test(c)) continue;
    const first = AddressSet.firstAddress(c);
    if (first === undefined || inside.some((i) => cidrContains(i, first))) continue;
    known.push(c);
    add(c.replace(/\/(32|128)$/, ""), first);
  }
  const ofFamily = (k: string) => parseCidr(k)?.bytes.length === (family === "ipv4" ? 4 : 16) && k.includes(":") === (family === "ipv6");
  const addresses = new AddressSet([...known, ...nft.all].filter(ofFamily), family);
  for (const candidate of STRANGERS[family]) {
    if (addresses.has(candidate)) continue;
    await Promise.all(sets.map((name) => walker.sets.resolve(name, candidate)));
    if (sets.some((name) => walker.sets.get(name)!.has(candidate))) continue;
    sources.unshift({ label: "anyone", address: candidate });
    break;
  }
  return sources;
}

/** An interface's addresses of one family, without prefix length or link-local ones: what a client connects to. */
export function familyAddresses(iface: TraceHost["interfaces"][number], family: Family): string[] {
  return iface.addresses.map((a) => a.split("/")[0]!).filter((a) => a.includes(":") === (family === "ipv6") && !a.startsWith("fe80:"));
}

/**
 * The host's outside interfaces: every interface in the namespace but loopback, Docker's bridges and
 * the host ends of containers' veths (their packets arrive on the bridge). What a policy's
 * `interfaces:` says plays no part: audit judges what reaches the host, not what the policy meant.
 */
export function outsideInterfaces(host: TraceHost, bridges: string[]): TraceHost["interfaces"] {
  return host.interfaces.filter((i) => i.name !== "lo" && !bridges.includes(i.name) && !/^(docker\d|br-|veth)/.test(i.name));
}

/**
 * The host's addresses of one family, one for each kind of destination the rules tell apart: each
 * `-d` and `--ctorigdst` CIDR and each `dst` set either holds an address or not, and
 * `--dst-type LOCAL` holds them all, so two addresses alike in every one of these trace alike.
 * Linux takes a packet for any of its addresses on any interface (the weak host model), so every
 * kind is tried on every outside interface; one per kind keeps a host with many Docker networks
 * (a gateway address each) from multiplying the traces.
 */
export async function destinationKinds(walker: RuleWalker, family: Family, host: TraceHost): Promise<string[]> {
  const addresses = [...new Set(host.interfaces.filter((i) => i.name !== "lo").flatMap((i) => familyAddresses(i, family)))];
  const cidrs = new Set<string>();
  const sets = new Set<string>();
  for (const table of walker.tables.values()) {
    for (const chain of table.chains.values()) {
      for (const spec of chain.rules) {
        const w = words(spec);
        for (let i = 0; i < w.length; i++) {
          if ((w[i] === "-d" || w[i] === "--ctorigdst") && w[i + 1] !== undefined) cidrs.add(w[i + 1]!);
          if (w[i] === "--match-set" && w[i + 2] === "dst") sets.add(w[i + 1]!);
        }
      }
    }
  }
  for (const c of nftAddresses(walker.nft, "dst").kinds) cidrs.add(c);
  const matchers = [...cidrs].flatMap((c) => cidrMatcher(c) ?? []);
  const views = [...sets].map((name) => ({ name, view: walker.sets.get(name) }));
  const kinds = new Map<string, string>();
  for (const a of addresses) {
    // As the set match (rule.ts) decides: a missing or multi-dimension set the same for every address, a set of the other family never.
    const asked = views.filter((s) => s.view?.dimensions === 1 && s.view.family === family);
    await Promise.all(asked.map((s) => walker.sets.resolve(s.name, a)));
    const signature = [...matchers.map((m) => m(a)), ...views.map((s) => asked.includes(s) && s.view!.has(a))].map((b) => (b ? "1" : "0")).join("");
    if (!kinds.has(signature)) kinds.set(signature, a);
  }
  return [...kinds.values()];
}

/** Who can reach each target from outside: traced on every outside interface of the host (see outsideInterfaces). */
export async function audit(
  targets: AuditTarget[],
  walkers: Record<Family, RuleWalker>,
  host: TraceHost,
  bridges: string[],
  /** One destination per kind (destinationKinds); off only to check it changes nothing. */
  options: { destinationKinds: boolean } = { destinationKinds: true },
): Promise<AuditRow[]> {
  const outside = outsideInterfaces(host, bridges);
  const inside = host.interfaces.filter((i) => !outside.includes(i) && i.name !== "lo").flatMap((i) => i.addresses);
  const kinds = { ipv4: await sourceKinds(walkers.ipv4, "ipv4", inside), ipv6: await sourceKinds(walkers.ipv6, "ipv6", inside) };
  const every = (family: Family) => [...new Set(host.interfaces.filter((i) => i.name !== "lo").flatMap((i) => familyAddresses(i, family)))];
  const destinations = async (family: Family) => (options.destinationKinds ? destinationKinds(walkers[family], family, host) : every(family));
  const local = { ipv4: await destinations("ipv4"), ipv6: await destinations("ipv6") };
  const rows: AuditRow[] = [];
  for (const target of targets) {
    // Bound to one address: that address, if the host has it; else any address of the host.
    const dsts = isWildcard(target.bind) ? local[target.family] : isLocal(host, target.bind) ? [target.bind] : [];
    rows.push({ target, reach: await reachOf(target, walkers[target.family], kinds[target.family], outside, dsts) });
  }
  return rows;
}

async function reachOf(t: AuditTarget, walker: RuleWalker, sources: Source[], outside: TraceHost["interfaces"], dsts: string[]): Promise<Reach> {
  if (cidrContains("127.0.0.0/8", t.bind) || t.bind === "::1") return { who: "local only" };
  const allowed = new Set<string>();
  for (const iface of outside) {
    for (const dst of dsts) {
      for (const s of sources) {
        const r: TraceResult = await traceResolving(walker, { family: t.family, proto: t.proto as TraceProto, src: s.address, dst, dport: t.port, inIface: iface.name });
        if (r.verdict === "unknown") return { who: "unknown", reason: r.reason ?? "not understood" };
        if (r.verdict === "accept") allowed.add(s.label);
      }
    }
  }
  if (allowed.has("anyone")) return { who: "anyone" };
  if (allowed.size === 0) return { who: "nobody" };
  return { who: "some", sources: [...allowed] };
}

function isWildcard(bind: string): boolean {
  return bind === "0.0.0.0" || bind === "::" || bind === "";
}

export function describeReach(r: Reach): string {
  switch (r.who) {
    case "some":
      return r.sources.join(", ");
    case "unknown":
      return "unknown";
    default:
      return r.who;
  }
}
