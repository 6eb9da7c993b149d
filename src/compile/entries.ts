/**
 * Policy entries: what each compiled rule comes from, by an id that is
 *   - stable: made from what the entry says (its kind and its normalised content), not from where it
 *     stands, so adding, removing or moving other entries (or reformatting this one) keeps it;
 *   - unique: a second entry with the same id (a duplicate, or a hash collision) gets `-2`, `-3`, ...
 *     in the order written.
 * The id is written into the rule's comment (render.ts) and so read back from the kernel with the
 * rule's counters; the applied record keeps id -> FILE:LINE:COL (DesiredState.entries), which is how
 * `explain` and the metrics name the policy line behind a rule. Pure.
 */
import { createHash } from "node:crypto";
import type { ContainerOpening, Location, Opening, Policy, PortRange, Route, RuleKey, Source } from "../policy/types.js";

/** Rules that follow from no line of the policy: dockwall always writes them. */
export const BUILT_IN = {
  loopback: "loopback",
  bridges: "bridges",
  outside: "outside",
  replies: "replies",
  invalid: "invalid",
  neighbourDiscovery: "neighbour-discovery",
  publishedOnLoopback: "published-on-loopback",
} as const;

/** Each top-level key that makes rules has one entry, its id the key's name (its default when not written). */
export const KEY_ENTRIES: readonly RuleKey[] = ["interfaces", "trusted", "swarm", "icmp", "default", "log"];

/** What an id looks like: a word of lower-case letters, digits and '-', starting with a letter. */
export const ENTRY_ID = /^[a-z][a-z0-9-]{0,39}$/;

/** A policy entry as the applied record keeps it: where it was written. */
export interface EntrySource {
  id: string;
  file: string;
  line: number;
  col: number;
}

export interface Entries {
  /** The ids of policy.host, policy.containers and policy.routes, index for index. */
  host: string[];
  containers: string[];
  routes: string[];
  /** Every entry written in the policy file (list entries and keys), with its position. */
  sources: EntrySource[];
}

export function policyEntries(policy: Policy): Entries {
  const taken = new Set<string>([...Object.values(BUILT_IN), ...KEY_ENTRIES]);
  const sources: EntrySource[] = [];
  const name = (kind: string, content: unknown, loc: Location): string => {
    const base = `${kind}-${createHash("sha256").update(JSON.stringify(content)).digest("hex").slice(0, 8)}`;
    let id = base;
    for (let n = 2; taken.has(id); n++) id = `${base}-${n}`;
    taken.add(id);
    sources.push({ id, file: loc.file, line: loc.line, col: loc.col });
    return id;
  };
  const host = policy.host.map((e) => name("host", openingContent(e), e.loc));
  const containers = policy.containers.map((e) => name("container", { container: e.container ?? null, ...openingContent(e) }, e.loc));
  const routes = policy.routes.map((r: Route) => name("route", { in: r.in, out: r.out }, r.loc));
  for (const key of KEY_ENTRIES) {
    const loc = policy.keyLocations?.[key];
    if (loc !== undefined) sources.push({ id: key, file: loc.file, line: loc.line, col: loc.col });
  }
  return { host, containers, routes, sources };
}

/** An opening's content, in an order-free form: `port: [443, 80]` is the entry `port: [80, 443]`. */
function openingContent(e: Opening | ContainerOpening): Record<string, string[]> {
  const sorted = (xs: string[]) => [...new Set(xs)].sort();
  return {
    ports: sorted(e.ports.map((p: PortRange) => `${p.from}-${p.to}`)),
    protos: sorted(e.protos),
    from: sorted(e.from.map(sourceText)),
  };
}

function sourceText(s: Source): string {
  if (s.kind === "any") return "any";
  if (s.kind === "group") return `group:${s.name}`;
  return s.cidr.cidr;
}
