/**
 * One `dockwall watch` per state directory, for as long as it runs: `watch.lock` beside the apply
 * lock, taken without waiting. Two watches on one host (the host's unit from `dockwall install` and
 * the Swarm service's task, which mounts the same /var/lib/dockwall; or two units) would take turns
 * applying their policies for ever, each undoing the other. The second to start refuses instead and
 * changes nothing: the first one's rules hold. Only a lock that is held stops a watch: a state
 * directory or flock(1) that cannot be used is the daemon's own business (it then holds a fallback,
 * fallback.ts), never a reason to leave the host without rules.
 */
import path from "node:path";
import { FlockLock, LockHeld, type Release } from "../apply/lock.js";
import type { StateStore } from "../apply/state-store.js";

export function watchLockFile(dir: string): string {
  return path.join(dir, "watch.lock");
}

export type WatchLock = { held: true; release: Release } | { held: false; otherWatch: boolean; reason: string };

export async function takeWatchLock(store: StateStore): Promise<WatchLock> {
  const file = watchLockFile(store.dir);
  try {
    await store.ready();
    return { held: true, release: await new FlockLock(file, 0).acquire() };
  } catch (e) {
    if (e instanceof LockHeld) {
      return {
        held: false,
        otherWatch: true,
        reason: `another dockwall watch holds ${file}: run either the host's unit (dockwall install) or the Swarm service on a host, not both; this one is not starting and the other one's rules stay`,
      };
    }
    return { held: false, otherWatch: false, reason: e instanceof Error ? e.message : String(e) };
  }
}
