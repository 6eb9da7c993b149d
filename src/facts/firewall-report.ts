/**
 * Which Docker, which firewall back end, which iptables: told, not guessed (`status`, `audit`).
 *
 * The back end comes from Docker's own word where it has one (`FirewallBackend.Driver` in /info,
 * Docker 28.1 on). A Docker that answers without it is older than 28.1, and those have only the
 * iptables back end. With Docker unreachable the live tables are the only witness: Docker's
 * nftables back end keeps its rules in the `docker-bridges` tables (../shared/docker-rules/
 * nftables-v29), its iptables back end in chains named DOCKER in the filter table.
 */
import type { Runner } from "../exec/runner.js";
import type { DockerFacts, HostFacts, IptablesVariant } from "./types.js";

export interface FirewallReport {
  /** The Engine's version, or undefined when it could not be asked. */
  dockerVersion: string | undefined;
  /** "iptables", "nftables", "iptables+firewalld", ... or "unknown" when nothing tells. */
  backend: string;
  /** Who said so: Docker itself, its version (before 28.1), the tables in the kernel, or nobody. */
  backendFrom: "docker" | "docker version" | "live tables" | "none";
  /** The iptables variant dockwall writes to (the one that holds Docker's chains). */
  iptables: IptablesVariant;
}

/** What the kernel holds of Docker's, read only when Docker cannot be asked. */
export interface LiveDockerTables {
  nftablesBackend: boolean;
  iptablesChains: boolean;
}

/** Docker's back-end names are short words; anything else from a hostile engine is not repeated. */
const BACKEND_NAME = /^[a-z0-9][a-z0-9+._-]{0,39}$/;

export function firewallReport(docker: DockerFacts, host: HostFacts, live?: LiveDockerTables): FirewallReport {
  const base = { dockerVersion: docker.reachable ? docker.version : undefined, iptables: host.iptables };
  if (docker.reachable) {
    const said = docker.firewallBackend;
    if (said !== undefined) return { ...base, backend: BACKEND_NAME.test(said) ? said : "unknown", backendFrom: "docker" };
    return { ...base, backend: "iptables", backendFrom: "docker version" };
  }
  if (live?.nftablesBackend) return { ...base, backend: "nftables", backendFrom: "live tables" };
  if (live?.iptablesChains) return { ...base, backend: "iptables", backendFrom: "live tables" };
  return { ...base, backend: "unknown", backendFrom: "none" };
}

/** One line: "Docker 28.5.2, firewall back end iptables (Docker says so); dockwall writes iptables-nft". */
export function describeFirewall(r: FirewallReport): string {
  const docker = r.dockerVersion === undefined ? "Docker not reachable" : `Docker ${r.dockerVersion}`;
  const from = {
    docker: "Docker says so",
    "docker version": "Docker before 28.1 has no other",
    "live tables": "from the rules in the kernel",
    none: "Docker not reachable and no Docker rules in the kernel",
  }[r.backendFrom];
  return `${docker}, firewall back end ${r.backend} (${from}); dockwall writes iptables-${r.iptables}`;
}

/** Lists the kernel's nftables tables and the filter table's chains of the variant dockwall would use. */
export async function readLiveDockerTables(runner: Runner, variant: IptablesVariant): Promise<LiveDockerTables> {
  const [tables, filter] = await Promise.all([
    runner.run("nft", ["list", "tables"]).catch(() => undefined),
    runner.run(`iptables-${variant}-save`, ["-t", "filter"]).catch(() => undefined),
  ]);
  return {
    nftablesBackend: !!tables && tables.code === 0 && /^table ip6? docker-bridges$/m.test(tables.stdout),
    iptablesChains: !!filter && filter.code === 0 && /^:DOCKER(-USER)? /m.test(filter.stdout),
  };
}
