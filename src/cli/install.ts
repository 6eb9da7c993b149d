import type { Command } from "commander";
import { replaceFile } from "../apply/safe-file.js";
import { access, constants, mkdir, readFile, realpath, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { runOk } from "../exec/runner.js";
import { selfProgram } from "../exec/self.js";
import { readPolicy } from "../pipeline.js";
import { installSteps, SYSTEMD_PATH, UNIT_NAME, UNIT_PATH, underHome } from "../daemon/systemd.js";
import { COMPLETION_SHELLS, completionFiles, completionPath, listedShells, type CompletionFile } from "../cli-docs/completion-files.js";
import { describeProgram } from "../cli-docs/commander.js";
import { DEFAULT_POLICY, makeContext, print, warn, type GlobalOptions } from "./common.js";

const UNIT_DIR = path.dirname(UNIT_PATH);

interface InstallOptions {
  config: string;
  start: boolean;
  unitDir: string;
  metrics?: string;
  dryRun?: boolean;
  completion?: boolean;
  completionRoot: string;
}

const COMPLETION_HELP = `also write the bash, zsh and fish completion files, for those of them in /etc/shells (${COMPLETION_SHELLS.map((s) => completionPath(s, "dockwall")).join(", ")})`;
const COMPLETION_ROOT_HELP = "put the completion files under this directory instead of / (packaging): for all three shells";

/**
 * The completion files to write or remove: on the system itself for the shells it has (/etc/shells:
 * no /etc/fish made on a host without fish), under a staging root for all of them.
 */
async function completionTargets(program: Command, root: string): Promise<CompletionFile[]> {
  const staged = path.resolve(root) !== "/";
  const shells = staged ? COMPLETION_SHELLS : listedShells(await readFile("/etc/shells", "utf8").catch(() => "/bin/bash\n"));
  return completionFiles(describeProgram(program), shells, path.resolve(root));
}

/** The unit runs `/usr/bin/env node`: a node that is not on systemd's PATH would not start. */
async function nodeOnSystemdPath(): Promise<boolean> {
  for (const dir of SYSTEMD_PATH) {
    if (await access(path.join(dir, "node"), constants.X_OK).then(() => true, () => false)) return true;
  }
  return false;
}

export function registerInstall(program: Command): void {
  program
    .command("install")
    .description(`run \`dockwall watch\` as a systemd service (${UNIT_NAME}), started before the network and Docker`)
    .option("-c, --config <file>", "policy file", DEFAULT_POLICY)
    .option("--metrics <address:port>", "the service serves Prometheus metrics there (watch --metrics)")
    .option("--no-start", "write and enable the unit, but do not start it now")
    .option("--unit-dir <dir>", `where the unit file goes; any other than ${UNIT_DIR} makes no systemctl call (packaging)`, UNIT_DIR)
    .option("--dry-run", "print the unit and the commands install would run; change nothing")
    .option("--completion", COMPLETION_HELP)
    .option("--completion-root <dir>", COMPLETION_ROOT_HELP, "/")
    .addHelpText(
      "after",
      `
The policy is checked first. The service is ready only once rules are in the kernel (the policy,
or when it cannot be applied the last applied rules or a lock-down with only SSH open), and the
network and docker.service wait for it, so at boot nothing is reachable before dockwall holds.
The service runs \`node\` found on systemd's PATH (${SYSTEMD_PATH.join(":")}), so a Node.js
upgrade does not break it, sandboxed (systemd-analyze security dockwall.service).

Example:
  sudo dockwall install -c /etc/dockwall/dockwall.yaml
  dockwall install --dry-run -c /etc/dockwall/dockwall.yaml
  sudo dockwall install --completion -c /etc/dockwall/dockwall.yaml   # and shell completion
`,
    )
    .action(async (opts: InstallOptions, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const policy = path.resolve(opts.config);
      warn((await readPolicy(policy)).warnings);
      const self = selfProgram();
      const script = await realpath(self.code!);
      if (!self.singleExecutable && !(await nodeOnSystemdPath())) {
        warn([`no node on systemd's PATH (${SYSTEMD_PATH.join(":")}): the service would not start; install Node.js system-wide or link it there, e.g. ln -s ${process.execPath} /usr/local/bin/node`]);
      }
      const steps = installSteps({
        script,
        singleExecutable: self.singleExecutable,
        policy,
        underHome: underHome(script) || underHome(policy),
        ...(opts.metrics ? { metrics: opts.metrics } : {}),
        ...(global.stateDir ? { stateDir: path.resolve(global.stateDir) } : {}),
        unitDir: opts.unitDir,
        start: opts.start,
      });
      const completion = opts.completion ? await completionTargets(cmd.parent!, opts.completionRoot) : [];
      if (opts.dryRun) {
        print([`# would write ${steps.unitFile}:`, ...steps.unit.trimEnd().split("\n")]);
        print(steps.directories.map((d) => `# would create ${d} (mode 0700)`));
        print(steps.systemctl.length > 0 ? steps.systemctl.map((a) => `# would run: systemctl ${a.join(" ")}`) : [`# would run no systemctl command (--unit-dir is not ${UNIT_DIR})`]);
        print(completion.map((c) => `# would write ${c.file} (${c.shell} completion)`));
        return;
      }
      const ctx = makeContext(global);
      for (const dir of steps.directories) await mkdir(dir, { recursive: true, mode: 0o700 });
      await mkdir(path.dirname(steps.unitFile), { recursive: true });
      await writeFile(steps.unitFile, steps.unit, { mode: 0o644 });
      for (const args of steps.systemctl) await runOk(ctx.runner, "systemctl", args);
      if (steps.systemctl.length === 0) {
        print([`wrote ${steps.unitFile}; no systemctl call (--unit-dir is not ${UNIT_DIR}): enable it where it is installed`]);
      } else {
        print([`installed ${steps.unitFile}: enabled${opts.start ? " and started" : ""}; it starts before the network and docker.service`]);
      }
      // After the service: a completion file that cannot be written must not keep the service from being installed.
      for (const c of completion) {
        await mkdir(path.dirname(c.file), { recursive: true, mode: 0o755 });
        // As root into folders others may write to (/usr/local is group staff's on Debian): never through a planted link.
        await replaceFile(c.file, c.text, 0o644);
      }
      if (completion.length > 0) print([`wrote ${completion.map((c) => `${c.file} (${c.shell})`).join(", ")}; a new shell completes dockwall`]);
    });

  program
    .command("uninstall")
    .description(`stop and remove the ${UNIT_NAME} service; the rules stay in place`)
    .option("--unit-dir <dir>", `where the unit file is; any other than ${UNIT_DIR} makes no systemctl call`, UNIT_DIR)
    .option("--completion", "also remove the completion files install --completion wrote")
    .option("--completion-root <dir>", "where install --completion-root put them", "/")
    .addHelpText("after", "\n`dockwall remove` afterwards takes the rules out too.\n\nExample:\n  sudo dockwall uninstall\n")
    .action(async (opts: { unitDir: string; completion?: boolean; completionRoot: string }, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const file = path.join(path.resolve(opts.unitDir), UNIT_NAME);
      const systemd = file === UNIT_PATH;
      // Disabling a unit that is not there fails; removing what is there is the point.
      if (systemd) await ctx.runner.run("systemctl", ["disable", "--now", UNIT_NAME]);
      await rm(file, { force: true });
      if (systemd) await runOk(ctx.runner, "systemctl", ["daemon-reload"]);
      // Every shell's file: /etc/shells may have lost a shell since install.
      const completion = opts.completion ? completionFiles(describeProgram(cmd.parent!), COMPLETION_SHELLS, path.resolve(opts.completionRoot)) : [];
      for (const c of completion) await rm(c.file, { force: true });
      print([`uninstalled ${file}${completion.length > 0 ? ` and the completion files` : ""}; the rules stay in place (dockwall remove takes them out)`]);
    });
}
