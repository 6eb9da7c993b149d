import type { Command } from "commander";
import { Exit, makeContext, netfilterFor, print, warn, type GlobalOptions } from "./common.js";
import { readStatus, statusExitCode } from "../status/report.js";
import { humanStatus } from "../status/human.js";
import { readEngineInfo } from "../facts/docker.js";
import { readFirewallReport } from "../facts/firewall-report.js";
import { expectedPolicyProblem } from "../status/expected-policy.js";
import { readTextWithin, readFailure } from "../policy/read-file.js";
import { POLICY_LIMIT } from "../policy/limits.js";
import { escapeControls } from "../policy/quote.js";

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description("what is applied, whether the kernel still holds it (drift), and drop counters")
    .option("--json", "machine-readable output")
    .option("--expect-policy <file>", "also exit 3 unless the rules in force were compiled from this policy file's content (a health check)")
    .addHelpText(
      "after",
      "\nWhere the jumps are and what dockwall's chains hold are read from the kernel; drift lists what was applied\nand is not in the kernel (missing) and what the kernel holds in dockwall's part that was not applied (extra).\nExit code: 0 applied and in sync, 3 drift, nothing applied, watch cannot apply the policy (DEGRADED), or\nwith --expect-policy the rules in force are not that file's, 2 a state file is not valid (it is named, with the way out).\n\nExample:\n  dockwall status --json\n",
    )
    .action(async (opts: { json?: boolean; expectPolicy?: string }, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      let expected: string | undefined;
      if (opts.expectPolicy !== undefined) {
        try {
          expected = await readTextWithin(opts.expectPolicy, POLICY_LIMIT);
        } catch (e) {
          process.stderr.write(`dockwall: --expect-policy ${escapeControls(opts.expectPolicy)}: ${readFailure(e)}\n`);
          throw new Exit(1);
        }
      }
      const nf = await netfilterFor(ctx);
      const firewall = readEngineInfo().then((docker) => readFirewallReport(ctx.runner, docker, nf.variant));
      const report = await readStatus({ nf, store: ctx.store, warn: (l) => warn([l]), firewall });
      print(opts.json ? [JSON.stringify(report, null, 2)] : humanStatus(report));
      const problem = expected === undefined ? undefined : expectedPolicyProblem(await ctx.store.current(), opts.expectPolicy!, expected);
      if (problem !== undefined) print([problem]);
      const code = problem !== undefined ? 3 : statusExitCode(report);
      if (code !== 0) throw new Exit(code);
    });
}
