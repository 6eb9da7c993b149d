/**
 * The one way dockwall reads a policy or group file: only a regular file, only up to a size.
 *
 * `readFile` on a FIFO waits for a writer forever, on /dev/zero or /dev/urandom it reads until
 * memory runs out, and a file that grows while read is read as far as it grows. Here the type is
 * judged before the open (opening a device can itself act: a tape rewinds, a watchdog arms), the
 * open cannot block (O_NONBLOCK: a FIFO swapped in after that check opens at once and is refused)
 * and cannot take a terminal (O_NOCTTY), the opened file is judged again (it is the one read), and
 * no more than the limit is ever read, however the file changes meanwhile. Symbolic links are
 * followed: /etc/dockwall/dockwall.yaml as a link into a configuration repository is normal.
 */
import { constants, type Stats } from "node:fs";
import { open, stat } from "node:fs/promises";
import { escapeControls } from "./quote.js";

/** A file that was opened (or looked at) and refused; the message says why, without the file name. */
export class FileRefused extends Error {}

const CHUNK = 64 * 1024;

/** The file's bytes; throws FileRefused for a file that is not regular or is over the limit, errno errors otherwise. */
export async function readRegularFile(file: string, limit: ReadLimit): Promise<Buffer> {
  const { maxBytes, what } = limit;
  refuseKind(await stat(file), what);
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const st = await handle.stat();
    refuseKind(st, what);
    if (st.size > maxBytes) throw new FileRefused(tooBig(st.size, limit));
    const parts: Buffer[] = [];
    let total = 0;
    // One read of the size fstat gave, plus a byte to see growth; /proc files say 0 and are read in chunks.
    let want = st.size + 1;
    for (;;) {
      const buffer = Buffer.allocUnsafe(Math.min(Math.max(want, CHUNK), maxBytes + 1 - total));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      parts.push(buffer.subarray(0, bytesRead));
      total += bytesRead;
      if (total > maxBytes) throw new FileRefused(`it grew to more than ${size(maxBytes)} while it was read; ${sizeRule(limit)}`);
      want = CHUNK;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, total);
  } finally {
    await handle.close();
  }
}

function refuseKind(st: Stats, what: string): void {
  if (st.isFile()) return;
  const kind = st.isDirectory()
    ? "a directory"
    : st.isFIFO()
      ? "a named pipe (FIFO)"
      : st.isCharacterDevice()
        ? "a character device"
        : st.isBlockDevice()
          ? "a block device"
          : st.isSocket()
            ? "a socket"
            : "not a regular file";
  throw new FileRefused(`it is ${kind}; ${what} must be a regular file`);
}

function tooBig(bytes: number, limit: ReadLimit): string {
  return `it is ${bytes.toLocaleString("en-US")} bytes; ${sizeRule(limit)}`;
}

function sizeRule(limit: ReadLimit): string {
  return limit.sizeRule ?? `${limit.what} may be at most ${size(limit.maxBytes)}`;
}

/** "4 MiB", "64 MiB", "812 bytes": limits as people read them. */
export function size(bytes: number): string {
  if (bytes < 1024 * 1024) return `${bytes} bytes`;
  const mib = bytes / (1024 * 1024);
  return `${Number.isInteger(mib) ? mib : mib.toFixed(1)} MiB`;
}

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

/** How much of a file may be read, and how to name the file and the rule in a refusal. */
export interface ReadLimit {
  maxBytes: number;
  /** "the policy", "a group file": what must be a regular file. */
  what: string;
  /** The size rule in words, when it is not simply "WHAT may be at most SIZE". */
  sizeRule?: string;
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
