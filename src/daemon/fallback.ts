/**
 * What `watch` holds when the policy cannot be applied (it does not validate, cannot be read, or the
 * kernel refused its rules): never nothing. The daemon would otherwise exit and Docker start with no
 * dockwall rules, every published port open to anyone.
 *   - The last state dockwall applied (the store's `current` record, validated by the store), put
 *     back the way `rollback` puts a recorded state back: after a reboot the kernel holds nothing.
 *   - With no applied state (or one that holds no rules: `dockwall remove`), a built-in lock-down:
 *     the host's SSH port 22/tcp open to anyone, every other host port and every published port
 *     closed from outside. It is compiled from a Policy object through the same compile, render and
 *     apply as any policy, so it is the same proven rules.
 * Either way the daemon keeps watching, and the first policy that applies replaces it.
 */
import type { Runner } from "../exec/runner.js";
import type { Lock } from "../apply/lock.js";
import { ignoreUnreadable, type AppliedRecord, type StateStore } from "../apply/state-store.js";
import { applyAndRecord } from "../apply/transaction.js";
import { apply, type ApplyResult } from "../apply/apply.js";
import { Netfilter } from "../backends/netfilter.js";
import { render, type DesiredState } from "../backends/rendered.js";
import { compile } from "../compile/index.js";
import { dockerEndpoint, gatherFacts } from "../facts/index.js";
import type { Policy } from "../policy/types.js";

/** The SSH port the lock-down keeps open. Not guessed from sshd_config or SSH_CONNECTION: one fixed, documented port. */
export const LOCK_DOWN_SSH_PORT = 22;

/** The applied record's source while the lock-down holds: a restarted daemon recognises it and compiles it again. */
export const LOCK_DOWN_SOURCE = "lock-down (no valid policy has been applied)";

export type Holding = "last-applied" | "lock-down";

export interface FallbackHeld {
  holding: Holding;
  /** The applied record now in force. */
  record: { at: string; source: string };
  result: ApplyResult;
  /** Where it was applied. */
  netfilter: Netfilter;
  /** Warnings of the lock-down's facts (Docker not reachable, ...). */
  warnings: string[];
}

/** The lock-down as a validated policy: SSH from anyone, nobody trusted, nothing published. */
export function lockDownPolicy(): Policy {
  const loc = { file: "(built-in lock-down)", line: 1, col: 1 };
  return {
    file: loc.file,
    groups: [],
    trusted: [],
    host: [{ ports: [{ from: LOCK_DOWN_SSH_PORT, to: LOCK_DOWN_SSH_PORT }], protos: ["tcp"], from: [{ kind: "any" }], loc }],
    containers: [],
    routes: [],
    // Ping and IPv6 neighbour discovery keep working: the host stays reachable for SSH and diagnosis.
    icmp: "allow",
    default: "drop",
    log: { drops: false, rate: "10/minute" },
  };
}

/** A record that holds dockwall rules: one left by `dockwall remove` holds none, and is no fallback. */
function holdsRules(state: DesiredState): boolean {
  return state.ipv4.chains.length > 0 || state.ipv6.chains.length > 0;
}

/** What a fallback would put back, decided from the record alone (pure). */
export function fallbackFor(recorded: AppliedRecord | undefined): Holding {
  return recorded !== undefined && recorded.source !== LOCK_DOWN_SOURCE && holdsRules(recorded.state) ? "last-applied" : "lock-down";
}

/**
 * Applies the fallback and records it as applied. Each step that cannot be taken falls through to a
 * safer one, never to nothing: a record that cannot be read or put back (its iptables variant gone, a
 * rule the kernel now refuses) gives way to the lock-down, and a state directory that cannot be used
 * (unsafe, read-only, full, its lock) to the lock-down applied without a record. Throws only when
 * even that cannot be applied (no iptables, the kernel refuses): the caller then has nothing to hold.
 */
export async function holdFallback(deps: { runner: Runner; store: StateStore; lock: Lock }): Promise<FallbackHeld> {
  const problems: string[] = [];
  const recorded = await deps.store.current().catch((e: unknown) => {
    problems.push(`the applied record cannot be read: ${firstLineOf(e)}`);
    return undefined;
  });
  if (recorded !== undefined && fallbackFor(recorded) === "last-applied") {
    const nf = new Netfilter(deps.runner, recorded.variant);
    try {
      // The same source and origin: a kernel that still holds the record sees no change and no write.
      const result = await applyAndRecord(nf, recorded.state, deps.store, deps.lock, recorded.source, recorded.origin ? { origin: recorded.origin } : {});
      const now = await deps.store.current().catch(ignoreUnreadable);
      return { holding: "last-applied", record: { at: now?.at ?? recorded.at, source: recorded.source }, result, netfilter: nf, warnings: [] };
    } catch (e) {
      problems.push(`the last applied rules cannot be put back: ${firstLineOf(e)}`);
    }
  }
  // Compiled again each time: Docker's named bridges come from the facts of now.
  // A DOCKER_HOST dockwall cannot use (it may be why the policy failed) must not stop the lock-down.
  const { facts, warnings } = await gatherFacts(deps.runner, dockerEndpoint());
  const nf = new Netfilter(deps.runner, facts.host.iptables);
  const desired = render(compile(lockDownPolicy(), facts));
  const held = (result: ApplyResult, at: string, more: string[] = []): FallbackHeld => ({
    holding: "lock-down",
    record: { at, source: LOCK_DOWN_SOURCE },
    result,
    netfilter: nf,
    warnings: [...problems, ...warnings, ...more],
  });
  try {
    const result = await applyAndRecord(nf, desired, deps.store, deps.lock, LOCK_DOWN_SOURCE);
    const now = await deps.store.current().catch(ignoreUnreadable);
    return held(result, now?.at ?? new Date().toISOString());
  } catch (e) {
    // If the state directory (its check, lock, journal or record) is what failed, apply.ts alone
    // still tests, loads, reads back and undoes; only the record, the journal and the lock are
    // missing, and at boot no other dockwall runs: better than a host with no rules at all. If the
    // kernel refused the lock-down, it refuses again here, and that is thrown.
    const result = await apply(nf, desired);
    return held(result, new Date().toISOString(), [`the state directory cannot be used (${firstLineOf(e)}): the lock-down is held without a record`]);
  }
}

function firstLineOf(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
}
