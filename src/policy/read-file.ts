/**
 * How the loader reads a policy or group file: through the one bounded reader (files/regular-file.ts),
 * which takes only a regular file and only up to a size. Symbolic links are followed:
 * /etc/dockwall/dockwall.yaml as a link into a configuration repository is normal.
 */
import { FileRefused, readRegularFile, size, tooBig, type ReadLimit } from "../files/regular-file.js";
import { escapeControls } from "./quote.js";

export { FileRefused, readRegularFile, size, type ReadLimit };

/** Why a read failed, in words; never the raw system message, which repeats the (user-written) path. */
export function readFailure(err: unknown): string {
  if (err instanceof FileRefused) return err.message;
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "it is a directory";
    case "ENOTDIR":
      return "a part of the path is not a directory";
    case "ELOOP":
      return "too many levels of symbolic links";
    case "ENAMETOOLONG":
      return "the name is too long";
    case "ENXIO":
      return "no such device or address (a socket?)";
    case "EMFILE":
    case "ENFILE":
      return "too many open files";
    case "EIO":
      return "input/output error";
    case "ERR_INVALID_ARG_VALUE":
    case "ERR_INVALID_ARG_TYPE":
      return "not a usable file name";
  }
  return escapeControls(e?.code ?? e?.message ?? String(err));
}

/** Reads a file's text within a limit; the loader is given one so tests can supply files from memory. */
export type ReadText = (file: string, limit: ReadLimit) => Promise<string>;

export const readTextWithin: ReadText = async (file, limit) => (await readRegularFile(file, limit)).toString("utf8");

/**
 * The text from any ReadText, held to the limit again: a reader that ignores it (a test's, a
 * caller's) still cannot hand the loader more than the limit allows.
 */
export async function readWithin(readText: ReadText, file: string, limit: ReadLimit): Promise<string> {
  const text = await readText(file, limit);
  // Counted in UTF-16 units, never more than the bytes they were decoded from (an invalid byte
  // becomes one U+FFFD), so a file the real reader accepted is never refused here.
  if (text.length > limit.maxBytes) throw new FileRefused(tooBig(text.length, limit));
  return text;
}
