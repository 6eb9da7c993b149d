/**
 * Processes a lab started that are still running: found by the tag in their environment, which every
 * long-running process of the lab (dockerd and its containerd, host services, dockwall watch) gets
 * and passes on to its children. A pid alone is not enough: a service's forks, or what a daemon
 * killed with SIGKILL left behind, have pids the lab never saw. Container processes do not carry the
 * tag (Docker gives them their image's environment), and dockerd ends them itself.
 */
import { readdir, readFile } from "node:fs/promises";

export const LAB_TAG = "DOCKWALL_LAB";

export interface Leftover {
  pid: number;
  command: string;
  /** The lab id in its tag. */
  lab: string;
}

/** Every tagged process alive now; `lab` limits it to one lab's. */
export async function findLeftovers(lab?: string): Promise<Leftover[]> {
  const out: Leftover[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    // A process that exits while being read, or a kernel thread, simply has nothing to say.
    const environ = await readFile(`/proc/${pid}/environ`, "latin1").catch(() => "");
    const tag = environ.split("\0").find((v) => v.startsWith(`${LAB_TAG}=`))?.slice(LAB_TAG.length + 1);
    if (tag === undefined || (lab !== undefined && tag !== lab)) continue;
    const command = (await readFile(`/proc/${pid}/cmdline`, "latin1").catch(() => "")).split("\0").join(" ").trim();
    out.push({ pid, command, lab: tag });
  }
  return out;
}

/** Kills one lab's tagged processes (SIGKILL) and returns what it found. */
export async function killLeftovers(lab: string): Promise<Leftover[]> {
  const found = await findLeftovers(lab);
  for (const p of found) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

export function describeLeftovers(left: Leftover[]): string {
  return left.map((p) => `${p.pid} (${p.command.slice(0, 80)})`).join("; ");
}
