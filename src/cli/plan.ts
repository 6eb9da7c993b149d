import type { Command } from "commander";
import { compilePolicy } from "../pipeline.js";
import { compiledBefore } from "../apply/state-store.js";
import { describePlan, makePlan, planIsEmpty, readLive } from "../apply/apply.js";
import { DEFAULT_POLICY, FULL_READ_HELP, knownState, makeContext, print, warn, type GlobalOptions } from "./common.js";

export function registerPlan(program: Command): void {
  program
    .command("plan")
    .description("show what apply would change (rules and set members); touches nothing")
    .option("-c, --config <file>", "policy file", DEFAULT_POLICY)
    .option("--full-read", FULL_READ_HELP)
    .addHelpText("after", "\nExample:\n  dockwall plan -c /etc/dockwall/dockwall.yaml\n")
    .action(async (opts: { config: string; fullRead?: boolean }, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const compiled = await compilePolicy(opts.config, ctx.runner, compiledBefore(await ctx.store.current()));
      warn(compiled.warnings);
      const known = opts.fullRead ? undefined : await knownState(ctx, compiled.netfilter);
      const plan = makePlan(compiled.desired, await readLive(compiled.netfilter, known ? { known } : {}));
      print(planIsEmpty(plan) ? ["no changes: the kernel already holds this policy"] : describePlan(plan));
    });
}
