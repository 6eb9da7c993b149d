/** What the tracer walks through the rules: the first packet of a new connection from outside. */
import type { Family } from "../policy/types.js";

export type TraceProto = "tcp" | "udp" | "icmp" | "icmpv6";

export interface Probe {
  family: Family;
  proto: TraceProto;
  src: string;
  dst: string;
  /** tcp/udp destination port. */
  dport?: number;
  /** tcp/udp source port; an ephemeral one when not given. */
  sport?: number;
  /** icmp/icmpv6 type (8 / 128 echo request when not given). */
  icmpType?: number;
  /** The interface it arrives on. */
  inIface: string;
}

/**
 * The packet as the rules see it at a point of the walk: DNAT rewrites the destination, routing
 * sets the output interface; conntrack remembers the original destination.
 */
export interface PacketView {
  family: Family;
  proto: TraceProto;
  src: string;
  dst: string;
  sport: number;
  dport?: number;
  icmpType: number;
  inIface: string;
  /** Set once routed, for FORWARD. */
  outIface?: string;
  ct: {
    /** Always NEW for the first packet; DNAT once a DNAT rule rewrote it. */
    dnat: boolean;
    origDst: string;
    origDport?: number;
  };
}

/** The host the rules run on: what `addrtype LOCAL` and routing need. */
export interface TraceHost {
  /** Every interface with its addresses as CIDRs (Docker's bridges included). */
  interfaces: { name: string; addresses: string[] }[];
}
