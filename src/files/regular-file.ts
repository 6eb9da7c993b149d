/**
 * The one bounded reader of files dockwall did not write itself, or must not trust: a policy, a
 * group file, a state file. Only a regular file, only up to a size.
 *
 * `readFile` on a FIFO waits for a writer forever, on /dev/zero or /dev/urandom it reads until
 * memory runs out, and a file that grows while read is read as far as it grows. Here the type is
 * judged before the open (opening a device can itself act: a tape rewinds, a watchdog arms), the
 * open cannot block (O_NONBLOCK: a FIFO swapped in after that check opens at once and is refused)
 * and cannot take a terminal (O_NOCTTY), the opened file is judged again (it is the one read), and
 * no more than the limit is ever read, however the file changes meanwhile.
 */
import { constants, type Stats } from "node:fs";
import { lstat, open, stat } from "node:fs/promises";

/** A file that was opened (or looked at) and refused; the message says why, without the file name. */
export class FileRefused extends Error {}

/** How much of a file may be read, and how to name the file and the rule in a refusal. */
export interface ReadLimit {
  maxBytes: number;
  /** "the policy", "a group file", "a state file": what must be a regular file. */
  what: string;
  /** The size rule in words, when it is not simply "WHAT may be at most SIZE". */
  sizeRule?: string;
  /**
   * Refuse a symbolic link instead of following it: for files in dockwall's own state directory,
   * where a link can only have been planted. (A policy that is a link into a configuration
   * repository is normal, and is followed.)
   */
  noFollow?: boolean;
}

const CHUNK = 64 * 1024;

/** The file's bytes; throws FileRefused for a file that is not regular or is over the limit, errno errors otherwise. */
export async function readRegularFile(file: string, limit: ReadLimit): Promise<Buffer> {
  const { maxBytes } = limit;
  refuseKind(await (limit.noFollow ? lstat : stat)(file), limit);
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY | (limit.noFollow ? constants.O_NOFOLLOW : 0);
  const handle = await open(file, flags).catch((e: NodeJS.ErrnoException) => {
    // A link swapped in after the lstat.
    throw e.code === "ELOOP" && limit.noFollow ? new FileRefused(`it is a symbolic link; ${limit.what} must be a regular file`) : e;
  });
  try {
    const st = await handle.stat();
    refuseKind(st, limit);
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

export function refuseKind(st: Stats, limit: Pick<ReadLimit, "what">): void {
  if (st.isFile()) return;
  const kind = st.isSymbolicLink()
    ? "a symbolic link"
    : st.isDirectory()
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
  throw new FileRefused(`it is ${kind}; ${limit.what} must be a regular file`);
}

export function tooBig(bytes: number, limit: ReadLimit): string {
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
