import type { DesiredState } from "../backends/rendered.js";
import { memberCount } from "../ruleset/members.js";
import { summarise } from "../plan/summarise.js";
import { diffLine, lineText, summaryLines, useColour, type Line } from "../plan/describe.js";

export function ruleCounts(state: DesiredState): string {
  const rules = (f: "ipv4" | "ipv6") => state[f].chains.reduce((n, c) => n + c.rules.length, 0);
  const members = state.sets.reduce((n, s) => n + memberCount(s), 0);
  return `${rules("ipv4")} IPv4 rules, ${rules("ipv6")} IPv6 rules, ${state.sets.length} sets with ${members} members`;
}

/** Lines for stdout, coloured on a terminal only (see useColour). */
export function shown(lines: Line[]): string[] {
  const colour = useColour(process.stdout.isTTY, process.env);
  return lines.map((l) => lineText(l, colour));
}

/**
 * What `apply`, `remove` and `rollback` print of a change they made: its policy-level summary from
 * the state they found (`before`) to the one they put in, and with `verbose` the rule diff after it
 * (`ruleDiff`, apply's own lines). A warning among those lines is printed either way.
 */
export function changeLines(before: DesiredState, after: DesiredState, ruleDiff: string[], verbose: boolean): string[] {
  const summary = shown(summaryLines(summarise(before, after), true, { rulesHint: verbose ? "see the rule diff" : "--verbose shows them" }));
  if (verbose) return [...summary, "", "rule diff:", ...shown(ruleDiff.map(diffLine))];
  return [...summary, ...ruleDiff.filter((l) => l.startsWith("warning: "))];
}

export const VERBOSE_HELP = "after what the change means at policy level, print the rule diff (every rule added or removed, each set's member counts)";
