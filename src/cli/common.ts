/** What every command needs: the runner, the state store, the lock, and consistent output. */
import { ProcessRunner, type Runner } from "../exec/runner.js";
import { FlockLock, type Lock } from "../apply/lock.js";
import { StateDirOptionError, StateStore, appliedState, ignoreUnreadable, stateDir } from "../apply/state-store.js";
import { Netfilter } from "../backends/netfilter.js";
import { detectIptablesVariant } from "../facts/host.js";
import type { DesiredState } from "../backends/rendered.js";

export const DEFAULT_POLICY = "/etc/dockwall/dockwall.yaml";

export interface GlobalOptions {
  stateDir?: string;
}

export interface Context {
  runner: Runner;
  store: StateStore;
  lock: Lock;
}

export function makeContext(global: GlobalOptions): Context {
  let dir: string;
  try {
    dir = stateDir(global.stateDir);
  } catch (e) {
    if (!(e instanceof StateDirOptionError)) throw e;
    process.stderr.write(`dockwall: ${e.message}\n`);
    throw new Exit(1);
  }
  const store = new StateStore(dir);
  return { runner: new ProcessRunner(), store, lock: new FlockLock(store.lockFile) };
}

/** Where dockwall's rules are: the variant they were applied to, else where Docker's rules are. */
export async function netfilterFor(ctx: Context): Promise<Netfilter> {
  // An unreadable record says nothing about the variant; the command that needs it says why.
  const current = await ctx.store.current().catch(ignoreUnreadable);
  if (current) return new Netfilter(ctx.runner, current.variant);
  return new Netfilter(ctx.runner, await detectIptablesVariant(ctx.runner));
}

export const FULL_READ_HELP =
  "read every set member back from the kernel instead of trusting the applied record where the entry counts agree (slower with big groups; use it after `status` reports set drift)";

/** What dockwall last applied with this variant: lets a read skip members the kernel still holds. */
export async function knownState(ctx: Context, nf: Netfilter): Promise<DesiredState | undefined> {
  return appliedState(await ctx.store.current(), nf.variant);
}

/** Ends the process with a code after output has been written; no stack trace. */
export class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

export function warn(lines: string[]): void {
  for (const l of lines) process.stderr.write(`warning: ${l}\n`);
}

export function print(lines: string[]): void {
  for (const l of lines) process.stdout.write(`${l}\n`);
}
