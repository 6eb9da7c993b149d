import type { Command } from "commander";
import { compilePolicy } from "../pipeline.js";
import { applyAndRecord } from "../apply/transaction.js";
import { DEFAULT_POLICY, makeContext, print, warn, type GlobalOptions } from "./common.js";
import { ruleCounts } from "./summary.js";

export function registerApply(program: Command): void {
  program
    .command("apply")
    .description("apply the policy atomically (IPv4, IPv6 and sets together, or nothing)")
    .option("-c, --config <file>", "policy file", DEFAULT_POLICY)
    .addHelpText(
      "after",
      "\nThe policy is validated completely before the kernel is touched; a failure leaves the previous rules.\n\nExample:\n  dockwall apply -c /etc/dockwall/dockwall.yaml\n",
    )
    .action(async (opts: { config: string }, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const compiled = await compilePolicy(opts.config, ctx.runner);
      warn(compiled.warnings);
      const result = await applyAndRecord(compiled.netfilter, compiled.desired, ctx.store, ctx.lock, opts.config);
      print(result.changed ? result.summary : []);
      print([`${result.changed ? "applied" : "no changes"}: ${ruleCounts(compiled.desired)} (iptables ${compiled.netfilter.variant})`]);
    });
}
