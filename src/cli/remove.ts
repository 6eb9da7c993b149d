import type { Command } from "commander";
import { emptyState } from "../backends/rendered.js";
import { applyAndRecord } from "../apply/transaction.js";
import { makeContext, netfilterFor, print, warn, type GlobalOptions } from "./common.js";
import { changeLines, VERBOSE_HELP } from "./summary.js";

export function registerRemove(program: Command): void {
  program
    .command("remove")
    .description("take every dockwall rule, jump and set out; Docker's chains stay untouched")
    .option("--verbose", VERBOSE_HELP)
    .addHelpText("after", "\n`dockwall rollback` afterwards puts the removed rules back.\n\nExample:\n  dockwall remove\n")
    .action(async (opts: { verbose?: boolean }, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const nf = await netfilterFor(ctx);
      const target = emptyState();
      const result = await applyAndRecord(nf, target, ctx.store, ctx.lock, "remove");
      warn(result.warnings ?? []);
      print(result.changed ? [...changeLines(result.before, target, result.summary, opts.verbose === true), "removed: no dockwall rules or sets are left"] : ["nothing to remove"]);
    });
}
