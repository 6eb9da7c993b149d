import type { DesiredState } from "../backends/rendered.js";
import { memberCount } from "../ruleset/members.js";

export function ruleCounts(state: DesiredState): string {
  const rules = (f: "ipv4" | "ipv6") => state[f].chains.reduce((n, c) => n + c.rules.length, 0);
  const members = state.sets.reduce((n, s) => n + memberCount(s), 0);
  return `${rules("ipv4")} IPv4 rules, ${rules("ipv6")} IPv6 rules, ${state.sets.length} sets with ${members} members`;
}
