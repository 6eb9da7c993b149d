/** `dockwall status` as text: one line per fact, drift as missing and extra. Pure. */
import path from "node:path";
import { escapeControls } from "../policy/quote.js";
import { describeJumps } from "./jumps.js";
import type { RuleDrift, SetDrift } from "./drift.js";
import type { ConfirmPending, StatusReport } from "./report.js";

/** Members listed per set and kind; the rest are counted (`--json` lists them all). */
const MEMBERS_SHOWN = 10;

export function humanStatus(r: StatusReport): string[] {
  const lines: string[] = [];
  const variant = `(iptables ${r.variant})`;
  if (!r.applied) lines.push(`nothing applied by dockwall ${variant}`);
  else if (!r.holdsRules) lines.push(`applied ${r.appliedAt} from ${text(r.source!)}: no dockwall rules or sets ${variant}`);
  else lines.push(`applied ${r.appliedAt} from ${text(r.source!)} ${variant}`);
  if (r.unrecorded) {
    lines.push(`  but the kernel holds dockwall chains, jumps or sets that no record in ${text(r.stateDir)} accounts for`);
    lines.push("  take them over with: dockwall apply -c POLICY_FILE   or out with: dockwall remove");
  }
  for (const [f, fam] of Object.entries(r.families)) {
    const chains = Object.entries(fam.chains).map(([n, c]) => `${n} ${c}`).join(", ") || "no dockwall chains";
    lines.push(`${f}: ${chains}; ${text(describeJumps(fam.jumps))}; dropped ${fam.dropped.packets} packets`);
  }
  for (const s of r.sets) lines.push(`set ${s.name} (${s.family}): ${s.members} members`);
  if (r.awaitingConfirm) lines.push(...confirmLines(r.awaitingConfirm));
  if (r.degraded) {
    const d = r.degraded;
    const what = d.holding === "lock-down" ? "the lock-down (only SSH 22/tcp open from outside)" : `the last applied rules (${text(d.heldSource)})`;
    lines.push(`DEGRADED since ${d.since}: dockwall watch (pid ${d.pid}) cannot apply the policy and holds ${what}: ${d.reason}`);
    lines.push(...d.errors.map((e) => `  ${e}`));
    lines.push(`  fix the policy (dockwall check -c ${r.policyFile ? text(r.policyFile) : "POLICY_FILE"}): watch applies it as soon as it is written`);
  }
  if (r.interrupted) {
    const i = r.interrupted;
    const file = path.isAbsolute(i.source) ? text(i.source) : "POLICY_FILE";
    lines.push(`INTERRUPTED: the apply of ${text(i.source)} started at ${i.at} (pid ${i.pid}) was stopped part-way; the kernel may hold part of it.`);
    lines.push(`  finish it with: dockwall apply -c ${file}   or go back with: dockwall rollback`);
  }
  const drifted = r.drift.length > 0 || r.setDrift.length > 0;
  if (r.applied) lines.push(drifted ? "DRIFT: the kernel differs from what was applied (missing: applied, not in the kernel; extra: in the kernel, not applied):" : "in sync: the kernel holds what was applied");
  lines.push(...ruleLines(r.drift), ...setLines(r.setDrift));
  if (r.repair) lines.push(`repair with: ${text(r.repair)}${r.policyFile || !r.holdsRules ? "" : ` (the applied rules came from ${text(r.source!)}, not a policy file)`}`);
  return lines;
}

function confirmLines(c: ConfirmPending): string[] {
  const to = c.rollsBackTo ? `the state of ${c.rollsBackTo.at} (${text(c.rollsBackTo.source)})` : "the previous state";
  const lines = c.overdue
    ? [`CONFIRMATION OVERDUE: the apply of ${text(c.source)} at ${c.appliedAt} was to be rolled back to ${to} at ${c.until}, and the window is still open (the keeper has not acted: it may be doing so now, or it was stopped)`, "  keep the rules with: dockwall confirm   or go back with: dockwall rollback"]
    : [`AWAITING CONFIRMATION: the apply of ${text(c.source)} at ${c.appliedAt} is rolled back to ${to} at ${c.until} unless \`dockwall confirm\` runs`];
  if (c.rollbackProblem) lines.push(`  the rollback cannot go ahead: ${text(c.rollbackProblem)}`);
  return lines;
}

function ruleLines(drift: RuleDrift[]): string[] {
  const lines: string[] = [];
  // A chain missing or extra as a whole is one line with its rule count, not every rule.
  const whole = new Set(drift.filter((d) => d.rule === null).map((d) => `${d.family} ${d.table} ${d.chain} ${d.kind}`));
  for (const d of drift) {
    const where = `${d.family} ${d.table} ${d.chain}`;
    const detail = d.detail ? ` (${d.detail})` : "";
    if (d.rule === null) {
      const n = drift.filter((x) => x.rule !== null && x.kind === d.kind && `${x.family} ${x.table} ${x.chain}` === where).length;
      lines.push(`  ${d.kind}: ${d.family} ${d.table} chain ${d.chain} (${n} rules)`);
    } else if (!whole.has(`${where} ${d.kind}`)) {
      lines.push(`  ${d.kind}: ${where}: ${text(d.rule)}${detail}`);
    }
  }
  return lines;
}

function setLines(drift: SetDrift[]): string[] {
  const lines: string[] = [];
  const counted = new Map<string, number>();
  for (const d of drift) {
    if (d.member === undefined) {
      lines.push(`  ${d.kind}: set ${d.set} (${d.family})${d.detail ? `: ${text(d.detail)}` : ""}`);
      continue;
    }
    const key = `${d.kind} ${d.set}`;
    const n = (counted.get(key) ?? 0) + 1;
    counted.set(key, n);
    if (n <= MEMBERS_SHOWN) lines.push(`  ${d.kind}: ${text(d.member)} in set ${d.set} (${d.family})`);
  }
  for (const [key, n] of counted) {
    const [kind, set] = key.split(" ");
    if (n > MEMBERS_SHOWN) lines.push(`  ${kind}: ${n - MEMBERS_SHOWN} more members in set ${set} (status --json lists them all)`);
  }
  return lines;
}

/** Text from the kernel or a state file, on one line, with no escape sequences. */
function text(s: string): string {
  return escapeControls(s);
}
