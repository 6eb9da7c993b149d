/**
 * The policy-level summary and the rule diff as lines for a person: "opens 2222/tcp to anyone",
 * "closes 22/tcp (was open to anyone)", "group office: +2 -1 members: +198.51.100.7, ...". Each line
 * is pieces with a tone (added, removed), so the command decides whether they are coloured. Every
 * text that came from the kernel or a file is shown through escapeControls: a comment or member
 * read back cannot drive the terminal. Pure.
 */
import type { Family } from "../policy/types.js";
import { escapeControls } from "../policy/quote.js";
import { describeTarget } from "./rule-meaning.js";
import type { PolicyChange } from "./summarise.js";

export type Tone = "add" | "remove" | "change";
export interface Piece {
  text: string;
  tone?: Tone;
}
export type Line = Piece[];

/** How many sources or members a line lists before "and N more". */
export const LISTED = 5;

/** `items` joined, capped at `max` with "and N more". */
export function capped(items: string[], max = LISTED): string {
  const shown = items.slice(0, max).map(escapeControls);
  const more = items.length - shown.length;
  return more > 0 ? `${shown.join(", ")} and ${more} more` : shown.join(", ");
}

function families(fs: Family[]): string {
  return fs.map((f) => (f === "ipv4" ? "IPv4" : "IPv6")).join(" and ");
}

const SETTING_TEXT: Record<string, (values: string[]) => string> = {
  outside: (v) => (v.includes("*") ? "every interface but loopback and Docker's bridges" : v.join(", ")),
  inside: (v) => v.join(", "),
  default: (v) => v.join(", "),
  // As the policy writes a rate (render.ts limitSpelling, the other way).
  log: (v) => `at ${v.map((r) => r.replace(/\/sec$/, "/second").replace(/\/min$/, "/minute")).join(", ")}`,
};

const SETTING_NAME: Record<string, string> = {
  outside: "filters traffic in on",
  inside: "passes traffic from Docker bridges",
  default: "refuses the rest by",
  log: "logs refused packets",
};

function settingLine(c: Extract<PolicyChange, { kind: "setting" }>): Line {
  const text = (v: string[]) => escapeControls(SETTING_TEXT[c.setting]!(v));
  if (c.setting === "log") {
    if (c.after.length === 0) return [{ text: "stops logging refused packets", tone: "remove" }];
    return [{ text: `${SETTING_NAME.log} ${text(c.after)}`, tone: "add" }, ...(c.before.length > 0 ? [{ text: ` (was ${text(c.before)})` }] : [])];
  }
  if (c.setting === "inside") {
    const added = c.after.filter((v) => !c.before.includes(v));
    const removed = c.before.filter((v) => !c.after.includes(v));
    return [
      { text: "Docker bridges passed untouched:" },
      ...added.map((v) => ({ text: ` +${escapeControls(v)}`, tone: "add" as const })),
      ...removed.map((v) => ({ text: ` -${escapeControls(v)}`, tone: "remove" as const })),
    ];
  }
  const now = c.after.length === 0 ? "nothing" : text(c.after);
  return [{ text: `${SETTING_NAME[c.setting]} ${now}`, tone: "change" }, ...(c.before.length > 0 ? [{ text: ` (was ${text(c.before)})` }] : [])];
}

export interface DescribeOptions {
  /** Where the rules are shown: "see the rule diff" (plan), "--verbose shows them" (apply). */
  rulesHint: string;
}

