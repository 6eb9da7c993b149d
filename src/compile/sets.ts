/** Groups become ipsets (hash:net, one per family), so members change without touching a rule. */
import type { Family, Group, Policy, Source } from "../policy/types.js";
import type { IpSetSpec } from "../ruleset/types.js";
import { setName } from "./names.js";

export function referencedGroups(policy: Policy): Set<string> {
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

export function buildSets(groups: Group[], referenced: Set<string>): IpSetSpec[] {
  const sets: IpSetSpec[] = [];
  for (const g of [...groups].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (!referenced.has(g.name)) continue;
    sets.push({ name: setName(g.name, "ipv4"), family: "ipv4", members: toIpsetMembers(g.ipv4, "ipv4") });
    sets.push({ name: setName(g.name, "ipv6"), family: "ipv6", members: toIpsetMembers(g.ipv6, "ipv6") });
  }
  return sets;
}

/**
 * ipset's own spelling, so what we write compares equal to what `ipset save` prints:
 * no /32 or /128 suffix, and /0 (which hash:net cannot hold) split into two /1 halves; duplicates
 * dropped, first occurrence kept.
 */
export function toIpsetMembers(cidrs: string[], family: Family): string[] {
  const full = family === "ipv4" ? "/32" : "/128";
  const out = new Set<string>();
  for (const c of cidrs) {
    if (c.endsWith("/0")) {
      for (const half of family === "ipv4" ? ["0.0.0.0/1", "128.0.0.0/1"] : ["::/1", "8000::/1"]) out.add(half);
    } else if (c.endsWith(full)) {
      out.add(c.slice(0, -full.length));
    } else {
      out.add(c);
    }
  }
  // Input order (group file order) is already deterministic; sorting 100,000 members costs ~90 ms.
  return [...out];
}
