import type { Proto } from "../policy/types.js";

/** One published port binding as Docker reports it. */
export interface PublishedPort {
  /** "0.0.0.0", "::", "127.0.0.1", or a specific host address. */
  hostIp: string;
  hostPort: number;
  containerPort: number;
  proto: Proto;
}

export interface ContainerFacts {
  id: string;
  /** Without the leading slash. */
  name: string;
  running: boolean;
  published: PublishedPort[];
  /** Container addresses on each network, IPv4 and IPv6. */
  addresses: string[];
  networks: string[];
}

export interface NetworkFacts {
  id: string;
  name: string;
  driver: string;
  /** Linux bridge interface for bridge networks (docker0, br-<id12>, or com.docker.network.bridge.name). */
  bridge?: string;
  subnets: string[];
}

export type IptablesVariant = "nft" | "legacy";

export interface DockerFacts {
  /** false when the Engine API could not be reached: rules naming a container then stay closed. */
  reachable: boolean;
  error?: string;
  version?: string;
  /** "iptables", "nftables", "iptables+firewalld", ... when Docker reports it (28.1+). */
  firewallBackend?: string;
  containers: ContainerFacts[];
  networks: NetworkFacts[];
}

export interface HostInterface {
  name: string;
  addresses: string[];
}

export interface HostFacts {
  interfaces: HostInterface[];
  /** Which iptables variant holds Docker's rules (or the system default when Docker has none). */
  iptables: IptablesVariant;
  /** true when that variant's iptables-restore is not on PATH: nothing could be written. */
  iptablesMissing?: boolean;
}

export interface Facts {
  docker: DockerFacts;
  host: HostFacts;
}
