/**
 * The jumps into dockwall's chains as the kernel holds them, whatever the state directory records:
 * `status` says where the jumps are from this, so a record that is missing, stale or from `remove`
 * cannot make it say the opposite of the kernel. Pure.
 */
import type { Table } from "../ruleset/types.js";
import { CHAINS, isDockwallChain } from "../compile/names.js";
import { jumpSpec } from "../backends/iptables/render.js";
import { ruleTarget, type SavedState } from "../backends/iptables/save-parser.js";

/** The jumps compile/index.ts makes (rule-check.ts accepts these and no others). */
export const ENTRY_JUMPS: readonly { table: Table; from: string; to: string }[] = [
  { table: "filter", from: "INPUT", to: CHAINS.input },
  { table: "mangle", from: "FORWARD", to: CHAINS.forward },
];

export interface KernelJump {
  table: string;
  from: string;
  to: string;
  /** 1 is the top of the chain. */
  position: number;
  /** The rule after `-A FROM `, as iptables-save prints it. */
  rule: string;
}

export interface KernelJumps {
  /**
   * "first": each entry jump once, at the top of its chain, as dockwall writes it, and no other jump
   * into dockwall's chains; "none": no jump into dockwall's chains at all; "broken": anything else.
   */
  state: "first" | "none" | "broken";
  /** What is wrong, one line each ("filter INPUT -> DOCKWALL-INPUT at #3, not first"); empty unless broken. */
  problems: string[];
  /** Every rule of a built-in chain that jumps or goes to one of dockwall's chains. */
  found: KernelJump[];
}

export function kernelJumps(saved: SavedState): KernelJumps {
  const found: KernelJump[] = [];
  for (const table of saved.values()) {
    for (const chain of table.chains.values()) {
      // Built-in chains are the ones with a policy; a jump between dockwall's own chains is not an entry.
      if (chain.policy === undefined) continue;
      chain.rules.forEach((rule, i) => {
        const to = ruleTarget(rule);
        if (to !== undefined && isDockwallChain(to)) found.push({ table: table.name, from: chain.name, to, position: i + 1, rule });
      });
    }
  }
  if (found.length === 0) return { state: "none", problems: [], found };
  const problems: string[] = [];
  const isEntry = (j: KernelJump) => ENTRY_JUMPS.some((e) => e.table === j.table && e.from === j.from && e.to === j.to);
  for (const e of ENTRY_JUMPS) {
    const name = `${e.table} ${e.from} -> ${e.to}`;
    const here = found.filter((j) => j.table === e.table && j.from === e.from && j.to === e.to);
    if (here.length === 0) problems.push(`${name} missing`);
    else if (here.length > 1) problems.push(`${name} duplicated (${here.map((j) => `#${j.position}`).join(", ")})`);
    else if (here[0]!.position !== 1) problems.push(`${name} at #${here[0]!.position}, not first`);
    // A jump with a match of its own (`-i eth0 -j DOCKWALL-INPUT`) filters only part of the traffic.
    else if (here[0]!.rule !== jumpSpec(e.to)) problems.push(`${name} is not the jump dockwall writes: ${here[0]!.rule}`);
  }
  for (const j of found.filter((j) => !isEntry(j))) problems.push(`${j.table} ${j.from} -> ${j.to} (#${j.position}) is not a jump dockwall makes`);
  return { state: problems.length === 0 ? "first" : "broken", problems, found };
}

export function describeJumps(j: KernelJumps): string {
  if (j.state === "first") return "jumps in place, first";
  if (j.state === "none") return "no jumps into dockwall's chains";
  return `jumps NOT in place: ${j.problems.join("; ")}`;
}
