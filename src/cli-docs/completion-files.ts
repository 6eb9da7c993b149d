/**
 * Where `dockwall install --completion` puts the completion scripts: the directories each shell
 * loads completions from by itself for a program installed under /usr/local (npm install -g), and
 * fish's system-wide one (Debian's fish does not look under /usr/local).
 */
import path from "node:path";
import { bashCompletion } from "./bash.js";
import { fishCompletion } from "./fish.js";
import { zshCompletion } from "./zsh.js";
import type { CliProgram } from "./description.js";

export const COMPLETION_SHELLS = ["bash", "zsh", "fish"] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

export const GENERATORS: Record<CompletionShell, (program: CliProgram) => string> = { bash: bashCompletion, zsh: zshCompletion, fish: fishCompletion };

export function completionPath(shell: CompletionShell, name: string): string {
  switch (shell) {
    case "bash":
      return `/usr/local/share/bash-completion/completions/${name}`;
    case "zsh":
      return `/usr/local/share/zsh/site-functions/_${name}`;
    case "fish":
      return `/etc/fish/completions/${name}.fish`;
  }
}

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
