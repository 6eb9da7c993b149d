/**
 * One dockwall changes the kernel at a time. The lock is flock(1) on a file in the state directory,
 * held by a child process for as long as we run: if dockwall dies, even by SIGKILL, the child sees
 * its stdin close and exits, and the kernel drops the lock. (Node cannot call flock(2) itself.)
 * The directory is the state store's, checked and created by it (state-dir.ts) before the lock is taken.
 */
import { spawn } from "node:child_process";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { FileRefused, refuseKind } from "../files/regular-file.js";
import { escapeControls } from "../policy/quote.js";

export type Release = () => Promise<void>;

export interface Lock {
  acquire(): Promise<Release>;
}

export class LockError extends Error {}

/** Another process holds the lock, and this one was told not to wait (waitSeconds 0). */
export class LockHeld extends LockError {}

/** flock's exit code when the lock is held and it may not wait (-E): told apart from its other failures. */
const HELD = 75;

export class FlockLock implements Lock {
  constructor(
    private readonly file: string,
    private readonly waitSeconds = 30,
  ) {}

  async acquire(): Promise<Release> {
    await checkLockFile(this.file);
    const wait = this.waitSeconds === 0 ? ["-n", "-E", String(HELD)] : ["-w", String(this.waitSeconds)];
    const child = spawn("flock", [...wait, this.file, "sh", "-c", "echo locked; exec cat >/dev/null"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    await new Promise<void>((resolve, reject) => {
      child.on("error", (e: NodeJS.ErrnoException) =>
        reject(new LockError(e.code === "ENOENT" ? "flock: command not found (install util-linux)" : e.message)),
      );
      child.on("exit", (code) =>
        reject(new (this.waitSeconds === 0 && code === HELD ? LockHeld : LockError)(`could not lock ${this.file} within ${this.waitSeconds}s (another dockwall is applying?) ${stderr.trim()} (exit ${code})`)),
      );
      child.stdout.once("data", () => resolve());
    });
    child.removeAllListeners("exit");
    return () =>
      new Promise<void>((resolve) => {
        child.on("exit", () => resolve());
        child.stdin.end();
      });
  }
}

/**
 * Creates the lock file if missing and makes sure it is a regular file before flock(1) opens it: a
 * FIFO planted there would hang flock in open() for ever, a link would have root create its target.
 * O_NONBLOCK: opening a FIFO returns at once; O_NOFOLLOW: a link is refused, not followed.
 */
export async function checkLockFile(file: string): Promise<void> {
  const refuse = (why: string) => new LockError(escapeControls(`lock file ${file}: ${why}; remove it (dockwall creates it)`));
  const flags = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;
  const handle = await open(file, flags, 0o600).catch((e: NodeJS.ErrnoException) => {
    throw refuse(e.code === "ELOOP" ? "it is a symbolic link; the lock file must be a regular file" : `cannot open it: ${e.code ?? e.message}`);
  });
  try {
    refuseKind(await handle.stat(), { what: "the lock file" });
  } catch (e) {
    throw e instanceof FileRefused ? refuse(e.message) : e;
  } finally {
    await handle.close();
  }
}

/** For unit tests: serialises within one process. */
export class MemoryLock implements Lock {
  private tail: Promise<void> = Promise.resolve();
  acquire(): Promise<Release> {
    const before = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    return before.then(() => async () => release());
  }
}
