import type { Command } from "commander";
import { mkdir, realpath, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { runOk } from "../exec/runner.js";
import { readPolicy } from "../pipeline.js";
import { renderUnit, UNIT_NAME } from "../daemon/systemd.js";
import { DEFAULT_POLICY, makeContext, print, warn, type GlobalOptions } from "./common.js";

const UNIT_DIR = "/etc/systemd/system";

export function registerInstall(program: Command): void {
  program
    .command("install")
    .description(`run \`dockwall watch\` as a systemd service (${UNIT_NAME}), started before Docker`)
    .option("-c, --config <file>", "policy file", DEFAULT_POLICY)
    .option("--metrics <address:port>", "the service serves Prometheus metrics there (watch --metrics)")
    .option("--no-start", "write and enable the unit, but do not start it now")
    .option("--unit-dir <dir>", "where the unit file goes", UNIT_DIR)
    .addHelpText(
      "after",
      `
The policy is checked first. The service is ready only once the policy is in the kernel, and
docker.service waits for it, so at boot Docker publishes nothing before the policy holds.

Example:
  sudo dockwall install -c /etc/dockwall/dockwall.yaml
`,
    )
    .action(async (opts: { config: string; start: boolean; unitDir: string; metrics?: string }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const ctx = makeContext(global);
      const policy = path.resolve(opts.config);
      warn((await readPolicy(policy)).warnings);
      const unit = renderUnit({
        node: process.execPath,
        script: await realpath(process.argv[1]!),
        policy,
        ...(opts.metrics ? { metrics: opts.metrics } : {}),
        ...(global.stateDir ? { stateDir: path.resolve(global.stateDir) } : {}),
      });
      const file = path.join(opts.unitDir, UNIT_NAME);
      await mkdir(opts.unitDir, { recursive: true });
      await writeFile(file, unit, { mode: 0o644 });
      await runOk(ctx.runner, "systemctl", ["daemon-reload"]);
      await runOk(ctx.runner, "systemctl", ["enable", UNIT_NAME]);
      if (opts.start) await runOk(ctx.runner, "systemctl", ["start", UNIT_NAME]);
      print([`installed ${file}: enabled${opts.start ? " and started" : ""}; it starts before docker.service`]);
    });

  program
    .command("uninstall")
    .description(`stop and remove the ${UNIT_NAME} service; the rules stay in place`)
    .option("--unit-dir <dir>", "where the unit file is", UNIT_DIR)
    .addHelpText("after", "\n`dockwall remove` afterwards takes the rules out too.\n\nExample:\n  sudo dockwall uninstall\n")
    .action(async (opts: { unitDir: string }, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const file = path.join(opts.unitDir, UNIT_NAME);
      // Disabling a unit that is not there fails; removing what is there is the point.
      await ctx.runner.run("systemctl", ["disable", "--now", UNIT_NAME]);
      await rm(file, { force: true });
      await runOk(ctx.runner, "systemctl", ["daemon-reload"]);
      print([`uninstalled ${file}; the rules stay in place (dockwall remove takes them out)`]);
    });
}
