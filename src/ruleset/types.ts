/**
 * The compiled ruleset: pure data, the output of compile() and the input of render().
 * Nothing here knows about iptables syntax; render turns it into restore payloads.
 */
import type { Family, PortRange } from "../policy/types.js";
import type { EntrySource } from "../compile/entries.js";

/** dockwall's tables: container decisions in mangle (see DECISIONS in compile/index.ts), host ones in filter. */
export type Table = "filter" | "mangle";

export type CtState = "INVALID" | "NEW" | "RELATED" | "ESTABLISHED" | "DNAT";

export interface Match {
  /** Interface names; a trailing `+` is iptables' wildcard. */
  inIface?: string;
  outIface?: string;
  proto?: "tcp" | "udp" | "icmp" | "ipv6-icmp" | "esp";
  /** A normalised CIDR. */
  src?: string;
  /** A normalised CIDR the packet is addressed to. */
  dst?: string;
  /** Name of an ipset matched against the source address. */
  srcSet?: string;
  /** Destination port(s), only with proto tcp/udp. */
  dport?: PortRange;
  /** ICMP (v4) or ICMPv6 type number. */
  icmpType?: number;
  ctstate?: CtState[];
  /** The original destination address of the connection (before DNAT). */
  ctorigdst?: string;
  /** The port the client connected to (before DNAT). Always rendered with --ctdir ORIGINAL. */
  ctorigdstport?: PortRange;
  /** Rate limit as the policy writes it, e.g. "10/minute" (render spells it as iptables does). */
  limit?: string;
}

export type Verdict =
  | { kind: "RETURN" }
  | { kind: "DROP" }
  | { kind: "REJECT"; with: "tcp-reset" | "icmp-port-unreachable" | "icmp6-port-unreachable" }
  | { kind: "LOG"; prefix: string }
  | { kind: "goto"; chain: string };

export interface Rule {
  match: Match;
  verdict: Verdict;
  /** Why the rule exists, rendered as an iptables comment so `iptables-save` explains itself. */
  comment?: string;
  /**
   * The policy entry it comes from (compile/entries.ts), rendered into the comment as `[ID]`: the
   * kernel keeps it, so a rule read back (with its counters) still says where it came from.
   */
  entry: string;
}

export interface Chain {
  table: Table;
  name: string;
  rules: Rule[];
}

/** A jump from a built-in chain to one of ours. It must be the first rule of `from`. */
export interface Jump {
  table: Table;
  from: "INPUT" | "FORWARD";
  to: string;
}

export interface FamilyRules {
  family: Family;
  chains: Chain[];
  jumps: Jump[];
}

export interface IpSetSpec {
  name: string;
  family: Family;
  /**
   * Members in ipset's own spelling (no /32 or /128 suffix), distinct, in the order written. From the
   * applied record it is built on first use (members.ts): count with memberCount().
   */
  members: string[];
}

export interface Ruleset {
  ipv4: FamilyRules;
  ipv6: FamilyRules;
  sets: IpSetSpec[];
  /** Things the operator should know: a named container that is not running, Docker unreachable, ... */
  warnings: string[];
  /** Where each policy entry the rules name was written (built-in rules name none). */
  entries: EntrySource[];
}

/** Every chain dockwall owns starts with this. */
export const CHAIN_PREFIX = "DOCKWALL-";
/** Every ipset dockwall owns starts with this. */
export const SET_PREFIX = "dw";
