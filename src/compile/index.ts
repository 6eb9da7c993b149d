/**
 * compile(policy, facts) -> Ruleset: where every packet's fate is decided. Pure and deterministic.
 *
 * Placement (why it is where it is):
 * - Host services: filter INPUT -> DOCKWALL-INPUT. Docker never writes to INPUT (Swarm's encrypted
 *   overlay appends there, we only insert one jump at the top, so those rules stay).
 * - Containers: mangle FORWARD -> DOCKWALL-FORWARD, in both families. mangle FORWARD runs after
 *   Docker's DNAT (so conntrack knows the original port) and before filter FORWARD, and Docker never
 *   writes to the mangle table. A jump in filter DOCKER-USER is not enough: Docker 20.10 with
 *   --ip6tables pushes the ip6tables FORWARD -> DOCKER-USER jump below its own ACCEPTs on every daemon
 *   restart and network creation, and IPv6 leaks again (FIELD-NOTES, measured; proved in the lab
 *   tests). The cost: REJECT exists only in the filter table, so refused forwarded connections are
 *   always dropped; `default: reject` applies to the host's own ports.
 * - Published ports are matched on the port the client connected to (--ctorigdstport, after DNAT the
 *   destination port is the container's), and only for connections Docker DNATed (--ctstate DNAT), so
 *   direct routing to container addresses stays closed. The same openings are repeated in the host
 *   chain with --dport for the docker-proxy path (IPv6 to containers without IPv6, userland proxy).
 * - dockwall only takes away: what it allows it RETURNs, and Docker's chains and the host's other
 *   rules decide the rest.
 */
import type { ContainerOpening, Family, Opening, Policy, PortRange, Proto, Source } from "../policy/types.js";
import type { Facts, PublishedPort } from "../facts/types.js";
import type { Chain, FamilyRules, IpSetSpec, Match, Rule, Ruleset } from "../ruleset/types.js";
import { CHAINS, setName } from "./names.js";
import { policySets } from "./sets.js";
import { DOCKER_BRIDGE_PATTERNS, RefusedOnThisHost, checkInterfaces, namedDockerBridges } from "./interfaces.js";
import { formatPolicyError } from "../policy/errors.js";
import { BUILT_IN, policyEntries, type Entries } from "./entries.js";

const ICMPV6_NEIGHBOUR_DISCOVERY = [133, 134, 135, 136];
const SWARM_PORTS: { proto: Proto | "esp"; port?: number }[] = [
  { proto: "tcp", port: 2377 },
  { proto: "tcp", port: 7946 },
  { proto: "udp", port: 7946 },
  { proto: "udp", port: 4789 },
  { proto: "esp" },
];

/**
 * Throws RefusedOnThisHost when the policy names interfaces this host cannot filter as it says.
 * `sets` is what policySets(policy) returns, when the caller already has it (apply fills the sets
 * while the rules compile): passed in, the ruleset holds those very objects.
 */
export function compile(policy: Policy, facts: Facts, sets: IpSetSpec[] = policySets(policy)): Ruleset {
  // An outside interface the host lacks would leave the real ones unfiltered: no ruleset at all then.
  const interfaces = checkInterfaces(policy, { interfaces: facts.host.interfaces, namedBridges: namedDockerBridges(facts) }, true);
  if (interfaces.errors.length > 0) throw new RefusedOnThisHost(interfaces.errors);
  const warnings: string[] = interfaces.warnings.map(formatPolicyError);
  const entries = policyEntries(policy);
  const published = resolveContainerOpenings(policy, entries, facts, warnings);
  return {
    ipv4: compileFamily("ipv4", policy, entries, facts, published),
    ipv6: compileFamily("ipv6", policy, entries, facts, published),
    sets,
    warnings,
    entries: entries.sources,
  };
}

