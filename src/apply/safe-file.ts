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
import { FileRefused, readRegularFile } from "../files/regular-file.js";

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_WRONLY, O_RDONLY, O_DIRECTORY } = constants;

// A file that is not what dockwall wrote (a link, a FIFO, a device, too big) is refused with this.
export { FileRefused };

/** Replaces `file` with `text`, atomically and durably (a crash leaves the old file or the new one). */
export async function replaceFile(file: string, text: string, mode = 0o600): Promise<void> {
  await putInPlace(file, text, mode, (tmp) => rename(tmp, file));
}

/**
 * Writes `text` to a new file of a random name beside `file` (created exclusively, never through a
 * link), syncs it, hands it to `place` (rename over the old file, or link(2) to a name that must not
 * exist yet), and makes the new name durable by syncing the directory. The temporary name never
 * outlives the call, whatever `place` does.
 */
export async function putInPlace(file: string, text: string, mode: number, place: (tmp: string) => Promise<void>): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(8).toString("hex")}.tmp`);
  const handle = await open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  try {
    await handle.writeFile(text);
    await handle.sync();
    await handle.close();
    await place(tmp);
  } finally {
    await handle.close().catch(() => undefined);
    // After a rename the name is gone already; after a link it is the new file's second name.
    await rm(tmp, { force: true });
  }
  // The new name is durable only once the directory is.
  const d = await open(dir, O_RDONLY | O_DIRECTORY);
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * The text of a regular file of at most `maxBytes`, or undefined if there is none; a link is
 * refused, never followed (files/regular-file.ts: the one bounded reader).
 */
export async function readStateFile(file: string, maxBytes: number): Promise<string | undefined> {
  try {
    return (await readRegularFile(file, { maxBytes, what: "a state file", noFollow: true })).toString("utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}
