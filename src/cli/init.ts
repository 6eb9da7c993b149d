import type { Command } from "commander";
import { DEFAULT_POLICY, Exit, print, warn } from "./common.js";
import { loadPolicyText } from "../policy/load.js";
import { formatPolicyError } from "../policy/errors.js";
import { escapeControls } from "../policy/quote.js";
import { readInitFacts } from "../init/read-facts.js";
import { starterPolicy } from "../init/starter-policy.js";
import { FileRefused, PolicyExists, writePolicyFile } from "../init/write-policy.js";

export function registerInit(program: Command): void {
  program
    .command("init")
    .description("write a starter policy from what this host runs now: this SSH session's port kept open to its source, everything else closed and listed")
    .option("-c, --config <file>", "where to write it (- for standard output)", DEFAULT_POLICY)
    .option("--force", "replace an existing policy file (never a symbolic link)")
    .addHelpText(
      "after",
      `
Opens the SSH port of the current session (SSH_CONNECTION, or a parent process's under sudo) to the
session's source only, as the group admins; with no session, port 22 to anyone, said in the file.
Every published container port and listening host socket is listed as a commented entry, closed:
uncomment one to open it. When Docker cannot be reached the policy is still written, closed, with a
warning in it and here that its published ports are not listed.
Exit codes: 0 written, 1 the file exists (no --force) or usage, 2 nothing written (an error).

Example:
  dockwall init && dockwall check && dockwall plan && dockwall apply --confirm 120
`,
    )
    .action(async (opts: { config: string; force?: boolean }) => {
      const read = await readInitFacts();
      if (!read.ok) {
        process.stderr.write(`dockwall: ${read.message}; nothing written (the SSH port to keep open is not known)\n`);
        throw new Exit(2);
      }
      const starter = starterPolicy(read.facts);
      const toStdout = opts.config === "-";
      // The path in messages: one line whatever it holds.
      const shown = escapeControls(opts.config);
      const file = toStdout ? "<stdout>" : opts.config;
      // What init writes must load as check loads it: otherwise nothing is written.
      const loaded = await loadPolicyText(starter.text, file, () => Promise.reject(new Error("a starter policy names no file")));
      if (!loaded.ok) {
        process.stderr.write(`dockwall: the starter policy does not load (a bug in dockwall init); nothing written:\n${loaded.errors.map(formatPolicyError).join("\n")}\n`);
        throw new Exit(2);
      }
      if (toStdout) {
        warn(starter.warnings);
        process.stdout.write(starter.text);
        return;
      }
      try {
        await writePolicyFile(opts.config, starter.text, { force: opts.force === true });
      } catch (e) {
        if (e instanceof PolicyExists) {
          process.stderr.write(`dockwall: ${e.message}\n`);
          throw new Exit(1);
        }
        if (e instanceof FileRefused) {
          process.stderr.write(`dockwall: ${shown}: ${e.message}; nothing written\n`);
          throw new Exit(2);
        }
        throw new Error(`cannot write ${shown}: ${(e as Error).message}; nothing written`);
      }
      warn(starter.warnings);
      const c = opts.config === DEFAULT_POLICY ? "" : ` -c ${shown}`;
      print([
        `wrote ${shown}: opens ${starter.opens.join(", ")}; closed and listed in it: ${starter.closed.published} published container port(s), ${starter.closed.listening} listening host port(s)`,
        `next: dockwall check${c} && dockwall plan${c}, then dockwall apply${c} --confirm 120`,
      ]);
    });
}

