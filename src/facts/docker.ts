/**
 * Docker as the Engine API reports it: containers, their published ports and addresses, networks
 * and their bridge interfaces, and the firewall back end. Read-only.
 */
import type { Proto } from "../policy/types.js";
import ipaddr from "ipaddr.js";
import { EngineApiError, engineGet, endpointFromEnv, type EngineEndpoint } from "./engine-api.js";
import { interfaceNameProblem } from "../policy/interface-name.js";
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

/**
 * Never throws for the Engine: an unreachable one, or an answer not shaped as Docker's, gives
 * `reachable: false` and the reason. Rejects with DockerHostInvalid for a DOCKER_HOST it cannot use.
 */
export async function readDockerFacts(endpoint: EngineEndpoint = endpointFromEnv()): Promise<DockerFacts> {
  try {
    const [info, containers, networks] = await Promise.all([
      engineGet<unknown>(endpoint, "/info").then((v) => checked<ApiInfo>("/info", v, checkInfo)),
      engineGet<unknown>(endpoint, "/containers/json?all=1").then((v) => checked<ApiContainer[]>("/containers/json", v, (c) => list(c, checkContainer))),
      engineGet<unknown>(endpoint, "/networks").then((v) => checked<ApiNetwork[]>("/networks", v, (n) => list(n, checkNetwork))),
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

/**
 * Only /info: the Engine's version and firewall back end, for `status` (which needs no container).
 * Never throws for the Engine, as readDockerFacts.
 */
export async function readEngineInfo(endpoint: EngineEndpoint = endpointFromEnv()): Promise<DockerFacts> {
  try {
    const info = checked<ApiInfo>("/info", await engineGet<unknown>(endpoint, "/info"), checkInfo);
    return { reachable: true, version: info.ServerVersion, firewallBackend: info.FirewallBackend?.Driver, containers: [], networks: [] };
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

/**
 * What answers at DOCKER_HOST may not be Docker, and what it says goes into rules (ports, addresses,
 * bridge names): an answer that is not shaped as Docker's makes Docker "not reachable" (rules naming
 * a container stay closed), never a rule built from it. Returns the problem, or undefined.
 */
type Check = (value: unknown) => string | undefined;

function checked<T>(path: string, value: unknown, check: Check): T {
  const problem = check(value);
  if (problem !== undefined) throw new EngineApiError(`GET ${path}: the answer is not what the Docker Engine sends (${problem})`);
  return value as T;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const optional = (v: unknown, ok: (v: unknown) => boolean) => v === undefined || v === null || ok(v);
const isString = (v: unknown) => typeof v === "string";
const isPort = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 65535;
const isAddress = (v: unknown) => v === "" || (typeof v === "string" && ipaddr.isValid(v) && (ipaddr.IPv4.isValidFourPartDecimal(v) || v.includes(":")));

function list(value: unknown, each: Check): string | undefined {
  if (!Array.isArray(value)) return "not a list";
  for (const [i, item] of value.entries()) {
    const problem = each(item);
    if (problem !== undefined) return `item ${i}: ${problem}`;
  }
  return undefined;
}

function checkInfo(v: unknown): string | undefined {
  if (!isObject(v)) return "not an object";
  if (!optional(v.ServerVersion, isString)) return "ServerVersion is not a string";
  if (!optional(v.FirewallBackend, (b) => isObject(b) && optional(b.Driver, isString))) return "FirewallBackend is not an object with a Driver string";
  return undefined;
}

function checkContainer(v: unknown): string | undefined {
  if (!isObject(v) || !isString(v.Id) || v.Id === "") return "not a container with an Id";
  if (!optional(v.Names, (n) => Array.isArray(n) && n.every(isString))) return "Names is not a list of strings";
  if (!optional(v.State, isString)) return "State is not a string";
  const portOk = (p: unknown) =>
    isObject(p) && isString(p.Type) && isPort(p.PrivatePort) && optional(p.PublicPort, isPort) && optional(p.IP, isAddress);
  if (!optional(v.Ports, (ps) => Array.isArray(ps) && ps.every(portOk))) return "Ports are not ports (Type, PrivatePort and PublicPort 0-65535, IP an address)";
  const networkOk = (n: unknown) => isObject(n) && optional(n.IPAddress, isAddress) && optional(n.GlobalIPv6Address, isAddress);
  const networks = isObject(v.NetworkSettings) ? v.NetworkSettings.Networks : undefined;
  if (!optional(v.NetworkSettings, isObject) || !optional(networks, (ns) => isObject(ns) && Object.values(ns).every(networkOk))) {
    return "NetworkSettings.Networks is not a mapping of networks with addresses";
  }
  return undefined;
}

function checkNetwork(v: unknown): string | undefined {
  if (!isObject(v) || !isString(v.Id) || v.Id === "" || !isString(v.Name) || !isString(v.Driver)) return "not a network with Id, Name and Driver";
  if (!optional(v.Options, (o) => isObject(o) && Object.values(o).every(isString))) return "Options is not a mapping of strings";
  const bridge = isObject(v.Options) ? v.Options["com.docker.network.bridge.name"] : undefined;
  if (typeof bridge === "string" && interfaceNameProblem(bridge) !== undefined) return `bridge name ${JSON.stringify(bridge)} is not an interface name`;
  if (typeof v.Id === "string" && !/^[0-9A-Za-z]+$/.test(v.Id)) return "Id is not a Docker id";
  const configOk = (c: unknown) => isObject(c) && optional(c.Subnet, isString);
  if (!optional(v.IPAM, (i) => isObject(i) && optional(i.Config, (c) => Array.isArray(c) && c.every(configOk)))) return "IPAM.Config is not a list of subnets";
  return undefined;
}
