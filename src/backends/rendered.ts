/** render(ruleset): the whole of what dockwall puts in the kernel, as text per family plus set members. */
import type { IpSetSpec, Ruleset } from "../ruleset/types.js";
import { renderFamily, type RenderedFamily } from "./iptables/render.js";
import type { EntrySource } from "../compile/entries.js";

/** Everything dockwall puts in the kernel: the unit that is applied, saved and rolled back. */
export interface DesiredState {
  ipv4: RenderedFamily;
  ipv6: RenderedFamily;
  sets: IpSetSpec[];
  /**
   * Where the policy entries the rules name were written (their ids are in the rules' comments):
   * `explain` and the metrics name FILE:LINE by it. Absent in records written before it existed,
   * and in states that come from no policy file (the lock-down, what the kernel held).
   */
  entries?: EntrySource[];
}

export function render(ruleset: Ruleset): DesiredState {
  return { ipv4: renderFamily(ruleset.ipv4), ipv6: renderFamily(ruleset.ipv6), sets: ruleset.sets, entries: ruleset.entries };
}

/** No dockwall at all: applying it is `remove`. */
export function emptyState(): DesiredState {
  return { ipv4: { family: "ipv4", chains: [], jumps: [] }, ipv6: { family: "ipv6", chains: [], jumps: [] }, sets: [] };
}
