/**
 * What a desired state holds, as one digest: two states with the same digest put the same rules,
 * jumps and set members in the kernel. Chains and sets are compared as sets (the kernel keeps no
 * order between them), rules in order, set members as sets.
 */
import { createHash } from "node:crypto";
import type { DesiredState } from "../backends/rendered.js";
import type { RenderedFamily } from "../backends/iptables/render.js";
import type { IpSetSpec } from "../ruleset/types.js";

export function stateDigest(state: DesiredState): string {
  const hash = createHash("sha256");
  for (const f of [state.ipv4, state.ipv6]) hash.update(familyText(f));
  for (const s of [...state.sets].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) hash.update(`set ${s.name} ${s.family} ${membersAsSetDigest(s)}\n`);
  return hash.digest("hex");
}

export function sameState(a: DesiredState, b: DesiredState): boolean {
  return a === b || stateDigest(a) === stateDigest(b);
}

/** A set's members as a digest, independent of their order. */
function membersAsSetDigest(set: IpSetSpec): string {
  return createHash("sha256").update([...set.members].sort().join("\n")).digest("hex");
}

function familyText(f: RenderedFamily): string {
  // JSON of each part: no rule text can make two different states print alike.
  const chains = f.chains.map((c) => JSON.stringify([c.table, c.name, c.rules])).sort();
  const jumps = f.jumps.map((j) => JSON.stringify([j.table, j.from, j.to, j.spec])).sort();
  return JSON.stringify([f.family, chains, jumps]) + "\n";
}
