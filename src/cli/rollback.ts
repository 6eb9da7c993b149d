import type { Command } from "commander";
import { applyAndRecord } from "../apply/transaction.js";
import { Exit, makeContext, print, type GlobalOptions } from "./common.js";
import { Netfilter } from "../backends/netfilter.js";
import { ruleCounts } from "./summary.js";

export function registerRollback(program: Command): void {
  program
    .command("rollback")
    .description("go back to the rules and set members that were in place before the last change")
    .addHelpText("after", "\nRunning it twice goes forward again.\n\nExample:\n  dockwall rollback\n")
    .action(async (_opts: object, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const stored = await ctx.store.read();
      if (!stored.previous) {
        process.stderr.write(`dockwall: nothing to roll back (no earlier state in ${ctx.store.dir})\n`);
        throw new Exit(1);
      }
      const nf = new Netfilter(ctx.runner, stored.previous.variant);
      const result = await applyAndRecord(nf, stored.previous.state, ctx.store, ctx.lock, `rollback to ${stored.previous.source}`);
      print([...result.summary, `rolled back to the state of ${stored.previous.at} (${stored.previous.source}): ${ruleCounts(stored.previous.state)}`]);
    });
}
