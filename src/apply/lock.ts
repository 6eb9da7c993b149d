/**
 * One dockwall changes the kernel at a time. The lock is flock(1) on a file in the state directory,
 * held by a child process for as long as we run: if dockwall dies, even by SIGKILL, the child sees
 * its stdin close and exits, and the kernel drops the lock. (Node cannot call flock(2) itself.)
 * The directory is the state store's, checked and created by it (state-dir.ts) before the lock is taken.
 */
import { spawn } from "node:child_process";

export type Release = () => Promise<void>;

export interface Lock {
  acquire(): Promise<Release>;
}

export class LockError extends Error {}

export class FlockLock implements Lock {
  constructor(
    private readonly file: string,
    private readonly waitSeconds = 30,
  ) {}

  async acquire(): Promise<Release> {
    const child = spawn("flock", ["-w", String(this.waitSeconds), this.file, "sh", "-c", "echo locked; exec cat >/dev/null"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    await new Promise<void>((resolve, reject) => {
      child.on("error", (e: NodeJS.ErrnoException) =>
        reject(new LockError(e.code === "ENOENT" ? "flock: command not found (install util-linux)" : e.message)),
      );
      child.on("exit", (code) =>
        reject(new LockError(`could not lock ${this.file} within ${this.waitSeconds}s (another dockwall is applying?) ${stderr.trim()} (exit ${code})`)),
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
