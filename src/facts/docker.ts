/**
 * Docker as the Engine API reports it: containers, their published ports and addresses, networks
 * and their bridge interfaces, and the firewall back end. Read-only.
 */
import type { Proto } from "../policy/types.js";
import { engineGet, endpointFromEnv, type EngineEndpoint } from "./engine-api.js";
import type { ContainerFacts, DockerFacts, NetworkFacts, PublishedPort } from "./types.js";

interface ApiContainer {
  Id: string;
  Names?: string[];
  State?: string;
  Ports?: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[];
  NetworkSettings?: { Networks?: Record<string, { IPAddress?: string; GlobalIPv6Address?: string }> };
}

interface ApiNetwork {
  Id: string;
  Name: string;
  Driver: string;
  Options?: Record<string, string>;
  IPAM?: { Config?: { Subnet?: string }[] | null };
}

interface ApiInfo {
  ServerVersion?: string;
  FirewallBackend?: { Driver?: string };
}

/** Never throws: an unreachable Engine gives `reachable: false` and the reason. */
export async function readDockerFacts(endpoint: EngineEndpoint = endpointFromEnv()): Promise<DockerFacts> {
  try {
    const [info, containers, networks] = await Promise.all([
      engineGet<ApiInfo>(endpoint, "/info"),
      engineGet<ApiContainer[]>(endpoint, "/containers/json?all=1"),
      engineGet<ApiNetwork[]>(endpoint, "/networks"),
    ]);
    return {
      reachable: true,
      version: info.ServerVersion,
      firewallBackend: info.FirewallBackend?.Driver,
      containers: containers.map(toContainerFacts).sort((a, b) => a.name.localeCompare(b.name)),
      networks: networks.map(toNetworkFacts).sort((a, b) => a.name.localeCompare(b.name)),
    };
  } catch (e) {
    return { reachable: false, error: (e as Error).message, containers: [], networks: [] };
  }
}

export function toContainerFacts(c: ApiContainer): ContainerFacts {
  const nets = c.NetworkSettings?.Networks ?? {};
  const published: PublishedPort[] = [];
  for (const p of c.Ports ?? []) {
    if (p.PublicPort === undefined || (p.Type !== "tcp" && p.Type !== "udp")) continue;
    published.push({ hostIp: p.IP ?? "0.0.0.0", hostPort: p.PublicPort, containerPort: p.PrivatePort, proto: p.Type as Proto });
  }
  return {
    id: c.Id,
    name: (c.Names?.[0] ?? c.Id.slice(0, 12)).replace(/^\//, ""),
    running: c.State === "running",
    published,
    addresses: Object.values(nets)
      .flatMap((n) => [n.IPAddress, n.GlobalIPv6Address])
      .filter((a): a is string => !!a),
    networks: Object.keys(nets).sort(),
  };
}

/** Docker names a bridge docker0 (default network), its bridge.name option, or br-<first 12 of id>. */
export function toNetworkFacts(n: ApiNetwork): NetworkFacts {
  const named = n.Options?.["com.docker.network.bridge.name"];
  return {
    id: n.Id,
    name: n.Name,
    driver: n.Driver,
    bridge: n.Driver === "bridge" ? (named ?? `br-${n.Id.slice(0, 12)}`) : undefined,
    subnets: (n.IPAM?.Config ?? []).map((c) => c.Subnet).filter((s): s is string => !!s),
  };
}
