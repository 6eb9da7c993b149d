import type { Command } from "commander";
import { emptyState } from "../backends/rendered.js";
import { applyAndRecord } from "../apply/transaction.js";
import { makeContext, netfilterFor, print, warn, type GlobalOptions } from "./common.js";

export function registerRemove(program: Command): void {
  program
    .command("remove")
    .description("take every dockwall rule, jump and set out; Docker's chains stay untouched")
    .addHelpText("after", "\n`dockwall rollback` afterwards puts the removed rules back.\n\nExample:\n  dockwall remove\n")
    .action(async (_opts: object, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const nf = await netfilterFor(ctx);
      const result = await applyAndRecord(nf, emptyState(), ctx.store, ctx.lock, "remove");
      warn(result.warnings ?? []);
      print(result.changed ? [...result.summary, "removed: no dockwall rules or sets are left"] : ["nothing to remove"]);
    });
}
