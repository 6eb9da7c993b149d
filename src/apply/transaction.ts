/** apply under the lock, and remember what was there before so `rollback` can go back to it exactly. */
import type { Netfilter } from "../backends/netfilter.js";
import type { DesiredState } from "../backends/rendered.js";
import { apply, type ApplyResult } from "./apply.js";
import type { Lock } from "./lock.js";
import type { StateStore } from "./state-store.js";

export async function applyAndRecord(
  nf: Netfilter,
  desired: DesiredState,
  store: StateStore,
  lock: Lock,
  source: string,
): Promise<ApplyResult> {
  const release = await lock.acquire();
  try {
    const stored = await store.read();
    const result = await apply(nf, desired);
    // A no-op keeps the record as it is: otherwise `previous` would become a copy of `current`.
    if (result.changed || stored.current === undefined) {
      const at = new Date().toISOString();
      await store.record(
        { at, source, variant: nf.variant, state: desired },
        { at: stored.current?.at ?? at, source: stored.current?.source ?? "before dockwall", variant: nf.variant, state: result.before },
      );
    }
    return result;
  } finally {
    await release();
  }
}
