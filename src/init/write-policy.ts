/**
 * Writing the starter policy where a policy may already be: never over an existing file unless
 * asked (`--force`), never through a symbolic link, never half-written.
 *
 * A new file is written to a temporary file beside it and then hard-linked into place: link(2)
 * fails if the name exists (whatever it is, a link included, which it does not follow), so the
 * file appears whole or not at all, and a policy that appeared meanwhile is not touched. With
 * `force`, an existing regular file is replaced by rename (apply/safe-file.ts), keeping its mode;
 * a symbolic link is refused even then (the policy is often a link into a configuration
 * repository: replacing the link would silently cut it, writing through it would write there).
 */
import { link, lstat, mkdir } from "node:fs/promises";
import path from "node:path";
import { putInPlace, replaceFile } from "../apply/safe-file.js";
import { refuseKind, FileRefused } from "../files/regular-file.js";
import { escapeControls } from "../policy/quote.js";

const NEW_POLICY_MODE = 0o644;

/** The file exists and `force` was not given. */
export class PolicyExists extends Error {}

export { FileRefused };

export async function writePolicyFile(file: string, text: string, options: { force: boolean }): Promise<void> {
  const existing = await lstat(file).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return undefined;
    throw e;
  });
  if (existing) {
    if (!options.force) throw new PolicyExists(`${escapeControls(file)} exists: not overwritten (give --force to replace it, or -c another path)`);
    // A link, a directory, a FIFO: refused even then.
    refuseKind(existing, { what: "a policy file that --force replaces" });
    await replaceFile(file, text, existing.mode & 0o7777);
    return;
  }
  const dir = path.dirname(file);
  // The policy's own folder (/etc/dockwall) is made when missing; a missing parent of it is a mistyped path.
  await mkdir(dir, { mode: 0o755 }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "EEXIST") throw e;
  });
  await createNew(file, text);
}

async function createNew(file: string, text: string): Promise<void> {
  // link(2), not rename: it fails if the name exists, so a policy that appeared meanwhile is not touched.
  await putInPlace(file, text, NEW_POLICY_MODE, (tmp) =>
    link(tmp, file).catch((e: NodeJS.ErrnoException) => {
      throw e.code === "EEXIST" ? new PolicyExists(`${escapeControls(file)} appeared while dockwall init wrote it: not overwritten`) : e;
    }),
  );
}
