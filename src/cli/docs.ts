/** `dockwall completion SHELL` and `dockwall man [PAGE]`: generated from the program's own definitions. */
import { Argument, type Command } from "commander";
import { describeProgram } from "../cli-docs/commander.js";
import { COMPLETION_SHELLS, GENERATORS, completionPath, type CompletionShell } from "../cli-docs/completion-files.js";
import { commandManPage, type ManExtras } from "../cli-docs/man-cli.js";
import { policyManPage } from "../cli-docs/man-policy.js";
import { POLICY_EXAMPLE, POLICY_KEYS, POLICY_RULES } from "../policy/reference.js";
import { DEFAULT_STATE_DIR } from "../apply/state-store.js";
import { UNIT_PATH } from "../daemon/systemd.js";
import { DEFAULT_POLICY } from "./common.js";
import { referenceMarkdown } from "../cli-docs/markdown.js";
import { readRegularFile } from "../files/regular-file.js";

const PAGES = ["dockwall", "dockwall.yaml"] as const;

/** What dockwall reads besides its arguments: dockwall(8) and docs/REFERENCE.md list it. */
const FILES_AND_ENVIRONMENT: Pick<ManExtras, "files" | "environment"> = {
  files: [
    { path: DEFAULT_POLICY, meaning: "the policy file commands read unless given -c FILE; see dockwall.yaml(5)" },
    { path: DEFAULT_STATE_DIR, meaning: "applied states and the lock (--state-dir, DOCKWALL_STATE_DIR)" },
    { path: UNIT_PATH, meaning: "the service dockwall install writes" },
  ],
  environment: [
    { name: "DOCKWALL_STATE_DIR", meaning: `the state directory when --state-dir is not given (default ${DEFAULT_STATE_DIR}); an absolute path` },
    { name: "DOCKER_HOST", meaning: "where Docker is reached: unix:///absolute/path or tcp://host[:port] (default unix:///var/run/docker.sock)" },
    { name: "DOCKWALL_DEBUG", meaning: "when set, a failure also prints its stack trace" },
  ],
};

/** The pages by name, for the program they describe; the build writes them into man/. */
export function manPages(program: Command): Record<(typeof PAGES)[number], { section: number; text: string }> {
  const cli = describeProgram(program);
  return {
    dockwall: {
      section: 8,
      text: commandManPage(cli, {
        section: 8,
        manual: "System Administration",
        ...FILES_AND_ENVIRONMENT,
        seeAlso: ["dockwall.yaml(5)", "iptables(8)", "ip6tables(8)", "ipset(8)", "systemctl(1)"],
      }),
    },
    "dockwall.yaml": {
      section: 5,
      text: policyManPage(
        { name: "dockwall.yaml", ...(cli.version ? { version: cli.version } : {}), summary: "the dockwall policy file", defaultPath: DEFAULT_POLICY, keys: POLICY_KEYS, rules: POLICY_RULES, example: POLICY_EXAMPLE },
        { section: 5, manual: "File Formats", seeAlso: ["dockwall(8)"] },
      ),
    },
  };
}

export function registerDocs(program: Command): void {
  program
    .command("completion")
    .description("print the shell completion script for bash, zsh or fish")
    .addArgument(new Argument("<shell>", "the shell").choices(COMPLETION_SHELLS))
    .addHelpText(
      "after",
      `
Generated from the same definitions as --help. Put it where the shell loads it:
${COMPLETION_SHELLS.map((s) => `  dockwall completion ${s} > ${completionPath(s, "dockwall")}`).join("\n")}
or load it into this shell only:
  source <(dockwall completion bash)      # zsh: source <(dockwall completion zsh), after compinit
  dockwall completion fish | source
(dockwall install --completion writes them for the shells in /etc/shells.)
`,
    )
    .action((shell: CompletionShell, _opts: unknown, cmd: Command) => {
      process.stdout.write(GENERATORS[shell](describeProgram(cmd.parent!)));
    });

  program
    .command("man")
    .description("print a man page as roff: dockwall(8), the command line, or dockwall.yaml(5), the policy file")
    .addArgument(new Argument("[page]", "the page").choices([...PAGES]).default("dockwall"))
    .addHelpText("after", "\nThe package installs both (npm's man field); from a checkout:\n  dockwall man dockwall.yaml | man -l -\n")
    .action((page: (typeof PAGES)[number], _opts: unknown, cmd: Command) => {
      process.stdout.write(manPages(cmd.parent!)[page].text);
    });

  // Hidden: a build step, not a user's command (npm run build:docs writes docs/REFERENCE.md with it).
  program
    .command("reference", { hidden: true })
    .description("print docs/REFERENCE.md: the policy keys and commands, with the hand-written part from FILE")
    .argument("<file>", "the hand-written part (exit codes, JSON output)")
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const handWritten = (await readRegularFile(file, { maxBytes: 1024 * 1024, what: "the reference's hand-written part" })).toString("utf8");
      const policy = { keys: POLICY_KEYS, rules: POLICY_RULES, example: POLICY_EXAMPLE, defaultPath: DEFAULT_POLICY };
      process.stdout.write(referenceMarkdown({ program: describeProgram(cmd.parent!), policy, ...FILES_AND_ENVIRONMENT, handWritten, handWrittenPath: file }));
    });
}
