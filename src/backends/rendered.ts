/** render(ruleset): the whole of what dockwall puts in the kernel, as text per family plus set members. */
import type { IpSetSpec, Ruleset } from "../ruleset/types.js";
import { renderFamily, type RenderedFamily } from "./iptables/render.js";

/** Everything dockwall puts in the kernel: the unit that is applied, saved and rolled back. */
export interface DesiredState {
  ipv4: RenderedFamily;
  ipv6: RenderedFamily;
  sets: IpSetSpec[];
}

export function render(ruleset: Ruleset): DesiredState {
  return { ipv4: renderFamily(ruleset.ipv4), ipv6: renderFamily(ruleset.ipv6), sets: ruleset.sets };
}

/** No dockwall at all: applying it is `remove`. */
export function emptyState(): DesiredState {
  return { ipv4: { family: "ipv4", chains: [], jumps: [] }, ipv6: { family: "ipv6", chains: [], jumps: [] }, sets: [] };
}
