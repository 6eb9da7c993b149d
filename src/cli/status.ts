import type { Command } from "commander";
import { readLive, FAMILIES } from "../apply/apply.js";
import { describeDiff, diffFamily, isEmptyDiff } from "../backends/iptables/diff.js";
import { planSets } from "../backends/ipset.js";
import { parseSave } from "../backends/iptables/save-parser.js";
import { readWindow } from "../apply/confirm.js";
import { Exit, makeContext, netfilterFor, print, warn, type GlobalOptions } from "./common.js";
import { readDegraded, type DegradedNote } from "../daemon/degraded.js";

interface StatusReport {
  applied: boolean;
  appliedAt?: string;
  source?: string;
  variant: string;
  inSync: boolean;
  /** An apply killed part-way: the kernel may hold part of it. */
  interrupted?: { at: string; pid: number; source: string };
  /** An `apply --confirm` window still open: rolled back at the deadline unless confirmed. */
  awaitingConfirm?: { until: string; source: string };
  /** `watch` cannot apply the policy and holds a fallback instead (daemon/degraded.ts). */
  degraded?: DegradedNote;
  drift: string[];
  families: Record<string, { chains: Record<string, number>; jumpsFirst: boolean; dropped: { packets: number; bytes: number } }>;
  sets: { name: string; family: string; members: number }[];
}

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description("what is applied, whether the kernel still holds it (drift), and drop counters")
    .option("--json", "machine-readable output")
    .addHelpText("after", "\nExit code: 0 applied and in sync, 3 drift, nothing applied, or watch cannot apply the policy (DEGRADED), 2 a state file is not valid (it is named, with the way out).\n\nExample:\n  dockwall status --json\n")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const nf = await netfilterFor(ctx);
      // Strict: a state file that is not valid is reported (exit 2), never read as "nothing applied".
      const [current, pending, window] = await Promise.all([ctx.store.current(), ctx.store.pending(), readWindow(ctx.store)]);
      const live = await readLive(nf);
      // A note from before a later apply (`dockwall apply` by hand) is stale: it no longer says what holds.
      const note = await readDegraded(ctx.store.dir).catch((e: unknown) => {
        warn([e instanceof Error ? e.message : String(e)]);
        return undefined;
      });
      const degraded = note !== undefined && note.heldAt === current?.at ? note : undefined;
      const report: StatusReport = {
        applied: current !== undefined,
        appliedAt: current?.at,
        source: current?.source,
        variant: nf.variant,
        inSync: false,
        ...(pending ? { interrupted: { at: pending.at, pid: pending.pid, source: pending.source } } : {}),
        ...(window ? { awaitingConfirm: { until: new Date(window.deadline).toISOString(), source: window.source } } : {}),
        ...(degraded ? { degraded } : {}),
        drift: [],
        families: {},
        sets: [...live.sets.values()].map((s) => ({ name: s.name, family: s.family, members: s.members.length })),
      };
      for (const f of FAMILIES) {
        const counted = parseSave(await nf.save(f, { counters: true }));
        const chains: Record<string, number> = {};
        let packets = 0;
        let bytes = 0;
        for (const table of counted.values()) {
          for (const chain of table.chains.values()) {
            if (!chain.name.startsWith("DOCKWALL-")) continue;
            chains[`${table.name}/${chain.name}`] = chain.rules.length;
            chain.rules.forEach((spec, i) => {
              const c = chain.counters?.[i];
              if (c && / -j (DROP|REJECT)\b/.test(` ${spec}`)) {
                packets += c.packets;
                bytes += c.bytes;
              }
            });
          }
        }
        const wanted = current?.state[f];
        const diff = wanted ? diffFamily(wanted, live[f]) : undefined;
        report.families[f] = {
          chains,
          jumpsFirst: diff ? !diff.jumps.some((j) => j.problem !== "stale") : false,
          dropped: { packets, bytes },
        };
        if (diff && !isEmptyDiff(diff)) report.drift.push(...describeDiff(diff));
      }
      if (current) report.drift.push(...planSets(current.state.sets, live.sets).summary);
      report.inSync = report.applied && report.drift.length === 0 && !pending;
      if (opts.json) {
        print([JSON.stringify(report, null, 2)]);
      } else {
        print(humanStatus(report));
      }
      if (!report.inSync || report.degraded) throw new Exit(3);
    });
}

function humanStatus(r: StatusReport): string[] {
  const lines: string[] = [];
  lines.push(r.applied ? `applied ${r.appliedAt} from ${r.source} (iptables ${r.variant})` : `nothing applied by dockwall (iptables ${r.variant})`);
  for (const [f, fam] of Object.entries(r.families)) {
    const chains = Object.entries(fam.chains).map(([n, c]) => `${n} ${c}`).join(", ") || "no dockwall chains";
    lines.push(`${f}: ${chains}; jumps ${fam.jumpsFirst ? "in place, first" : "NOT in place"}; dropped ${fam.dropped.packets} packets`);
  }
  for (const s of r.sets) lines.push(`set ${s.name} (${s.family}): ${s.members} members`);
  if (r.awaitingConfirm) lines.push(`AWAITING CONFIRMATION: rolled back at ${r.awaitingConfirm.until} unless \`dockwall confirm\` runs`);
  if (r.degraded) {
    const d = r.degraded;
    const what = d.holding === "lock-down" ? "the lock-down (only SSH 22/tcp open from outside)" : `the last applied rules (${d.heldSource})`;
    lines.push(`DEGRADED since ${d.since}: dockwall watch (pid ${d.pid}) cannot apply the policy and holds ${what}: ${d.reason}`);
    lines.push(...d.errors.map((e) => `  ${e}`));
    lines.push("  fix the policy (dockwall check -c POLICY_FILE): watch applies it as soon as it is written");
  }
  if (r.interrupted) {
    const i = r.interrupted;
    lines.push(`INTERRUPTED: the apply of ${i.source} started at ${i.at} (pid ${i.pid}) was stopped part-way; the kernel may hold part of it.`);
    lines.push("  finish it with: dockwall apply -c POLICY_FILE   or go back with: dockwall rollback");
  }
  if (r.applied) lines.push(r.drift.length === 0 ? "in sync: the kernel holds what was applied" : "DRIFT: the kernel differs from what was applied:");
  lines.push(...r.drift.map((d) => `  ${d}`));
  if (r.applied && r.drift.length > 0) lines.push("repair with: dockwall apply --full-read -c POLICY_FILE");
  return lines;
}

