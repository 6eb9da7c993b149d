/**
 * The policy file's keys as data: name, type, default, allowed values and meaning. dockwall.yaml(5)
 * is generated from it; the key names and defaults are checked against the loader by a unit test
 * (test/unit/policy-reference.test.ts), so the page cannot describe keys the loader does not take.
 * load.ts stays the one that decides; this says in words what it decides.
 */

export interface PolicyKey {
  key: string;
  /** What may be written, in words ("a list of sources"). */
  type: string;
  /** What leaving the key out means. Absent on required keys. */
  default?: string;
  required?: boolean;
  /** The only values taken, for keys that are one word of a few. */
  values?: readonly string[];
  meaning: string;
  /** The keys of a mapping, or of each entry of a list of mappings. */
  keys?: readonly PolicyKey[];
}

const SOURCES = "a list of sources: any, group names, IPv4 or IPv6 addresses and CIDRs; one source may be written without brackets";

const PORT: PolicyKey = {
  key: "port",
  type: "a port 1-65535, a range a-b, or a list of them, in decimal as written (never 0x50, 010, 80.0)",
  required: true,
  meaning: "the ports this entry opens",
};
const PROTO: PolicyKey = { key: "proto", type: "tcp, udp or [tcp, udp]", default: "tcp", values: ["tcp", "udp"], meaning: "the protocols the ports are opened for" };
const FROM: PolicyKey = {
  key: "from",
  type: SOURCES,
  default: "any",
  meaning: "who may open new connections to these ports; a group is one rule whatever its size",
};

export const POLICY_KEYS: readonly PolicyKey[] = [
  {
    key: "interfaces",
    type: "a list of interface names; a name ending in + is a wildcard (wg+)",
    default: "every interface except lo and Docker's bridges",
    meaning:
      "the outside interfaces: traffic coming in by them is filtered. A plain name must exist on the host (plan, apply and watch refuse a missing one; check warns); a wildcard only warns while nothing matches. lo and Docker's bridges are errors.",
  },
  {
    key: "groups",
    type: "a mapping of group names (1-24 letters, digits, _ or -; not any) to a list of addresses and CIDRs, or to { file: PATH }",
    default: "no groups",
    meaning:
      "named sets of sources, kept as ipsets: members change without touching a rule. A group file holds one address or CIDR per line; blank lines and # comments are ignored; a relative PATH is relative to the policy file.",
    keys: [{ key: "file", type: "a path", required: true, meaning: "the group file the members are read from (within { file: PATH })" }],
  },
  {
    key: "trusted",
    type: SOURCES,
    default: "nobody",
    meaning: "sources that may reach every host port and every published container port",
  },
  {
    key: "host",
    type: "a list of entries",
    default: "no host port open (only what trusted and swarm open)",
    meaning: "the host's own services (INPUT): each entry opens its ports to its sources",
    keys: [PORT, PROTO, FROM],
  },
  {
    key: "containers",
    type: "a list of entries",
    default: "no published container port open",
    meaning:
      "published container ports (FORWARD, and docker-proxy through INPUT): by the host-side port the client connects to, or with container by container name and container-side port",
    keys: [
      { ...PORT, meaning: "the host-side published ports; with container, the container-side ports" },
      PROTO,
      FROM,
      { key: "container", type: "a container name (letters, digits, _ . -; at most 128 characters)", default: "any container publishing the port", meaning: "the container the entry is about; its port is then the container-side port" },
    ],
  },
  {
    key: "routes",
    type: "a list of { in: INTERFACE, out: INTERFACE }",
    default: "no forwarding between interfaces",
    meaning: "the host as a router: new connections coming in by in may be forwarded out by out",
    keys: [
      { key: "in", type: "an interface name", required: true, meaning: "where the forwarded connection comes in" },
      { key: "out", type: "an interface name", required: true, meaning: "where it goes out" },
    ],
  },
  {
    key: "swarm",
    type: "a mapping with peers",
    default: "no swarm ports open",
    meaning: "Docker Swarm between these nodes only: opens 2377/tcp, 7946/tcp and udp, 4789/udp and ESP to the peers",
    keys: [{ key: "peers", type: SOURCES, required: true, meaning: "the other swarm nodes" }],
  },
  { key: "icmp", type: "allow or drop", default: "allow", values: ["allow", "drop"], meaning: "echo requests (ping) to the host" },
  {
    key: "default",
    type: "drop or reject",
    default: "drop",
    values: ["drop", "reject"],
    meaning: "what happens to every other new connection from outside; reject answers for the host's own ports (TCP reset, ICMP port unreachable), forwarded ones are dropped",
  },
  {
    key: "log",
    type: "a mapping",
    default: "drops: false, rate: 10/minute",
    meaning: "logging of dropped connections",
    keys: [
      { key: "drops", type: "true or false", default: "false", values: ["true", "false"], meaning: "log each dropped new connection from outside (rate-limited)" },
      {
        key: "rate",
        type: "N/second, N/minute, N/hour or N/day, N from 1 to 9999",
        default: "10/minute",
        meaning: "at most this many log lines; a rate iptables would not keep as written is an error (60/minute reads back as 1/sec: write 1/second)",
      },
    ],
  },
];

/** What holds for the whole file, beyond its keys. */
export const POLICY_RULES: readonly string[] = [
  "At least one of host, containers or trusted must open something.",
  "Every error is reported at once as FILE:LINE:COL: message, and nothing is applied: unknown keys, bad addresses and prefixes, unknown groups or aliases, ports outside 1-65535 or not in decimal, reversed ranges, unknown protocols, empty proto, from or trusted lists, log rates iptables would not keep, unreadable group files, YAML syntax and duplicate keys.",
  "No /0 is taken (0.0.0.0/0, ::/0): for every source write any, or leave from out.",
  "The policy and its group files must be regular files; the policy is at most 1 MiB and its group files 64 MiB together. A policy holds at most 100,000 keys, list items and addresses (an alias counts each time it is used) and compiles into at most 100,000 rules (sources x ports x protocols per entry; a group counts as one source).",
  "Always allowed: replies (conntrack ESTABLISHED,RELATED), loopback, traffic from Docker's bridges, ICMPv6 neighbour discovery. Dropped: INVALID packets, new connections from outside that Docker did not DNAT, connections to ports published on 127.0.0.1.",
];

/** A whole policy using every key: shown by dockwall.yaml(5), and loaded by the unit test (beside an admins.list). */
export const POLICY_EXAMPLE = `interfaces: [eth0]
groups:
  office: [203.0.113.0/24, "2001:db8:1::/48"]
  admins: { file: admins.list }    # one address or CIDR per line
trusted: [office]
host:
  - port: 22                       # no from: anyone
  - port: 9100
    from: [admins]
  - port: 53
    proto: udp
containers:
  - port: [80, 443]                # host-side published ports, from anyone
  - port: 8000-8010
    from: [office, "198.51.100.7"]
  - container: django              # by container name and container-side port
    port: 8000
    from: ["192.0.2.69"]
routes:
  - { in: wg0, out: eth1 }
swarm:
  peers: [office]
icmp: allow
default: drop
log: { drops: true, rate: 10/minute }
`;
