/**
 * Policy file -> kernel, the whole way: what `dockwall apply` runs once and `dockwall watch` runs on
 * every event. The lock is taken and the kernel read while the policy is still being compiled
 * (transaction.ts); new sets are created and filled once the policy has validated, while the rules
 * compile; nothing rules use changes before the compile is complete.
 */
import path from "node:path";
import type { Runner } from "./exec/runner.js";
import type { Lock } from "./apply/lock.js";
import { compiledBefore, ignoreUnreadable, type StateStore } from "./apply/state-store.js";
import { applyWhenReady, type ApplyOptions } from "./apply/transaction.js";
import type { ApplyResult } from "./apply/apply.js";
import { compilePolicy, readFacts, type Compiled } from "./pipeline.js";
import type { IpSetSpec } from "./ruleset/types.js";

export interface PolicyApplied {
  compiled: Compiled;
  result: ApplyResult;
}

export async function applyPolicy(
  file: string,
  deps: { runner: Runner; store: StateStore; lock: Lock },
  opts: { fullRead?: boolean; onCompiled?: (c: Compiled) => void; guard?: ApplyOptions["guard"] } = {},
): Promise<PolicyApplied> {
  const { facts, netfilter } = readFacts(deps.runner);
  let setsKnown: (sets: IpSetSpec[]) => void = () => undefined;
  const sets = new Promise<IpSetSpec[]>((resolve) => (setsKnown = resolve));
  // An unreadable record is not built on (the transaction says why): a full compile.
  const recorded = deps.store.current().catch(ignoreUnreadable);
  const compiling = recorded.then((r) => compilePolicy(file, deps.runner, compiledBefore(r), facts, setsKnown));
  // Warnings are shown as soon as the compile is done, before the kernel changes (or fails to).
  compiling.then((c) => opts.onCompiled?.(c), () => undefined);
  // Recorded absolute: status names it in its repair hint, and the journal in its way out, wherever they run.
  const result = await applyWhenReady(netfilter, compiling, deps.store, deps.lock, path.resolve(file), { fullRead: opts.fullRead === true, sets, ...(opts.guard ? { guard: opts.guard } : {}) });
  return { compiled: await compiling, result };
}
