/**
 * What the command line offers, as plain data: the one description the completion scripts and the
 * dockwall(8) page are generated from. It is read off the commander program (commander.ts), the
 * same objects `--help` prints, so a command or option added there appears everywhere at once.
 */

export interface CliOption {
  /** As written to commander and shown by --help: "-c, --config <file>". */
  flags: string;
  short?: string;
  long?: string;
  description: string;
  /** The value the option takes, if any ("<file>" is required, "[file]" optional). */
  value?: { name: string; required: boolean; variadic: boolean };
  choices?: string[];
  /** The default as --help shows it, already quoted by commander ("\"/etc/dockwall/dockwall.yaml\""). */
  default?: string;
}

export interface CliArgument {
  name: string;
  description: string;
  required: boolean;
  variadic: boolean;
  choices?: string[];
}

export interface CliCommand {
  name: string;
  aliases: string[];
  /** One line, as the parent's command list shows it. */
  summary: string;
  description: string;
  /** As --help's first line shows it, without the program name: "[options] <source> <service>". */
  usage: string;
  arguments: CliArgument[];
  options: CliOption[];
  commands: CliCommand[];
  /** Text added after the generated help (addHelpText "after"): notes, exit codes, examples. */
  helpAfter: string;
}

export interface CliProgram extends CliCommand {
  version?: string;
}

/** What completion offers for an option's or argument's value, from its name and choices. */
export type ValueKind = { kind: "choices"; words: string[] } | { kind: "file" } | { kind: "directory" } | { kind: "text" };

export function valueKind(name: string, choices?: string[]): ValueKind {
  if (choices && choices.length > 0) return { kind: "choices", words: choices };
  if (/^(dir|directory|.*-dir)$/i.test(name)) return { kind: "directory" };
  if (/^(file|path|.*-file)$/i.test(name)) return { kind: "file" };
  return { kind: "text" };
}

/**
 * The options of the last command of a path (root first) and of every command above it: commander
 * takes a parent's options after the command too. Its own come first; a spelling already taken
 * (each command's own -h, --help) hides the parent's.
 */
export function optionsInScope(path: CliCommand[]): CliOption[] {
  const seen = new Set<string>();
  return [...path].reverse().flatMap((c) => c.options).filter((o) => {
    const names = spellings(o);
    if (names.some((n) => seen.has(n))) return false;
    for (const n of names) seen.add(n);
    return true;
  });
}

/** Every command below the root with the chain of commands that leads to it (root first), depth first. */
export function walk(root: CliCommand): { path: CliCommand[]; command: CliCommand }[] {
  const out: { path: CliCommand[]; command: CliCommand }[] = [];
  const visit = (path: CliCommand[]) => {
    const command = path[path.length - 1]!;
    out.push({ path, command });
    for (const sub of command.commands) visit([...path, sub]);
  };
  visit([root]);
  return out;
}

/** The option spellings an option answers to: "-c" and "--config". */
export function spellings(o: CliOption): string[] {
  return [o.short, o.long].filter((s): s is string => s !== undefined);
}
