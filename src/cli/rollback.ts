import type { Command } from "commander";
import { applyAndRecord } from "../apply/transaction.js";
import { claimWindow } from "../apply/confirm.js";
import { Exit, makeContext, print, warn, type Context, type GlobalOptions } from "./common.js";
import { Netfilter } from "../backends/netfilter.js";
import { changeLines, ruleCounts, VERBOSE_HELP } from "./summary.js";

/** Goes back to the state before the last change; the lines to print. What `rollback` and an unconfirmed `apply --confirm` do. */
export async function rollBack(ctx: Context, why = "rollback", verbose = false): Promise<string[]> {
  // A journal or `previous` that is not valid stops here (StateFileError names it): never a guess.
  const target = await ctx.store.rollbackTarget();
  if (!target) {
    process.stderr.write(`dockwall: nothing to roll back (no earlier state in ${ctx.store.dir})\n`);
    throw new Exit(1);
  }
  const nf = new Netfilter(ctx.runner, target.variant);
  const result = await applyAndRecord(nf, target.state, ctx.store, ctx.lock, `${why} to ${target.source}`);
  warn(result.warnings ?? []);
  return [...(result.changed ? changeLines(result.before, target.state, result.summary, verbose) : []), `rolled back to the state of ${target.at} (${target.source}): ${ruleCounts(target.state)}`];
}

export function registerRollback(program: Command): void {
  program
    .command("rollback")
    .description("go back to the rules and set members that were in place before the last change")
    .option("--verbose", VERBOSE_HELP)
    .addHelpText("after", "\nRunning it twice goes forward again. A confirm window still open is closed.\n\nExample:\n  dockwall rollback\n")
    .action(async (opts: { verbose?: boolean }, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      // Rolled back by hand: the keeper of an open `apply --confirm` window must not roll back again.
      await claimWindow(ctx.store);
      print(await rollBack(ctx, "rollback", opts.verbose === true));
    });
}
