/**
 * `dockwall audit` from its facts to its answer: the targets (Docker's published ports and the
 * host's other listening sockets, with the process behind each), which "anyone" rows the policy does
 * not declare public, the exit code, and the report as JSON and as text. What cannot be known is said
 * so and answered "cannot tell" (exit 4), never as all clear: with Docker unreachable its published
 * ports are unknown. Pure.
 */
import path from "node:path";
import { describeFirewall, type FirewallReport } from "../facts/firewall-report.js";
import type { Opening, Policy } from "../policy/types.js";
import type { ContainerFacts, DockerFacts } from "../facts/types.js";
import type { ListeningSocket, ListeningSockets } from "../facts/sockets.js";
import type { SavedState } from "../backends/iptables/save-parser.js";
import { escapeControls } from "../policy/quote.js";
import { describeReach, type AuditRow, type AuditTarget } from "./audit.js";
import { words } from "./rule.js";

/** Exit codes (README "exit codes"): 3 something open to anyone that the policy does not declare public, 4 cannot tell. */
export const AUDIT_EXIT = { clear: 0, holes: 3, cannotTell: 4 } as const;

/** A port Docker publishes through Swarm's routing mesh (meshPorts). */
export interface MeshPort {
  proto: "tcp" | "udp";
  port: number;
}

/**
 * The ports Swarm's routing mesh publishes on this node, from Docker's own rules: nat DOCKER-INGRESS
 * DNATs each to the ingress sandbox. No container lists them (the node may run no replica at all,
 * and a replica's container does not list them either) and the Engine API only answers for services
 * on a manager, so the rules are what every node can tell them by. IPv4 only: the mesh has no IPv6.
 */
export function meshPorts(tables: SavedState[]): MeshPort[] {
  const found = new Map<string, MeshPort>();
  for (const t of tables) {
    for (const rule of t.get("nat")?.chains.get("DOCKER-INGRESS")?.rules ?? []) {
      const w = words(rule);
      const at = (option: string) => (w.includes(option) ? w[w.indexOf(option) + 1] : undefined);
      const proto = at("-p");
      const port = Number(at("--dport"));
      if (at("-j") !== "DNAT" || (proto !== "tcp" && proto !== "udp") || !Number.isInteger(port) || port < 1 || port > 65535) continue;
      found.set(`${proto} ${port}`, { proto, port });
    }
  }
  return [...found.values()];
}

/** Docker's published ports (the routing mesh's included) and the host's other listening sockets, one target per family. */
export function auditTargets(containers: ContainerFacts[], sockets: ListeningSocket[], dockerReachable = true, mesh: MeshPort[] = []): AuditTarget[] {
  const targets: AuditTarget[] = [];
  const published = new Set<string>();
  for (const m of mesh) {
    // A socket on the port (dockerd keeps one to reserve it, where the mesh runs) is the mesh's, not a host service.
    published.add(`${m.proto} ${m.port}`);
    targets.push({ kind: "container", proto: m.proto, port: m.port, family: "ipv4", bind: "0.0.0.0", what: `routing mesh ${m.port}/${m.proto}` });
  }
  for (const c of containers.filter((c) => c.running)) {
    for (const p of c.published) {
      const family = p.hostIp.includes(":") ? "ipv6" : "ipv4";
      published.add(`${p.proto} ${p.hostPort}`);
      targets.push({ kind: "container", proto: p.proto, port: p.hostPort, family, bind: p.hostIp || "0.0.0.0", what: `container ${escapeControls(c.name)} ${p.containerPort}/${p.proto}` });
    }
  }
  const key = (s: ListeningSocket) => `${s.proto} ${s.port}`;
  // docker-proxy's sockets are the published ports above.
  const own = sockets.filter((s) => !published.has(key(s)));
  const v4 = new Set(own.filter((s) => s.family === "ipv4").map(key));
  for (const s of own) {
    const process = s.process ? { process: s.process } : {};
    // docker-proxy's socket Docker did not list (Docker not reachable): a published port all the same,
    // which the policy's by-port `containers:` entries may declare public. Only then: a process names
    // itself, and with Docker answering, a "docker-proxy" on a port Docker did not publish is a host socket.
    const proxied = !dockerReachable && s.process?.name === "docker-proxy";
    const [kind, what] = proxied ? (["container", "published port"] as const) : (["host", "host socket"] as const);
    targets.push({ kind, proto: s.proto, port: s.port, family: s.family, bind: s.address, what, ...process });
    // A socket on [::] takes IPv4 too unless it is IPV6_ONLY; with no IPv4 socket on the port, count it for both.
    if (s.family === "ipv6" && s.address === "::" && !v4.has(key(s))) {
      targets.push({ kind, proto: s.proto, port: s.port, family: "ipv4", bind: "0.0.0.0", what: `${what} ([::], dual-stack)`, ...process });
    }
  }
  const seen = new Set<string>();
  return targets
    .filter((t) => {
      const k = `${t.kind} ${t.proto} ${t.port} ${t.family} ${t.bind} ${t.what}`;
      return !seen.has(k) && (seen.add(k), true);
    })
    .sort((a, b) => a.port - b.port || a.proto.localeCompare(b.proto) || a.family.localeCompare(b.family));
}

