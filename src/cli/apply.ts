import type { Command } from "commander";
import { applyPolicy } from "../apply-policy.js";
import { DEFAULT_POLICY, FULL_READ_HELP, makeContext, print, warn, type GlobalOptions } from "./common.js";
import { ruleCounts } from "./summary.js";

export function registerApply(program: Command): void {
  program
    .command("apply")
    .description("apply the policy atomically (IPv4, IPv6 and sets together, or nothing)")
    .option("-c, --config <file>", "policy file", DEFAULT_POLICY)
    .option("--full-read", FULL_READ_HELP)
    .addHelpText(
      "after",
      "\nThe policy is validated completely before the kernel is touched; a failure leaves the previous rules.\n\nExample:\n  dockwall apply -c /etc/dockwall/dockwall.yaml\n",
    )
    .action(async (opts: { config: string; fullRead?: boolean }, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const { compiled, result } = await applyPolicy(opts.config, ctx, { fullRead: opts.fullRead === true, onCompiled: (c) => warn(c.warnings) });
      print(result.changed ? result.summary : []);
      print([`${result.changed ? "applied" : "no changes"}: ${ruleCounts(compiled.desired)} (iptables ${compiled.netfilter.variant})`]);
    });
}
