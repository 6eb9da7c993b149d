/** A problem in a policy or group file, pinned to where the user wrote it. */
import { escapeControls } from "./quote.js";

export interface PolicyError {
  file: string;
  /** 1-based */
  line: number;
  /** 1-based */
  col: number;
  message: string;
}

/**
 * The one spelling every command prints: `FILE:LINE:COL: message`, as compilers do, so editors can jump to it.
 * A group file's name comes from the policy: a control character in it would start a line of its own.
 */
export function formatPolicyError(e: PolicyError): string {
  return `${escapeControls(e.file)}:${e.line}:${e.col}: ${e.message}`;
}

/** Errors in reading order: the policy file first, other files as first seen, then line and column. */
export function sortPolicyErrors(errors: PolicyError[], primary?: string): PolicyError[] {
  const fileOrder = new Map<string, number>();
  if (primary !== undefined) fileOrder.set(primary, 0);
  for (const e of errors) if (!fileOrder.has(e.file)) fileOrder.set(e.file, fileOrder.size);
  return [...errors].sort(
    (a, b) => fileOrder.get(a.file)! - fileOrder.get(b.file)! || a.line - b.line || a.col - b.col,
  );
}

/** The first `max` (already sorted), and one more line counting the rest, pinned where the first unshown one is. */
export function firstErrors(errors: PolicyError[], max: number, what = "errors"): PolicyError[] {
  if (errors.length <= max) return errors;
  const next = errors[max]!;
  return [...errors.slice(0, max), { ...next, message: `${errors.length - max} more ${what} not shown` }];
}
