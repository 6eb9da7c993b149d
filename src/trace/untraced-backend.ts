/**
 * Docker's nftables back end keeps its DNAT and forward rules in its own `docker-bridges` tables,
 * which iptables-save never shows and the tracer does not read yet. Where such a rule may decide, a
 * verdict traced through iptables alone could be the wrong path's: it is "unknown" ("cannot tell"),
 * never "nobody". Pure.
 */
import type { AuditRow } from "./audit.js";
import type { TraceResult } from "./trace.js";

export const UNTRACED_NFTABLES = "Docker uses its nftables back end, whose docker-bridges rules the tracer does not read yet";

function untraced(backend: string | undefined): boolean {
  return backend?.startsWith("nftables") === true;
}

/** audit: a published port's path runs through Docker's tables; host sockets' (INPUT) holds none of Docker's rules. */
export function untracedPublishedPorts(rows: AuditRow[], backend: string | undefined): AuditRow[] {
  if (!untraced(backend)) return rows;
  return rows.map((r) => (r.target.kind === "container" && r.reach.who !== "local only" ? { ...r, reach: { who: "unknown", reason: UNTRACED_NFTABLES } } : r));
}

/** explain: any destination may be a published port Docker DNATs in its own tables, so no verdict is given. */
export function untracedVerdict(result: TraceResult, backend: string | undefined): TraceResult {
  return untraced(backend) ? { ...result, verdict: "unknown", reason: UNTRACED_NFTABLES } : result;
}