/** True if the policy opens this target to anyone: reachable by anyone is then as intended. */
export function declaredPublic(policy: Policy | undefined, t: AuditTarget, containers: ContainerFacts[]): boolean {
  if (policy === undefined) return false;
  const opensToAnyone = (o: Opening, port: number) => o.from.some((f) => f.kind === "any") && o.protos.includes(t.proto) && o.ports.some((r) => port >= r.from && port <= r.to);
  if (t.kind === "host") return policy.host.some((o) => opensToAnyone(o, t.port));
  return policy.containers.some((o) => {
    if (o.container === undefined) return opensToAnyone(o, t.port);
    const c = containers.find((c) => c.name === o.container);
    return c?.published.some((p) => p.hostPort === t.port && p.proto === t.proto && opensToAnyone(o, p.containerPort)) ?? false;
  });
}

/**
 * Docker's bridges: packets on them come from containers, never from a stranger, so audit does not
 * trace strangers arriving there. Docker names them; when it cannot be asked, its own rules do:
 * `-o BRIDGE -j DOCKER` in filter (FORWARD on 20.10, DOCKER-BRIDGE on 28) and `-i BRIDGE -j RETURN`
 * in nat DOCKER. Without this a bridge with a name of its own (com.docker.network.bridge.name)
 * would count as an outside interface, and every port as open to anyone through it.
 */
export function auditBridges(docker: DockerFacts, tables: SavedState[]): string[] {
  if (docker.reachable) return docker.networks.flatMap((n) => (n.bridge ? [n.bridge] : []));
  const names = new Set<string>();
  for (const t of tables) {
    for (const chain of t.get("filter")?.chains.values() ?? []) {
      for (const rule of chain.rules) {
        const m = /^-o (\S+) -j DOCKER$/.exec(rule);
        if (m) names.add(m[1]!);
      }
    }
    for (const rule of t.get("nat")?.chains.get("DOCKER")?.rules ?? []) {
      const m = /^-i (\S+) -j RETURN$/.exec(rule);
      if (m) names.add(m[1]!);
    }
  }
  return [...names].sort();
}

export interface AuditFindings {
  rows: AuditRow[];
  /** Rows reachable by anyone that the policy does not declare public. */
  holes: AuditRow[];
  /** The policy file, absolute; undefined without one. */
  policyFile?: string;
  docker: Pick<DockerFacts, "reachable" | "error">;
  sockets: Pick<ListeningSockets, "ownersIncomplete" | "unreadable">;
  /** Which Docker and firewall back end, and who says so. */
  firewall?: FirewallReport;
}

export function auditFindings(rows: AuditRow[], policy: Policy | undefined, file: string | undefined, docker: DockerFacts, sockets: ListeningSockets): AuditFindings {
  const holes = rows.filter((r) => r.reach.who === "anyone" && !declaredPublic(policy, r.target, docker.containers));
  return {
    rows,
    holes,
    ...(file !== undefined ? { policyFile: path.resolve(file) } : {}),
    docker: { reachable: docker.reachable, ...(docker.error !== undefined ? { error: docker.error } : {}) },
    sockets: { ...(sockets.ownersIncomplete !== undefined ? { ownersIncomplete: sockets.ownersIncomplete } : {}), ...(sockets.unreadable ? { unreadable: sockets.unreadable } : {}) },
  };
}

