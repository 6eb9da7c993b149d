#!/usr/bin/env node
/** dockwall's command line: each command lives in its own file and only parses, calls and prints. */
import { Command, CommanderError } from "commander";
import { registerCheck } from "./check.js";
import { registerPlan } from "./plan.js";
import { registerApply } from "./apply.js";
import { registerStatus } from "./status.js";
import { registerRemove } from "./remove.js";
import { registerRollback } from "./rollback.js";
import { registerWatch } from "./watch.js";
import { registerInstall } from "./install.js";
import { registerAudit } from "./audit.js";
import { registerExplain } from "./explain.js";
import { registerConfirm } from "./confirm.js";
import { registerDocs } from "./docs.js";
import { registerInit } from "./init.js";
import { Exit } from "./common.js";
import { ExitAs } from "./exit-as.js";
import { PolicyInvalid } from "../pipeline.js";
import { VERSION } from "../version.js";

const program = new Command()
  .name("dockwall")
  .description("Keep a Docker host closed by default: one policy file, compiled into iptables, ip6tables and ipset rules beside Docker's own.")
  .version(VERSION)
  .option("--state-dir <dir>", "where applied states and the lock are kept (env DOCKWALL_STATE_DIR)", undefined)
  .showHelpAfterError()
  .exitOverride()
  .addHelpText(
    "after",
    `
Exit codes: 0 ok, 1 invalid policy or usage, 2 failed (previous rules kept), 3 drift (status).
Docker is reached through DOCKER_HOST (default unix:///var/run/docker.sock).

Example:
  dockwall check -c /etc/dockwall/dockwall.yaml && dockwall apply -c /etc/dockwall/dockwall.yaml
`,
  );

// The first command a new admin runs: first in --help.
registerInit(program);
for (const register of [registerCheck, registerPlan, registerApply, registerStatus, registerAudit, registerExplain, registerRemove, registerRollback, registerConfirm, registerWatch, registerInstall]) {
  register(program);
}
// Last: completion and man describe every command registered before them (at run time, so all of them).
registerDocs(program);
for (const cmd of program.commands) cmd.exitOverride();

async function main(): Promise<number> {
  try {
    await program.parseAsync(process.argv);
    return 0;
  } catch (e) {
    return report(e);
  }
}

function report(e: unknown): number {
  if (e instanceof ExitAs) return report(e.inner) === 0 ? 0 : e.code;
  if (e instanceof Exit) return e.code;
  if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 1;
  if (e instanceof PolicyInvalid) {
    for (const line of e.errors) process.stderr.write(`${line}\n`);
    process.stderr.write(`dockwall: ${e.errors.length} error${e.errors.length === 1 ? "" : "s"} in the policy; nothing was applied\n`);
    return 1;
  }
  const message = e instanceof Error ? e.message : String(e);
  process.stderr.write(`dockwall: ${message}\n`);
  if (process.env.DOCKWALL_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  // ApplyError, UnsupportedHost, CommandNotFoundError, a Docker or kernel failure: nothing half-done.
  return 2;
}

// `dockwall --help | head` closes the pipe early: that is the reader's choice, not an error to report.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw e;
});

void main().then((code) => {
  process.exitCode = code;
});
