/**
 * Reads the command line's description off a commander program: the commands, options and
 * arguments --help shows (hidden ones stay hidden), and the text each command adds after its help.
 * Only commander's public Help API and the objects it returns are used, so what is described is
 * what --help prints.
 */
import type { EventEmitter } from "node:events";
import type { Argument, Command, Option } from "commander";
import type { CliArgument, CliCommand, CliOption, CliProgram } from "./description.js";

export function describeProgram(program: Command): CliProgram {
  const version = program.version();
  return { ...describeCommand(program, []), ...(version !== undefined ? { version } : {}) };
}

function describeCommand(cmd: Command, siblings: Command[]): CliCommand {
  const help = cmd.createHelp();
  const subcommands = help.visibleCommands(cmd);
  // Commander's own `help [command]` takes the name of one of its siblings.
  const isHelpCommand = cmd.name() === "help" && cmd.commands.length === 0 && siblings.length > 0;
  return {
    name: cmd.name(),
    aliases: cmd.aliases(),
    summary: cmd.summary() || cmd.description(),
    description: cmd.description(),
    usage: cmd.usage(),
    arguments: cmd.registeredArguments.map((a) => describeArgument(a, isHelpCommand ? siblings.map((s) => s.name()) : undefined)),
    options: help.visibleOptions(cmd).map(describeOption),
    commands: subcommands.map((sub) => describeCommand(sub, subcommands)),
    helpAfter: helpText(cmd, "afterHelp"),
  };
}

function describeOption(o: Option): CliOption {
  const value = /[<[]([^>\]]+)[>\]]/.exec(o.flags);
  const out: CliOption = { flags: o.flags, description: o.description };
  if (o.short) out.short = o.short;
  if (o.long) out.long = o.long;
  if (value) out.value = { name: value[1]!.replace(/\.\.\.$/, ""), required: o.required, variadic: o.variadic };
  if (o.argChoices) out.choices = [...o.argChoices];
  const shown = shownDefault(o);
  if (shown !== undefined) out.default = shown;
  return out;
}

/** The default exactly when and as commander's Help.optionDescription shows it. */
function shownDefault(o: Option): string | undefined {
  if (o.defaultValue === undefined) return undefined;
  const shows = o.required || o.optional || (o.isBoolean() && typeof o.defaultValue === "boolean");
  if (!shows) return undefined;
  return o.defaultValueDescription || JSON.stringify(o.defaultValue);
}

function describeArgument(a: Argument, names: string[] | undefined): CliArgument {
  const choices = a.argChoices ?? names;
  return {
    name: a.name(),
    description: a.description,
    required: a.required,
    variadic: a.variadic,
    ...(choices ? { choices: [...choices] } : {}),
  };
}

/**
 * What addHelpText("after") added: commander keeps it only as a listener of the help event, so the
 * event is raised with a writer that collects instead of printing.
 */
function helpText(cmd: Command, event: "afterHelp"): string {
  let text = "";
  (cmd as unknown as EventEmitter).emit(event, { error: false, command: cmd, write: (s: string) => (text += s) });
  return text.replace(/^\n+/, "").trimEnd();
}
