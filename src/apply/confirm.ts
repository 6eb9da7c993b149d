/**
 * `apply --confirm SECONDS`: the change stays only if `dockwall confirm` runs in time. A detached
 * keeper process (its own session, so a lost SSH connection does not take it down) waits for the
 * deadline and rolls back unless confirmed. `confirm.json` in the state directory is the window;
 * whoever renames it away first (confirm, the keeper, the prompt) decides, so the rollback happens
 * at most once.
 */
import { randomUUID } from "node:crypto";
import { readFile, rename, rm, writeFile, mkdir } from "node:fs/promises";
import path from "node:path";
import type { StateStore } from "./state-store.js";

export interface ConfirmWindow {
  token: string;
  /** Milliseconds since the epoch. */
  deadline: number;
  /** The `at` of the applied record the window is for: a later apply supersedes it. */
  appliedAt: string;
  source: string;
}

const file = (store: StateStore) => path.join(store.dir, "confirm.json");

export async function openWindow(store: StateStore, appliedAt: string, source: string, seconds: number): Promise<ConfirmWindow> {
  const w: ConfirmWindow = { token: randomUUID(), deadline: Date.now() + seconds * 1000, appliedAt, source };
  await mkdir(store.dir, { recursive: true, mode: 0o700 });
  const tmp = `${file(store)}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(w), { mode: 0o600 });
  await rename(tmp, file(store));
  return w;
}

export async function readWindow(store: StateStore): Promise<ConfirmWindow | undefined> {
  try {
    return JSON.parse(await readFile(file(store), "utf8")) as ConfirmWindow;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/**
 * Takes the open window away so nobody else acts on it; undefined if there is none (or it is another
 * token's). Atomic: of two claimants one gets it.
 */
export async function claimWindow(store: StateStore, token?: string): Promise<ConfirmWindow | undefined> {
  const w = await readWindow(store);
  if (w === undefined || (token !== undefined && w.token !== token)) return undefined;
  const claimed = `${file(store)}.${process.pid}.claimed`;
  try {
    await rename(file(store), claimed);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const mine = JSON.parse(await readFile(claimed, "utf8")) as ConfirmWindow;
  if (token !== undefined && mine.token !== token) {
    // A newer window replaced the one read above between the read and the rename: not ours to take.
    await rename(claimed, file(store));
    return undefined;
  }
  await rm(claimed, { force: true });
  return mine;
}
