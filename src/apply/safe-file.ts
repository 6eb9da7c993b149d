/**
 * Files in the state directory, written and read so that nothing planted there can redirect them:
 * a write goes to a new file of a random name, created exclusively and never through a link, synced,
 * then renamed over the old one (rename replaces a link, it does not follow it); a read refuses a
 * link, anything but a regular file (a FIFO would hang, a device never end) and anything too big.
 */
import { constants } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import path from "node:path";

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_WRONLY, O_RDONLY, O_NONBLOCK, O_DIRECTORY } = constants;

/** A file that is not what dockwall wrote: a link, a FIFO, a device, or too big. */
export class FileRefused extends Error {}

/** Replaces `file` with `text`, atomically and durably (a crash leaves the old file or the new one). */
export async function replaceFile(file: string, text: string, mode = 0o600): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(8).toString("hex")}.tmp`);
  const handle = await open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  try {
    await handle.writeFile(text);
    await handle.sync();
    await handle.close();
    await rename(tmp, file);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
  // The rename itself is durable only once the directory is.
  const d = await open(dir, O_RDONLY | O_DIRECTORY);
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** The text of a regular file of at most `maxBytes`, or undefined if there is none. */
export async function readRegularFile(file: string, maxBytes: number): Promise<string | undefined> {
  let handle;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (regular files ignore it).
    handle = await open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP") throw new FileRefused("it is a symbolic link");
    throw e;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new FileRefused("it is not a regular file");
    if (st.size > maxBytes) throw new FileRefused(`it is ${st.size} bytes, more than the ${maxBytes} a state file may be`);
    // Read at most one byte past the bound: a file that grows meanwhile is refused, not read whole.
    const buffer = Buffer.alloc(st.size + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) throw new FileRefused("it grew while being read");
    }
    return buffer.toString("utf8", 0, length);
  } finally {
    await handle.close();
  }
}