/** A hole found is the answer even when something else is unknown; otherwise anything unknown is "cannot tell". */
export function auditExitCode(f: AuditFindings): number {
  if (f.holes.length > 0) return AUDIT_EXIT.holes;
  if (!f.docker.reachable || f.sockets.unreadable !== undefined || f.rows.some((r) => r.reach.who === "unknown")) return AUDIT_EXIT.cannotTell;
  return AUDIT_EXIT.clear;
}

/** The version of the `audit --json` shape: raised when a field changes meaning or is removed. */
export const AUDIT_FORMAT = 1;

export function auditJson(f: AuditFindings): unknown {
  return {
    format: AUDIT_FORMAT,
    policy: f.policyFile ?? null,
    docker: f.docker.reachable,
    ...(f.docker.error !== undefined ? { dockerError: f.docker.error } : {}),
    publishedPorts: f.docker.reachable ? "listed" : "unknown",
    ...(f.sockets.ownersIncomplete !== undefined ? { processesIncomplete: f.sockets.ownersIncomplete } : {}),
    ...(f.sockets.unreadable !== undefined ? { socketsUnreadable: f.sockets.unreadable } : {}),
    rows: f.rows.map((r) => ({ ...r, intended: !f.holes.includes(r) })),
    ...(f.firewall ? { firewall: f.firewall } : {}),
  };
}

export function humanAudit(f: AuditFindings): string[] {
  const whats = f.rows.map((r) => whatOf(r.target));
  const width = Math.max(34, ...whats.map((w) => w.length + 2));
  const lines = [`${"PORT".padEnd(10)}${"FAMILY".padEnd(7)}${"WHAT".padEnd(width)}WHO CAN CONNECT`];
  f.rows.forEach((r, i) => {
    const t = r.target;
    const mark = f.holes.includes(r) ? "   <- open to anyone, not in the policy" : "";
    const who = r.reach.who === "unknown" ? `unknown: ${r.reach.reason}` : describeReach(r.reach);
    lines.push(`${`${t.port}/${t.proto}`.padEnd(10)}${(t.family === "ipv4" ? "IPv4" : "IPv6").padEnd(7)}${whats[i]!.padEnd(width)}${who}${mark}`);
  });
  if (f.firewall) lines.push(escapeControls(describeFirewall(f.firewall)));
  if (f.sockets.ownersIncomplete !== undefined) lines.push(`(a socket's process may be missing: ${escapeControls(f.sockets.ownersIncomplete)})`);
  const declared = f.policyFile ? `what ${escapeControls(f.policyFile)} declares public` : "nothing";
  if (f.holes.length > 0) {
    lines.push(`${f.holes.length} open to anyone${f.policyFile ? ` that ${escapeControls(f.policyFile)} does not declare public` : " (no policy file to say it is intended)"}`);
  }
  if (!f.docker.reachable) {
    const why = f.docker.error !== undefined ? `: ${escapeControls(f.docker.error)}` : "";
    lines.push(`published ports: UNKNOWN, Docker is not reachable${why}`);
    lines.push("  a port Docker publishes without docker-proxy is not listed above, and may be open to anyone; a rule naming a container cannot be told from a hole");
  }
  if (f.sockets.unreadable !== undefined) lines.push(`host sockets: some cannot be read (${f.sockets.unreadable.map(escapeControls).join("; ")}): sockets may be missing above`);
  if (f.holes.length === 0) {
    const unknown = f.rows.filter((r) => r.reach.who === "unknown").length;
    if (!f.docker.reachable || unknown > 0 || f.sockets.unreadable !== undefined) {
      const what = [
        !f.docker.reachable ? "Docker's published ports are unknown" : "",
        f.sockets.unreadable !== undefined ? "some host sockets cannot be read" : "",
        unknown > 0 ? `${unknown} verdict${unknown === 1 ? "" : "s"} unknown` : "",
      ]
        .filter(Boolean)
        .join(", ");
      lines.push(`cannot tell: ${what}; of the rest, nothing open to anyone beyond ${declared}`);
    } else {
      lines.push(`nothing open to anyone beyond ${declared}`);
    }
  }
  return lines;
}

/** "host socket: sshd (pid 812)"; the name is the process's own choice, shown escaped. */
function whatOf(t: AuditTarget): string {
  return t.process ? `${t.what}: ${escapeControls(t.process.name)} (pid ${t.process.pid})` : t.what;
}