export function describeChange(c: PolicyChange, opts: DescribeOptions): Line {
  switch (c.kind) {
    case "dockwall":
      return c.now === "in"
        ? [{ text: `puts dockwall in front of ${families(c.families)}`, tone: "add" }, ...(c.refusal ? [{ text: `: from outside, everything not opened below is refused (${c.refusal})` }] : [])]
        : [{ text: `takes dockwall out of ${families(c.families)}`, tone: "remove" }, { text: ": it refuses nothing there any more, the host's own rules and Docker's decide alone" }];
    case "opens": {
      const to = c.sources.length === 0 ? "" : ` to ${capped(c.sources)}`;
      return [{ text: `opens ${escapeControls(describeTarget(c.target))}${to}`, tone: "add" }, ...(c.already.length > 0 ? [{ text: ` (open to ${capped(c.already)} already)` }] : [])];
    }
    case "closes": {
      const target = escapeControls(describeTarget(c.target));
      if (c.still.length > 0) return [{ text: `closes ${target} to ${capped(c.sources)}`, tone: "remove" }, { text: ` (still open to ${capped(c.still)})` }];
      return [{ text: `closes ${target}`, tone: "remove" }, ...(c.sources.length > 0 ? [{ text: ` (was open to ${capped(c.sources)})` }] : [])];
    }
    case "setting":
      return settingLine(c);
    case "group":
      return groupLine(c);
    case "rules":
      return [{ text: `and ${c.count} rule change${c.count === 1 ? " that opens or closes" : "s that open or close"} nothing: the kernel differs from the policy there (${opts.rulesHint})`, tone: "change" }];
  }
}

function groupLine(c: Extract<PolicyChange, { kind: "group" }>): Line {
  const name = escapeControls(c.group);
  const head: Piece = { text: `group ${name}: ` };
  const counts: Line = [];
  if (c.added.length > 0) counts.push({ text: `+${c.added.length}`, tone: "add" });
  if (c.removed.length > 0) counts.push({ text: `${counts.length > 0 ? " " : ""}-${c.removed.length}`, tone: "remove" });
  const state = c.was === 0 && c.removed.length === 0 ? " (new)" : c.now === 0 && c.added.length === 0 ? " (none left)" : "";
  if (counts.length === 0) return [head, { text: `no members${state}` }];
  const listed: Line = [];
  const all = [...c.added.map((m) => ({ m, tone: "add" as const })), ...c.removed.map((m) => ({ m, tone: "remove" as const }))];
  for (const [i, { m, tone }] of all.slice(0, LISTED).entries()) listed.push({ text: `${i > 0 ? ", " : ""}${tone === "add" ? "+" : "-"}${escapeControls(m)}`, tone });
  const more = all.length - Math.min(all.length, LISTED);
  return [head, ...counts, { text: ` member${c.added.length + c.removed.length === 1 ? "" : "s"}${state}: ` }, ...listed, ...(more > 0 ? [{ text: ` and ${more} more` }] : [])];
}

export function describeSummary(changes: PolicyChange[], opts: DescribeOptions): Line[] {
  return changes.map((c) => describeChange(c, opts));
}

/** A line of the rule diff (describePlan's), toned by its sign: `+` added, `-` removed, `~` changed. */
export function diffLine(text: string): Line {
  const sign = text.trimStart()[0];
  const tone: Tone | undefined = sign === "+" ? "add" : sign === "-" ? "remove" : sign === "~" ? "change" : undefined;
  return [{ text: escapeControls(text), ...(tone ? { tone } : {}) }];
}

const COLOURS: Record<Tone, string> = { add: "\x1b[32m", remove: "\x1b[31m", change: "\x1b[33m" };
const RESET = "\x1b[0m";

export function lineText(line: Line, colour: boolean): string {
  return line.map((p) => (colour && p.tone ? `${COLOURS[p.tone]}${p.text}${RESET}` : p.text)).join("");
}

/**
 * Colour only on a terminal, and not when NO_COLOR is set to anything (no-color.org) or the terminal
 * says it cannot (TERM=dumb).
 */
export function useColour(isTTY: boolean | undefined, env: NodeJS.ProcessEnv): boolean {
  return isTTY === true && !env.NO_COLOR && env.TERM !== "dumb";
}

/**
 * The summary of a change as printed: its policy-level lines, or, for a change that alters rules but
 * no opening (a jump put back first, say), a line that says so: a change is never summed up as nothing.
 */
export function summaryLines(changes: PolicyChange[], changed: boolean, opts: DescribeOptions): Line[] {
  if (changes.length > 0) return describeSummary(changes, opts);
  return changed ? [[{ text: `opens and closes nothing: the rules are brought back to what the policy says (${opts.rulesHint})`, tone: "change" }]] : [];
}
