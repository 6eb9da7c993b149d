/**
 * The policy's interface names against the host's. `interfaces:` decides which traffic is outside
 * (filtered); everything else is let through. So a name the host does not have (a typo, eth1 for
 * eth0) would filter nothing where traffic really comes in and leave every port open: it is an error,
 * as is one of Docker's bridges (container traffic is not outside traffic). A wildcard (wg+) may name
 * interfaces that come later: matching nothing yet is only a warning. Pure.
 */
import type { Facts, HostInterface } from "../facts/types.js";
import type { PolicyError } from "../policy/errors.js";
import type { Location, Policy } from "../policy/types.js";

/** Docker's bridges by name: docker0, docker_gwbridge and br-<id> (iptables wildcards). */
export const DOCKER_BRIDGE_PATTERNS = ["docker+", "br-+"];

/** The policy cannot be applied to this host as it is: every error, where the policy says it. */
export class RefusedOnThisHost extends Error {
  constructor(readonly errors: PolicyError[]) {
    super(errors.map((e) => e.message).join("\n"));
  }
}

export interface InterfaceFindings {
  errors: PolicyError[];
  warnings: PolicyError[];
}

/** Bridges of Docker's networks whose names the wildcards do not cover (com.docker.network.bridge.name). */
export function namedDockerBridges(facts: Facts): string[] {
  const named = facts.docker.networks
    .map((n) => n.bridge)
    .filter((b): b is string => b !== undefined && !DOCKER_BRIDGE_PATTERNS.some((p) => matches(p, b)));
  return [...new Set(named)].sort();
}

/**
 * `host`: its interfaces, and the bridges of Docker's networks named by com.docker.network.bridge.name
 * (namedDockerBridges; none known without Docker). `hostIsTarget`: these are the interfaces of the
 * host the policy is applied to (plan, apply, watch), so a missing one is an error; `check` may run
 * on a workstation for another host, so there it is a warning (pipeline.ts checkInterfacesHere).
 */
export function checkInterfaces(policy: Policy, host: { interfaces: HostInterface[]; namedBridges: string[] }, hostIsTarget: boolean): InterfaceFindings {
  const found: InterfaceFindings = { errors: [], warnings: [] };
  const at = (loc: Location, message: string) => ({ ...loc, message });
  const present = host.interfaces.map((i) => i.name);
  const bridges = [...DOCKER_BRIDGE_PATTERNS, ...host.namedBridges];
  for (const name of policy.interfaces ?? []) {
    const loc = policy.interfaceLocations?.get(name) ?? { file: policy.file, line: 1, col: 1 };
    const quoted = JSON.stringify(name);
    const inside = [...bridges, "lo"].filter((b) => overlaps(name, b));
    if (inside.length > 0) {
      const what = inside.includes("lo") ? "lo (always allowed)" : `Docker's bridges (${inside.join(", ")})`;
      found.errors.push(at(loc, `${quoted} ${isWildcard(name) ? "also matches" : "is one of"} ${what}: traffic from containers and the host itself is not outside traffic; list the interfaces this host is reached on from outside${outsideList(host)}`));
    } else if (isWildcard(name)) {
      if (!present.some((p) => matches(name, p))) found.warnings.push(at(loc, `${quoted} matches no interface of this host yet: interfaces it matches are filtered when they appear`));
    } else if (!present.includes(name)) {
      found[hostIsTarget ? "errors" : "warnings"].push(
        at(loc, hostIsTarget
          ? `interface ${quoted} does not exist on this host${outsideList(host)}: nothing would be filtered where traffic really comes in (an interface that comes later needs a wildcard, such as wg+)`
          : `interface ${quoted} does not exist on this host${outsideList(host)}: fine if the policy is for another host; plan and apply refuse it on a host without it`),
      );
    }
  }
  // A route naming a missing interface only ever fails to let traffic through: a warning.
  for (const route of policy.routes) {
    for (const name of [route.in, route.out]) {
      if (!present.some((p) => matches(name, p))) found.warnings.push(at(route.loc, `route: interface ${JSON.stringify(name)} does not exist on this host (yet): the route lets nothing through until it does`));
    }
  }
  return found;
}

function isWildcard(name: string): boolean {
  return name.endsWith("+");
}

/** iptables' -i: a trailing + matches every name with that prefix. */
function matches(pattern: string, name: string): boolean {
  return isWildcard(pattern) ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

/** Whether some interface name could match both (each a name or a wildcard). */
function overlaps(a: string, b: string): boolean {
  if (!isWildcard(a)) return matches(b, a);
  if (!isWildcard(b)) return matches(a, b);
  const [pa, pb] = [a.slice(0, -1), b.slice(0, -1)];
  return pa.startsWith(pb) || pb.startsWith(pa);
}

/** " (its outside interfaces: eth0, wg0)": what the user probably meant. */
function outsideList(host: { interfaces: HostInterface[]; namedBridges: string[] }): string {
  const outside = host.interfaces.map((i) => i.name).filter((n) => n !== "lo" && !/^(veth|docker|br-)/.test(n) && !host.namedBridges.includes(n));
  if (outside.length === 0) return "";
  const shown = outside.slice(0, 12).join(", ");
  return ` (its outside interfaces: ${shown}${outside.length > 12 ? ", ..." : ""})`;
}