/** A published port opened to some sources, in host-side terms. */
interface PublishedOpening {
  proto: Proto;
  /** Host-side port(s) the client connects to. */
  ports: PortRange;
  /** The host address it is published on, when Docker bound a specific one. */
  hostIp?: string;
  /** Only for this family (a binding on a specific address), or both when undefined. */
  family?: Family;
  from: Source[];
  comment: string;
  /** The containers entry it comes from. */
  entry: string;
}

function resolveContainerOpenings(policy: Policy, entries: Entries, facts: Facts, warnings: string[]): PublishedOpening[] {
  const out: PublishedOpening[] = [];
  policy.containers.forEach((entry, i) => {
    const id = entries.containers[i]!;
    if (entry.container === undefined) {
      for (const proto of entry.protos) {
        for (const ports of entry.ports) {
          out.push({ proto, ports, from: entry.from, comment: `container ${portText(ports)}/${proto}`, entry: id });
        }
      }
      return;
    }
    out.push(...resolveNamedContainer(entry, id, entry.container, facts, warnings));
  });
  return out;
}

function resolveNamedContainer(entry: ContainerOpening, id: string, name: string, facts: Facts, warnings: string[]): PublishedOpening[] {
  const where = `${entry.loc.file}:${entry.loc.line}:${entry.loc.col}`;
  if (!facts.docker.reachable) {
    warnings.push(`${where}: container "${name}" stays closed: Docker is not reachable`);
    return [];
  }
  const container = facts.docker.containers.find((c) => c.name === name);
  if (!container || !container.running) {
    warnings.push(`${where}: container "${name}" stays closed: it is ${container ? "not running" : "not found"}`);
    return [];
  }
  const out: PublishedOpening[] = [];
  for (const proto of entry.protos) {
    for (const range of entry.ports) {
      const bindings = container.published.filter(
        (b) => b.proto === proto && b.containerPort >= range.from && b.containerPort <= range.to && !isLoopback(b.hostIp),
      );
      if (bindings.length === 0) {
        warnings.push(`${where}: container "${name}" does not publish ${portText(range)}/${proto}: nothing opened`);
      }
      for (const b of dedupeBindings(bindings)) {
        out.push({
          proto,
          ports: { from: b.hostPort, to: b.hostPort },
          ...bindingAddress(b),
          from: entry.from,
          comment: `container ${name} ${b.containerPort}/${proto}`,
          entry: id,
        });
      }
    }
  }
  return out;
}

function isLoopback(ip: string): boolean {
  return ip.startsWith("127.") || ip === "::1";
}

/** 0.0.0.0 and :: are "every address"; Docker 20.10 lists a binding once per family. */
function bindingAddress(b: PublishedPort): { hostIp?: string; family?: Family } {
  if (b.hostIp === "" || b.hostIp === "0.0.0.0" || b.hostIp === "::") return {};
  return { hostIp: b.hostIp, family: b.hostIp.includes(":") ? "ipv6" : "ipv4" };
}

function dedupeBindings(bindings: PublishedPort[]): PublishedPort[] {
  const seen = new Map<string, PublishedPort>();
  for (const b of bindings) {
    const a = bindingAddress(b);
    seen.set(`${a.hostIp ?? "*"}|${b.hostPort}|${b.containerPort}`, b);
  }
  return [...seen.values()].sort((x, y) => x.hostPort - y.hostPort || x.containerPort - y.containerPort);
}

function compileFamily(family: Family, policy: Policy, entries: Entries, facts: Facts, published: PublishedOpening[]): FamilyRules {
  const insideBridges = namedDockerBridges(facts);
  const chains: Chain[] = [
    entryChain("filter", CHAINS.input, CHAINS.inputOutside, policy, insideBridges, true, []),
    { table: "filter", name: CHAINS.inputOutside, rules: hostOutsideRules(family, policy, entries, published) },
    entryChain("mangle", CHAINS.forward, CHAINS.forwardOutside, policy, insideBridges, false, routeRules(policy, entries)),
    { table: "mangle", name: CHAINS.forwardOutside, rules: forwardOutsideRules(family, policy, published) },
  ];
  return {
    family,
    chains,
    jumps: [
      { table: "filter", from: "INPUT", to: CHAINS.input },
      { table: "mangle", from: "FORWARD", to: CHAINS.forward },
    ],
  };
}

