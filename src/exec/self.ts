/**
 * How this program starts itself again (the confirm keeper, the systemd unit, the identity of the
 * running code): `node dist/dockwall.cjs` as the npm package runs it, or the single executable
 * (Node's single executable applications) on its own. In a single executable process.argv[1] is not
 * a script but the name it was called by ("dockwall" found on PATH, a relative path): passed back
 * as an argument it would be read as a command, and it may name no file.
 */
import { createRequire } from "node:module";

export interface SelfProgram {
  /** The file to run: the single executable, or node. */
  file: string;
  /** The arguments before dockwall's own: the script for node, none for the single executable. */
  args: string[];
  /** The file that holds dockwall's code: the single executable or the script (as called: may be relative). */
  code: string | undefined;
  singleExecutable: boolean;
}

/**
 * Node's own answer (node:sea, since Node.js 20.12), asked when needed: a node older than that (no
 * such module) is no single executable of ours, and must still get as far as its own error messages.
 */
function isSingleExecutable(): boolean {
  try {
    return (createRequire(process.execPath)("node:sea") as typeof import("node:sea")).isSea();
  } catch {
    return false;
  }
}

export function selfProgram(): SelfProgram {
  if (isSingleExecutable()) return { file: process.execPath, args: [], code: process.execPath, singleExecutable: true };
  const script = process.argv[1];
  return { file: process.execPath, args: script === undefined ? [] : [script], code: script, singleExecutable: false };
}
