/** The validated policy: every address normalised, every group resolved, nothing left to check. */

export type Family = "ipv4" | "ipv6";
export type Proto = "tcp" | "udp";

/** An inclusive port range; a single port has from === to. */
export interface PortRange {
  from: number;
  to: number;
}

/** A normalised CIDR: network address with host bits cleared, ipset's spelling (RFC 5952 for IPv6). */
export interface Cidr {
  family: Family;
  /** e.g. "203.0.113.0/24", "198.18.0.5/32", "2001:db8:1::/48" */
  cidr: string;
}

/**
 * A group's members, normalised to the spelling ipset prints back ("203.0.113.0/24", and a single
 * host without its /32 or /128: "198.18.0.5", "2001:db8::1"), distinct, in the order written. Groups only
 * ever become sets, and a 100,000-line group file is then read without one string built per line.
 */
export interface Group {
  name: string;
  ipv4: string[];
  ipv6: string[];
  /** The group file its members came from (resolved path), for `{ file: PATH }` groups. */
  file?: string;
}

/** Where a connection may come from. */
export type Source =
  | { kind: "any" }
  | { kind: "group"; name: string }
  | { kind: "cidr"; cidr: Cidr };

/** Where in the policy file an entry was written, for messages. */
export interface Location {
  file: string;
  line: number;
  col: number;
}

/** One opening: these sources may open new connections to these ports. */
export interface Opening {
  ports: PortRange[];
  protos: Proto[];
  from: Source[];
  loc: Location;
}

/** A published container port: by host-side published port, or by container name and container-side port. */
export interface ContainerOpening extends Opening {
  /** Set when the entry names a container; `ports` are then container-side ports. */
  container?: string;
}

export interface Route {
  in: string;
  out: string;
  loc: Location;
}

export interface Policy {
  file: string;
  /** Outside interfaces; undefined means every interface except lo and Docker's bridges. */
  interfaces?: string[];
  /** Where each name in `interfaces` was first written: whether it exists is known only with the host's facts. */
  interfaceLocations?: ReadonlyMap<string, Location>;
  groups: Group[];
  trusted: Source[];
  host: Opening[];
  containers: ContainerOpening[];
  routes: Route[];
  swarm?: { peers: Source[] };
  icmp: "allow" | "drop";
  default: "drop" | "reject";
  log: { drops: boolean; rate: string };
  /** Where each top-level key that makes rules of its own was written (absent: not written, its default holds). */
  keyLocations?: Partial<Record<RuleKey, Location>>;
}

/** The top-level keys whose rules come from the key itself rather than from a list entry. */
export type RuleKey = "interfaces" | "trusted" | "swarm" | "icmp" | "default" | "log";

