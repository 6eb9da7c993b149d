/**
 * The applied record's policy entries, for naming the line behind a live rule: read once per
 * command, never fatal (explain works without them, and says what it does not know).
 */
import type { StateStore } from "../apply/state-store.js";
import { StateFileError } from "../apply/state-store.js";
import type { EntrySource } from "../compile/entries.js";
import { digest } from "../inputs.js";
import { POLICY_LIMIT } from "../policy/limits.js";
import { readTextWithin } from "../policy/read-file.js";

export interface AppliedEntries {
  /** id -> where it was written; undefined when the record lists none (no record, or an older one). */
  entries?: ReadonlyMap<string, EntrySource>;
  /** The policy file the record was applied from. */
  policyFile?: string;
  /** Why the lines may not be the file's lines now, or why none are known. */
  note?: string;
}

export async function appliedEntries(store: StateStore): Promise<AppliedEntries> {
  let record;
  try {
    record = await store.current();
  } catch (e) {
    if (!(e instanceof StateFileError)) throw e;
    return { note: `no policy lines: ${e.message}` };
  }
  if (record === undefined) return { note: "no policy lines: nothing has been applied from this state directory" };
  const listed = record.state.entries;
  const policy = record.origin?.inputs.policy;
  const out: AppliedEntries = {
    ...(listed ? { entries: new Map(listed.map((e) => [e.id, e])) } : {}),
    ...(policy ? { policyFile: policy.path } : {}),
  };
  if (listed === undefined) return { ...out, note: "no policy lines: the applied record predates them (apply again to record them)" };
  if (policy === undefined) return out;
  // The lines are the file's as it was applied; an edit since may have moved them.
  const now = await readTextWithin(policy.path, POLICY_LIMIT).then(digest, () => undefined);
  if (now === undefined) return { ...out, note: `${policy.path} cannot be read now: the lines are as it was applied (${record.at})` };
  if (now !== policy.digest) return { ...out, note: `${policy.path} has changed since it was applied (${record.at}): the lines are as it was then` };
  return out;
}
