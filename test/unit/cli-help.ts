/**
 * What the built program's --help says it offers, read from the help text itself (not through
 * src/cli-docs), so the completion and man page tests compare the generated files with --help.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ProcessRunner } from "../../src/exec/runner.js";

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../dockwall.cjs");
const runner = new ProcessRunner();

export async function dockwall(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runner.run(process.execPath, [CLI, ...args]);
}

export interface HelpInventory {
  commands: string[];
  /** Option spellings (-c, --config) by command name; "" is the program's own. */
  options: Map<string, string[]>;
}

/** The terms of one section of a help text ("Options:", "Commands:"): each starts at column 2. */
function terms(help: string, heading: string): string[] {
  const lines = help.split("\n");
  const start = lines.indexOf(heading);
  if (start < 0) return [];
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line === "" || !line.startsWith(" ")) break;
    const m = /^ {2}(\S.*?)(?: {2,}|$)/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

function spellingsOf(term: string): string[] {
  return [...term.replace(/[<[].*$/, "").matchAll(/(?:^|[\s,])(--?[A-Za-z0-9][\w-]*)/g)].map((m) => m[1]!);
}

export async function helpInventory(): Promise<HelpInventory> {
  const root = await dockwall(["--help"]);
  if (root.code !== 0) throw new Error(`dockwall --help: exit ${root.code}: ${root.stderr}`);
  const commands = terms(root.stdout, "Commands:").map((t) => t.split(" ")[0]!);
  const options = new Map<string, string[]>([["", terms(root.stdout, "Options:").flatMap(spellingsOf)]]);
  for (const c of commands) {
    const r = await dockwall(["help", c]);
    options.set(c, terms(r.stdout, "Options:").flatMap(spellingsOf));
  }
  return { commands, options };
}
