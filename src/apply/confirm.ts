/**
 * `apply --confirm SECONDS`: the change stays only if `dockwall confirm` runs in time. A detached
 * keeper process (its own session, so a lost SSH connection does not take it down) waits for the
 * deadline and rolls back unless confirmed. `confirm.json` in the state directory is the window;
 * whoever renames it away first (confirm, the keeper, the prompt) decides, so the rollback happens
 * at most once.
 */
import { randomUUID } from "node:crypto";
import { rename, rm } from "node:fs/promises";
import path from "node:path";
import type { StateStore } from "./state-store.js";
import { FileRefused, readStateFile, replaceFile } from "./safe-file.js";
import { escapeControls } from "../policy/quote.js";

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
  await store.ready();
  await replaceFile(file(store), JSON.stringify(w));
  return w;
}

export async function readWindow(store: StateStore): Promise<ConfirmWindow | undefined> {
  await store.ready();
  return readWindowFile(file(store));
}

/** The window in `f`, checked; an error naming the file if it is not one dockwall wrote. */
async function readWindowFile(f: string): Promise<ConfirmWindow | undefined> {
  const invalid = (why: string) =>
    new Error(escapeControls(`${f} is not a valid dockwall confirm window (${why}): remove it; \`dockwall rollback\` goes back by hand if the change was not meant to stay`));
  let text: string | undefined;
  try {
    text = await readStateFile(f, 64 * 1024);
  } catch (e) {
    if (e instanceof FileRefused) throw invalid(e.message);
    throw e;
  }
  if (text === undefined) return undefined;
  let w: Partial<ConfirmWindow>;
  try {
    w = JSON.parse(text) as Partial<ConfirmWindow>;
  } catch (e) {
    throw invalid(`JSON: ${(e as Error).message}`);
  }
  const valid =
    typeof w === "object" && w !== null && typeof w.token === "string" && typeof w.deadline === "number" && Number.isFinite(w.deadline) && typeof w.appliedAt === "string" && typeof w.source === "string";
  if (!valid) throw invalid("a field is missing or of the wrong type");
  return { token: w.token!, deadline: w.deadline!, appliedAt: w.appliedAt!, source: w.source! };
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
  const mine = (await readWindowFile(claimed))!;
  if (token !== undefined && mine.token !== token) {
    // A newer window replaced the one read above between the read and the rename: not ours to take.
    await rename(claimed, file(store));
    return undefined;
  }
  await rm(claimed, { force: true });
  return mine;
}
