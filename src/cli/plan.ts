import type { Command } from "commander";
import { compilePolicy } from "../pipeline.js";
import { compiledBefore } from "../apply/state-store.js";
import { describePlan, makePlan, planIsEmpty, readLive, snapshot } from "../apply/apply.js";
import { summarise } from "../plan/summarise.js";
import { diffLine, summaryLines } from "../plan/describe.js";
import { planJson, setChanges } from "../plan/json.js";
import type { GatheredFacts } from "../facts/index.js";
import { DEFAULT_POLICY, Exit, FULL_READ_HELP, knownState, makeContext, print, warn, type Context, type GlobalOptions } from "./common.js";
import { ExitAs } from "./exit-as.js";
import { shown } from "./summary.js";

export interface PlanOptions {
  config: string;
  fullRead?: boolean;
  json?: boolean;
  detailedExitcode?: boolean;
}

export function registerPlan(program: Command): void {
  program
    .command("plan")
    .description("show what apply would change: what it means at policy level, then the rules and set members; touches nothing")
    .option("-c, --config <file>", "policy file", DEFAULT_POLICY)
    .option("--full-read", FULL_READ_HELP)
    .option("--json", "print the summary and the diff as JSON (with a `format` version)")
    .option("--detailed-exitcode", "exit 0 when nothing would change, 2 when something would, 1 on any error (as terraform plan does)")
    .addHelpText(
      "after",
      "\nThe summary is measured against what the kernel holds now (dockwall's part), so it also shows what\napply would repair. Colour on a terminal only; none when piped, with NO_COLOR set or TERM=dumb.\n\nExamples:\n  dockwall plan -c /etc/dockwall/dockwall.yaml\n  dockwall plan --detailed-exitcode >/dev/null; [ $? -eq 2 ] && echo 'changes pending'\n",
    )
    .action(async (opts: PlanOptions, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      let changed: boolean;
      try {
        const report = await planReport(opts, ctx);
        print(report.lines);
        changed = report.changed;
      } catch (e) {
        // terraform's convention: 1 for every error, so 2 can only mean "changes".
        if (opts.detailedExitcode) throw new ExitAs(e, 1);
        throw e;
      }
      if (opts.detailedExitcode && changed) throw new Exit(2);
    });
}

/** The plan as printed, and whether apply would change anything. `facts` for tests (read from the host otherwise). */
export async function planReport(opts: PlanOptions, ctx: Context, facts?: Promise<GatheredFacts>): Promise<{ changed: boolean; lines: string[] }> {
  const compiled = await compilePolicy(opts.config, ctx.runner, compiledBefore(await ctx.store.current()), facts);
  warn(compiled.warnings);
  const known = opts.fullRead ? undefined : await knownState(ctx, compiled.netfilter);
  const live = await readLive(compiled.netfilter, known ? { known } : {});
  const p = makePlan(compiled.desired, live);
  const changed = !planIsEmpty(p);
  const before = snapshot(live);
  const changes = summarise(before, compiled.desired);
  if (opts.json) return { changed, lines: [JSON.stringify(planJson(changed, changes, p.diffs, setChanges(before.sets, compiled.desired.sets)), null, 2)] };
  if (!changed) return { changed, lines: ["no changes: the kernel already holds this policy"] };
  return { changed, lines: [...shown(summaryLines(changes, true, { rulesHint: "see the rule diff" })), "", "rule diff:", ...shown(describePlan(p).map(diffLine))] };
}
