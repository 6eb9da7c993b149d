import type { Command } from "commander";
import { checkInterfacesHere, readPolicy } from "../pipeline.js";
import { DEFAULT_POLICY, print, warn } from "./common.js";

export function registerCheck(program: Command): void {
  program
    .command("check")
    .description("validate the policy file: exit 0, or print every error as FILE:LINE:COL and exit 1")
    .option("-c, --config <file>", "policy file", DEFAULT_POLICY)
    .addHelpText("after", "\nExample:\n  dockwall check -c /etc/dockwall/dockwall.yaml\n")
    .action(async (opts: { config: string }) => {
      const { policy, warnings } = await readPolicy(opts.config);
      // Interfaces missing on this machine only warn: the policy may be for another host (see checkInterfacesHere).
      warn([...warnings, ...checkInterfacesHere(policy)]);
      const members = policy.groups.reduce((n, g) => n + g.ipv4.length + g.ipv6.length, 0);
      print([
        `${opts.config}: ok (${policy.groups.length} groups with ${members} members, ${policy.host.length} host and ${policy.containers.length} container entries)`,
      ]);
    });
}