/**
 * Sorts traffic into "inside" (loopback, Docker's bridges: returned untouched) and "outside"
 * (goes to the OUTSIDE chain, which decides). With `interfaces:` only those are outside.
 */
function entryChain(
  table: "filter" | "mangle",
  name: string,
  outside: string,
  policy: Policy,
  bridges: string[],
  withLoopback: boolean,
  first: Rule[],
): Chain {
  const rules: Rule[] = [...first];
  if (policy.interfaces !== undefined) {
    for (const iface of policy.interfaces) {
      rules.push({ match: { inIface: iface }, verdict: { kind: "goto", chain: outside }, comment: "outside interface", entry: "interfaces" });
    }
    return { table, name, rules };
  }
  if (withLoopback) rules.push({ match: { inIface: "lo" }, verdict: { kind: "RETURN" }, entry: BUILT_IN.loopback });
  for (const bridge of [...DOCKER_BRIDGE_PATTERNS, ...bridges]) {
    rules.push({ match: { inIface: bridge }, verdict: { kind: "RETURN" }, comment: "from Docker bridges", entry: BUILT_IN.bridges });
  }
  rules.push({ match: {}, verdict: { kind: "goto", chain: outside }, entry: BUILT_IN.outside });
  return { table, name, rules };
}

function routeRules(policy: Policy, entries: Entries): Rule[] {
  return policy.routes.map((r, i) => ({
    match: { inIface: r.in, outIface: r.out },
    verdict: { kind: "RETURN" as const },
    comment: `route ${r.in} to ${r.out}`,
    entry: entries.routes[i]!,
  }));
}

/** The first rules of both OUTSIDE chains: replies pass, broken packets go. */
function stateRules(): Rule[] {
  return [
    { match: { ctstate: ["RELATED", "ESTABLISHED"] }, verdict: { kind: "RETURN" }, entry: BUILT_IN.replies },
    { match: { ctstate: ["INVALID"] }, verdict: { kind: "DROP" }, entry: BUILT_IN.invalid },
  ];
}

function hostOutsideRules(family: Family, policy: Policy, entries: Entries, published: PublishedOpening[]): Rule[] {
  const rules: Rule[] = [];
  // Neighbour discovery comes before the INVALID drop: without it IPv6 stops working at all.
  if (family === "ipv6") {
    for (const type of ICMPV6_NEIGHBOUR_DISCOVERY) {
      rules.push({ match: { proto: "ipv6-icmp", icmpType: type }, verdict: { kind: "RETURN" }, entry: BUILT_IN.neighbourDiscovery });
    }
  }
  rules.push(...stateRules());
  if (policy.icmp === "allow") {
    rules.push(
      family === "ipv4"
        ? { match: { proto: "icmp", icmpType: 8 }, verdict: { kind: "RETURN" }, comment: "ping", entry: "icmp" }
        : { match: { proto: "ipv6-icmp", icmpType: 128 }, verdict: { kind: "RETURN" }, comment: "ping", entry: "icmp" },
    );
  }
  for (const src of sourceMatches(family, policy.trusted)) {
    rules.push({ match: src, verdict: { kind: "RETURN" }, entry: "trusted" });
  }
  policy.host.forEach((entry, i) => rules.push(...openingRules(family, entry, "host", entries.host[i]!)));
  for (const p of published) {
    if (p.family !== undefined && p.family !== family) continue;
    for (const src of sourceMatches(family, p.from)) {
      const dst = p.hostIp === undefined ? {} : { dst: `${p.hostIp}/${family === "ipv4" ? 32 : 128}` };
      rules.push({
        match: { ...src, ...dst, proto: p.proto, dport: p.ports },
        verdict: { kind: "RETURN" },
        comment: `${p.comment} via docker-proxy`,
        entry: p.entry,
      });
    }
  }
  if (policy.swarm) {
    for (const src of sourceMatches(family, policy.swarm.peers)) {
      for (const s of SWARM_PORTS) {
        const match: Match = s.port === undefined ? { ...src, proto: s.proto } : { ...src, proto: s.proto, dport: { from: s.port, to: s.port } };
        rules.push({ match, verdict: { kind: "RETURN" }, comment: `swarm ${s.port ?? ""}${s.port ? "/" : ""}${s.proto}`, entry: "swarm" });
      }
    }
  }
  rules.push(...refusal(family, policy, "filter"));
  return rules;
}

