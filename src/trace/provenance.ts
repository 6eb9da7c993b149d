/**
 * Which policy line a traced dockwall rule comes from. A rule read from the kernel carries its
 * entry's id in its comment (entry-tag.ts); the applied record says where each entry was written
 * (DesiredState.entries). Only dockwall's own chains are looked at: another tool's comment that
 * happens to look like a tag names nothing of ours. Pure.
 */
import { CHAIN_PREFIX } from "../ruleset/types.js";
import { BUILT_IN, KEY_ENTRIES, type EntrySource } from "../compile/entries.js";
import { commentOfSpec, entryOfComment } from "../backends/iptables/entry-tag.js";
import type { TraceStep } from "./trace.js";

export type EntryOrigin =
  /** Written in the policy file, at file:line:col. */
  | { kind: "policy"; id: string; file: string; line: number; col: number }
  /** A top-level key (default, icmp, log, ...) left unwritten: its default made the rule. */
  | { kind: "default"; id: string }
  /** A rule dockwall always writes (replies, loopback, Docker's bridges, ...). */
  | { kind: "built-in"; id: string }
  /** Tagged, but the applied record does not list it (another record's rules, or no record). */
  | { kind: "unlisted"; id: string }
  /** A dockwall rule with no tag: written by a dockwall from before tags. */
  | { kind: "untagged" };

const BUILT_IN_IDS: ReadonlySet<string> = new Set(Object.values(BUILT_IN));
const KEY_IDS: ReadonlySet<string> = new Set(KEY_ENTRIES);

/** Where a traced step's rule comes from; undefined when it is not a rule of a dockwall chain. */
export function stepOrigin(step: TraceStep, entries: ReadonlyMap<string, EntrySource> | undefined): EntryOrigin | undefined {
  if (!step.chain.startsWith(CHAIN_PREFIX) || step.index === 0) return undefined;
  const comment = commentOfSpec(step.rule);
  const id = comment === undefined ? undefined : entryOfComment(comment);
  if (id === undefined) return { kind: "untagged" };
  const source = entries?.get(id);
  if (source !== undefined) return { kind: "policy", id, file: source.file, line: source.line, col: source.col };
  if (BUILT_IN_IDS.has(id)) return { kind: "built-in", id };
  // A key's rule with no position: the key was not written (or the record predates positions).
  if (KEY_IDS.has(id) && entries !== undefined) return { kind: "default", id };
  return { kind: "unlisted", id };
}

export interface DockwallDecision {
  /** What dockwall did with the packet: let it on (RETURN) or refuse it (DROP, REJECT). */
  outcome: "allowed" | "refused";
  /** The step, 0-based, in the trace's steps. */
  step: number;
  /** The rule's description, its comment without the tag. */
  description: string;
  origin: EntryOrigin;
}

/**
 * The dockwall rule that had the last word on the packet: the last step in a dockwall chain that
 * ended dockwall's say (a RETURN out of its chains, a DROP or a REJECT). Undefined when the packet
 * met no dockwall rule that decided (no dockwall rules, or only jumps and logs).
 */
export function dockwallDecision(steps: readonly TraceStep[], entries: ReadonlyMap<string, EntrySource> | undefined): DockwallDecision | undefined {
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = steps[i]!;
    if (!step.chain.startsWith(CHAIN_PREFIX) || !["RETURN", "DROP", "REJECT"].includes(step.action)) continue;
    const origin = stepOrigin(step, entries);
    if (origin === undefined) continue;
    const comment = commentOfSpec(step.rule) ?? "";
    const description = comment.replace(/^\[[^\]]*\] ?/, "");
    return { outcome: step.action === "RETURN" ? "allowed" : "refused", step: i, description, origin };
  }
  return undefined;
}

/** The explain line for a decision: "refused by /etc/dockwall/dockwall.yaml:28 (default drop)". */
export function decisionLine(d: DockwallDecision, policyFile?: string): string {
  const what = d.description === "" ? "" : ` (${d.description})`;
  const o = d.origin;
  switch (o.kind) {
    case "policy":
      return `${d.outcome} by ${o.file}:${o.line}${what}`;
    case "default":
      return `${d.outcome} by "${o.id}:", which ${policyFile ?? "the policy"} leaves to its default${what}`;
    case "built-in":
      return `${d.outcome} by a rule dockwall always writes, [${o.id}]${what}`;
    case "unlisted":
      return `${d.outcome} by entry ${o.id}${what}; the applied record does not list it, so its policy line is unknown`;
    case "untagged":
      return `${d.outcome} by a dockwall rule without an entry tag${what} (applied by an older dockwall: apply again to tag it)`;
  }
}
