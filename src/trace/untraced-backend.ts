/**
 * Docker's nftables back end keeps its DNAT and forward rules in its own `docker-bridges` tables,
 * which iptables-save never shows: the tracer reads them from `nft -j list ruleset` (nft/). Where
 * that could not be read (no nft on the host, or it failed), a verdict traced through iptables alone
 * could be the wrong path's: it is "unknown" ("cannot tell"), never "nobody". Pure.
 */
import type { AuditRow } from "./audit.js";
import type { TraceResult } from "./trace.js";
import type { NftRuleset } from "./nft/ruleset.js";

export const UNTRACED_NFTABLES = "Docker uses its nftables back end, and its docker-bridges rules could not be read";

/** Why the tracer cannot see Docker's rules on this host; undefined where it can (or Docker uses iptables). */
function untraced(backend: string | undefined, nft: Pick<NftRuleset, "unreadable">): string | undefined {
  if (backend?.startsWith("nftables") !== true || nft.unreadable === undefined) return undefined;
  return `${UNTRACED_NFTABLES} (${nft.unreadable})`;
}

/** audit: a published port's path runs through Docker's tables; host sockets' (INPUT) holds none of Docker's rules. */
export function untracedPublishedPorts(rows: AuditRow[], backend: string | undefined, nft: Pick<NftRuleset, "unreadable">): AuditRow[] {
  const reason = untraced(backend, nft);
  if (reason === undefined) return rows;
  return rows.map((r) => (r.target.kind === "container" && r.reach.who !== "local only" ? { ...r, reach: { who: "unknown", reason } } : r));
}

/** explain: any destination may be a published port Docker DNATs in its own tables, so no verdict is given. */
export function untracedVerdict(result: TraceResult, backend: string | undefined, nft: Pick<NftRuleset, "unreadable">): TraceResult {
  const reason = untraced(backend, nft);
  return reason === undefined ? result : { ...result, verdict: "unknown", reason };
}