function forwardOutsideRules(family: Family, policy: Policy, published: PublishedOpening[]): Rule[] {
  const rules: Rule[] = [...stateRules()];
  // Docker < 28 lets neighbours reach ports published on 127.0.0.1 when route_localnet is set.
  rules.push({
    match: { ctorigdst: family === "ipv4" ? "127.0.0.0/8" : "::1" },
    verdict: { kind: "DROP" },
    entry: BUILT_IN.publishedOnLoopback,
  });
  for (const src of sourceMatches(family, policy.trusted)) {
    rules.push({ match: { ...src, ctstate: ["DNAT"] }, verdict: { kind: "RETURN" }, entry: "trusted" });
  }
  for (const p of published) {
    if (p.family !== undefined && p.family !== family) continue;
    for (const src of sourceMatches(family, p.from)) {
      const match: Match = { ...src, proto: p.proto, ctstate: ["DNAT"], ctorigdstport: p.ports };
      if (p.hostIp !== undefined) match.ctorigdst = p.hostIp;
      rules.push({ match, verdict: { kind: "RETURN" }, comment: p.comment, entry: p.entry });
    }
  }
  rules.push(...refusal(family, policy, "mangle"));
  return rules;
}

function openingRules(family: Family, entry: Opening, what: string, id: string): Rule[] {
  const rules: Rule[] = [];
  for (const src of sourceMatches(family, entry.from)) {
    for (const proto of entry.protos) {
      for (const ports of entry.ports) {
        rules.push({
          match: { ...src, proto, dport: ports },
          verdict: { kind: "RETURN" },
          comment: `${what} ${portText(ports)}/${proto}`,
          entry: id,
        });
      }
    }
  }
  return rules;
}

/** What happens to everything not allowed: optional rate-limited log, then drop (or reject on INPUT). */
function refusal(family: Family, policy: Policy, table: "filter" | "mangle"): Rule[] {
  const rules: Rule[] = [];
  if (policy.log.drops) {
    rules.push({
      match: { limit: policy.log.rate },
      verdict: { kind: "LOG", prefix: table === "filter" ? "dockwall-drop-in: " : "dockwall-drop-fwd: " },
      entry: "log",
    });
  }
  if (table === "filter" && policy.default === "reject") {
    rules.push({ match: { proto: "tcp" }, verdict: { kind: "REJECT", with: "tcp-reset" }, comment: "default reject", entry: "default" });
    rules.push({
      match: {},
      verdict: { kind: "REJECT", with: family === "ipv4" ? "icmp-port-unreachable" : "icmp6-port-unreachable" },
      comment: "default reject",
      entry: "default",
    });
  } else {
    rules.push({ match: {}, verdict: { kind: "DROP" }, comment: "default drop", entry: "default" });
  }
  return rules;
}

/** One match per source usable in this family; an address of the other family yields none. */
function sourceMatches(family: Family, sources: Source[]): Match[] {
  const out: Match[] = [];
  for (const s of sources) {
    if (s.kind === "any") out.push({});
    else if (s.kind === "group") out.push({ srcSet: setName(s.name, family) });
    else if (s.cidr.family === family) out.push({ src: s.cidr.cidr });
  }
  return out;
}

function portText(p: PortRange): string {
  return p.from === p.to ? `${p.from}` : `${p.from}-${p.to}`;
}
