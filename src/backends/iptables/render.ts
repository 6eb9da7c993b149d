/**
 * render: Ruleset -> rule text, pure. Every rule is written exactly as `iptables-save` prints it back
 * (option order, `-m tcp`, /32 suffixes, conntrack state order, quoting), so that a re-apply can tell
 * "nothing changed" and verification can compare what the kernel holds with what we meant, line by line.
 */
import type { Family, PortRange } from "../../policy/types.js";
import type { CtState, FamilyRules, Match, Rule, Table, Verdict } from "../../ruleset/types.js";
import { taggedComment } from "./entry-tag.js";

export interface RenderedChain {
  table: Table;
  name: string;
  /** Rule specs as iptables-save prints them after `-A NAME `. */
  rules: string[];
}

export interface RenderedJump {
  table: Table;
  from: string;
  /** Spec after `-A FROM `, e.g. `-m comment --comment dockwall -j DOCKWALL-INPUT`. */
  spec: string;
  to: string;
}

/** dockwall's part of one family's netfilter state: its chains and the jumps into them. */
export interface RenderedFamily {
  family: Family;
  chains: RenderedChain[];
  jumps: RenderedJump[];
}

export function renderFamily(rules: FamilyRules): RenderedFamily {
  return {
    family: rules.family,
    chains: rules.chains.map((c) => ({ table: c.table, name: c.name, rules: c.rules.map(renderRule) })),
    jumps: rules.jumps.map((j) => ({ table: j.table, from: j.from, to: j.to, spec: jumpSpec(j.to) })),
  };
}

export function jumpSpec(to: string): string {
  return `-m comment --comment dockwall -j ${to}`;
}

const CT_ORDER: CtState[] = ["INVALID", "NEW", "RELATED", "ESTABLISHED", "DNAT"];

export function renderRule(rule: Rule): string {
  const m = rule.match;
  const parts: string[] = [];
  if (m.src !== undefined) parts.push("-s", m.src);
  if (m.dst !== undefined) parts.push("-d", m.dst);
  if (m.inIface !== undefined) parts.push("-i", m.inIface);
  if (m.outIface !== undefined) parts.push("-o", m.outIface);
  if (m.proto !== undefined) parts.push("-p", m.proto);
  parts.push(...protoMatch(m));
  if (m.srcSet !== undefined) parts.push("-m", "set", "--match-set", m.srcSet, "src");
  parts.push(...conntrackMatch(m));
  if (m.limit !== undefined) parts.push("-m", "limit", "--limit", limitSpelling(m.limit));
  parts.push("-m", "comment", "--comment", quote(taggedComment(rule.entry, rule.comment)));
  parts.push(...target(rule.verdict));
  return parts.join(" ");
}

function protoMatch(m: Match): string[] {
  if ((m.proto === "tcp" || m.proto === "udp") && m.dport !== undefined) {
    return ["-m", m.proto, "--dport", ports(m.dport)];
  }
  if (m.proto === "icmp" && m.icmpType !== undefined) return ["-m", "icmp", "--icmp-type", String(m.icmpType)];
  if (m.proto === "ipv6-icmp" && m.icmpType !== undefined) return ["-m", "icmp6", "--icmpv6-type", String(m.icmpType)];
  return [];
}

function conntrackMatch(m: Match): string[] {
  if (m.ctstate === undefined && m.ctorigdst === undefined && m.ctorigdstport === undefined) return [];
  const parts = ["-m", "conntrack"];
  if (m.ctstate !== undefined) {
    parts.push("--ctstate", CT_ORDER.filter((s) => m.ctstate!.includes(s)).join(","));
  }
  if (m.ctorigdst !== undefined) parts.push("--ctorigdst", m.ctorigdst);
  if (m.ctorigdstport !== undefined) parts.push("--ctorigdstport", ports(m.ctorigdstport), "--ctdir", "ORIGINAL");
  return parts;
}

function target(v: Verdict): string[] {
  switch (v.kind) {
    case "RETURN":
    case "DROP":
      return ["-j", v.kind];
    case "REJECT":
      return ["-j", "REJECT", "--reject-with", v.with];
    case "LOG":
      return ["-j", "LOG", "--log-prefix", quote(v.prefix)];
    case "goto":
      return ["-g", v.chain];
  }
}

function ports(p: PortRange): string {
  return p.from === p.to ? `${p.from}` : `${p.from}:${p.to}`;
}

/** iptables-save leaves [A-Za-z0-9_-] bare and double-quotes anything else. */
export function quote(s: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(s)) return s;
  return `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/**
 * The policy writes N/second and N/minute; iptables-save prints N/sec and N/min (hour and day are
 * spelled alike). Writing its spelling keeps the read-back comparison equal.
 */
export function limitSpelling(rate: string): string {
  return rate.replace(/\/second$/, "/sec").replace(/\/minute$/, "/min");
}
