/** The completion files `dockwall install --completion` writes: which shells, which scripts, where. */
import path from "node:path";
import { bashCompletion } from "./bash.js";
import { fishCompletion } from "./fish.js";
import { zshCompletion } from "./zsh.js";
import type { CliProgram } from "./description.js";
import { COMPLETION_SHELLS, completionPath, type CompletionShell } from "./shell-paths.js";

export { COMPLETION_SHELLS, completionPath, type CompletionShell };

export const GENERATORS: Record<CompletionShell, (program: CliProgram) => string> = { bash: bashCompletion, zsh: zshCompletion, fish: fishCompletion };


/** The shells /etc/shells lists (by the last part of each path), in COMPLETION_SHELLS' order. */
export function listedShells(etcShells: string): CompletionShell[] {
  const names = new Set(etcShells.split("\n").map((l) => l.replace(/#.*/, "").trim()).filter((l) => l !== "").map((l) => path.basename(l)));
  return COMPLETION_SHELLS.filter((s) => names.has(s));
}

export interface CompletionFile {
  shell: CompletionShell;
  file: string;
  text: string;
}

/** The files to write: under root (the system's own "/" or a staging directory), for the given shells. */
export function completionFiles(program: CliProgram, shells: readonly CompletionShell[], root: string): CompletionFile[] {
  return shells.map((shell) => ({ shell, file: path.join(root, completionPath(shell, program.name)), text: GENERATORS[shell](program) }));
}
