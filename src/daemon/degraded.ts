/**
 * `degraded.json` in the state directory: written by `watch` while the policy cannot be applied and
 * a fallback holds instead (fallback.ts), removed once the policy applies again. `dockwall status`
 * shows it, so the operator sees why the host is not running the policy even after the log has
 * scrolled away. Like every file dockwall reads it is treated as hostile: written so a planted link
 * cannot redirect the write, read only as a small regular file, and checked field by field.
 */
import { rm } from "node:fs/promises";
import path from "node:path";
import { readStateFile, replaceFile } from "../apply/safe-file.js";
import type { Holding } from "./fallback.js";

export interface DegradedNote {
  /** When the policy first failed to apply (ISO time); kept while the reason changes. */
  since: string;
  pid: number;
  /** The first line of why the policy could not be applied. */
  reason: string;
  /** Every error of a policy that did not validate (FILE:LINE:COL: message). */
  errors: string[];
  holding: Holding;
  /** The applied record in force (its `at` and `source`): a later apply makes the note stale. */
  heldAt: string;
  heldSource: string;
}

const NAME = "degraded.json";
const MAX_BYTES = 64 * 1024;
const MAX_ERRORS = 50;
const MAX_TEXT = 1000;

export function degradedFile(dir: string): string {
  return path.join(dir, NAME);
}

/** Shortened and on one line: a note is shown on a terminal. */
function oneLine(text: string): string {
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, " ");
  return flat.length > MAX_TEXT ? `${flat.slice(0, MAX_TEXT)}...` : flat;
}

export async function writeDegraded(dir: string, note: DegradedNote): Promise<void> {
  const bounded: DegradedNote = {
    ...note,
    reason: oneLine(note.reason),
    errors: note.errors.slice(0, MAX_ERRORS).map(oneLine),
    heldSource: oneLine(note.heldSource),
  };
  // The state directory exists and was checked by the store before any apply could fail.
  await replaceFile(degradedFile(dir), JSON.stringify(bounded));
}

/** Its inverse: the policy holds again. */
export async function clearDegraded(dir: string): Promise<void> {
  await rm(degradedFile(dir), { force: true });
}

/**
 * The note, or undefined when there is none. A note that is not a small regular file of the
 * expected shape is an error naming the file (the caller shows it; nothing acts on the note).
 */
export async function readDegraded(dir: string): Promise<DegradedNote | undefined> {
  const file = degradedFile(dir);
  let text: string | undefined;
  try {
    text = await readStateFile(file, MAX_BYTES);
  } catch (e) {
    throw new Error(`${file}: ${e instanceof Error ? e.message : String(e)}; remove it (watch writes it again while degraded)`);
  }
  if (text === undefined) return undefined;
  const note = parseDegraded(text);
  if (note === undefined) throw new Error(`${file}: not a note written by dockwall watch; remove it (watch writes it again while degraded)`);
  return note;
}

export function parseDegraded(text: string): DegradedNote | undefined {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof data !== "object" || data === null) return undefined;
  const d = data as Record<string, unknown>;
  const str = (v: unknown) => typeof v === "string" && v.length <= MAX_TEXT + 3;
  const ok =
    str(d.since) &&
    Number.isSafeInteger(d.pid) &&
    str(d.reason) &&
    Array.isArray(d.errors) &&
    d.errors.length <= MAX_ERRORS &&
    d.errors.every(str) &&
    (d.holding === "last-applied" || d.holding === "lock-down") &&
    str(d.heldAt) &&
    str(d.heldSource);
  if (!ok) return undefined;
  return {
    since: oneLine(d.since as string),
    pid: d.pid as number,
    reason: oneLine(d.reason as string),
    errors: (d.errors as string[]).map(oneLine),
    holding: d.holding as Holding,
    heldAt: oneLine(d.heldAt as string),
    heldSource: oneLine(d.heldSource as string),
  };
}
