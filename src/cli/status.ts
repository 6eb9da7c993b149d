import type { Command } from "commander";
import { Exit, makeContext, netfilterFor, print, warn, type GlobalOptions } from "./common.js";
import { readStatus, statusExitCode } from "../status/report.js";
import { humanStatus } from "../status/human.js";

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description("what is applied, whether the kernel still holds it (drift), and drop counters")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      "\nWhere the jumps are and what dockwall's chains hold are read from the kernel; drift lists what was applied\nand is not in the kernel (missing) and what the kernel holds in dockwall's part that was not applied (extra).\nExit code: 0 applied and in sync, 3 drift, nothing applied, or watch cannot apply the policy (DEGRADED), 2 a state file is not valid (it is named, with the way out).\n\nExample:\n  dockwall status --json\n",
    )
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const report = await readStatus({ nf: await netfilterFor(ctx), store: ctx.store, warn: (l) => warn([l]) });
      print(opts.json ? [JSON.stringify(report, null, 2)] : humanStatus(report));
      const code = statusExitCode(report);
      if (code !== 0) throw new Exit(code);
    });
}
