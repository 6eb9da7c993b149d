/** Groups become ipsets (hash:net, one per family), so members change without touching a rule. */
import type { Family, Group, Policy, Source } from "../policy/types.js";
import type { IpSetSpec } from "../ruleset/types.js";
import { setName } from "./names.js";
import { distinct } from "../policy/addresses.js";

function referencedGroups(policy: Policy): Set<string> {
  const names = new Set<string>();
  const add = (sources: Source[]) => {
    for (const s of sources) if (s.kind === "group") names.add(s.name);
  };
  add(policy.trusted);
  for (const e of policy.host) add(e.from);
  for (const e of policy.containers) add(e.from);
  if (policy.swarm) add(policy.swarm.peers);
  return names;
}

/** The sets a policy needs: a function of the policy alone (its groups), not of the facts. */
export function policySets(policy: Policy): IpSetSpec[] {
  return buildSets(policy.groups, referencedGroups(policy));
}

function buildSets(groups: Group[], referenced: Set<string>): IpSetSpec[] {
  const sets: IpSetSpec[] = [];
  for (const g of [...groups].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (!referenced.has(g.name)) continue;
    sets.push({ name: setName(g.name, "ipv4"), family: "ipv4", members: toIpsetMembers(g.ipv4, "ipv4") });
    sets.push({ name: setName(g.name, "ipv6"), family: "ipv6", members: toIpsetMembers(g.ipv6, "ipv6") });
  }
  return sets;
}

/**
 * Group members are already in ipset's spelling and distinct (policy/types.ts Group), so the
 * kernel's entry count equals the member count; here only /0, which hash:net cannot hold, is split
 * into two /1 halves.
 */
export function toIpsetMembers(members: string[], family: Family): string[] {
  if (!members.some((m) => m.endsWith("/0"))) return members;
  const halves = family === "ipv4" ? ["0.0.0.0/1", "128.0.0.0/1"] : ["::/1", "8000::/1"];
  return distinct(members.flatMap((m) => (m.endsWith("/0") ? halves : [m])));
}
