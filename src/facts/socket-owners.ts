/**
 * Which process holds each listening socket, from /proc (no `ss` or `lsof` process): a socket is
 * `socket:[INODE]` behind one of the process's /proc/PID/fd links. /proc is read as hostile input:
 * processes come and go mid-read (every read may fail, and a failure only means "not this one"), a
 * process name is any 15 bytes its owner chose, and a host may have many processes with many
 * descriptors, so the scan is bounded and stops as soon as every socket has its owner.
 */
import { readdir, readlink } from "node:fs/promises";
import { readRegularFile } from "../files/regular-file.js";

export interface SocketOwner {
  pid: number;
  /** /proc/PID/comm: at most 15 bytes, set by the process itself (show it escaped). */
  name: string;
}

/** What the scan reads; injectable so tests can play a /proc that changes under it. */
export interface ProcSource {
  /** Names in a directory of /proc. */
  list(dir: string): Promise<string[]>;
  link(file: string): Promise<string>;
  /** A small file, whole; at most `maxBytes`. */
  read(file: string, maxBytes: number): Promise<string>;
}

export interface ScanLimits {
  /** Processes looked at, at most. */
  processes: number;
  /** Descriptors looked at in one process, at most. */
  descriptorsPerProcess: number;
  /** Descriptors looked at in all, at most. */
  descriptors: number;
  /** Processes read side by side. */
  parallel: number;
}

export const SCAN_LIMITS: ScanLimits = { processes: 65_536, descriptorsPerProcess: 65_536, descriptors: 500_000, parallel: 32 };

export interface SocketOwners {
  /** By socket inode: the process with the lowest pid that holds it. */
  owners: Map<number, SocketOwner>;
  /** Why some sockets may have no owner though one exists (a limit reached, /proc not readable); absent when the scan was whole. */
  incomplete?: string;
}

export const SYSTEM_PROC: ProcSource = {
  list: (dir) => readdir(dir),
  link: (file) => readlink(file),
  read: async (file, maxBytes) => (await readRegularFile(file, { maxBytes, what: "a /proc file" })).toString("utf8"),
};

const PID = /^[1-9]\d{0,9}$/;
const SOCKET_LINK = /^socket:\[(\d{1,20})\]$/;
/** TASK_COMM_LEN is 16 with the newline; room to spare, never more. */
const MAX_COMM_BYTES = 64;

export async function socketOwners(inodes: Iterable<number>, proc: ProcSource = SYSTEM_PROC, limits: ScanLimits = SCAN_LIMITS): Promise<SocketOwners> {
  const wanted = new Set(inodes);
  const owners = new Map<number, SocketOwner>();
  if (wanted.size === 0) return { owners };
  let pids: number[];
  try {
    pids = (await proc.list("/proc")).filter((n) => PID.test(n)).map(Number).sort((a, b) => a - b);
  } catch (e) {
    return { owners, incomplete: `/proc cannot be listed: ${errorCode(e)}` };
  }
  const notes = new Set<string>();
  if (pids.length > limits.processes) {
    notes.add(`only the first ${limits.processes} of ${pids.length} processes were looked at`);
    pids = pids.slice(0, limits.processes);
  }
  let budget = limits.descriptors;
  // In pid order, a batch at a time: the first batch that finds a socket holds its lowest-pid owner.
  for (let i = 0; i < pids.length && owners.size < wanted.size; i += limits.parallel) {
    if (budget <= 0) {
      notes.add(`stopped after ${limits.descriptors} descriptors`);
      break;
    }
    const batch = pids.slice(i, i + limits.parallel);
    const found = await Promise.all(
      batch.map(async (pid) => {
        const held = await socketsOf(pid, wanted, proc, limits, (n) => (budget -= n), notes);
        if (held.length === 0) return [];
        const name = await processName(pid, proc);
        // Gone between the two reads (or its pid reused): nothing said about it is sure.
        return name === undefined ? [] : held.map((inode) => ({ inode, owner: { pid, name } }));
      }),
    );
    for (const { inode, owner } of found.flat()) {
      const had = owners.get(inode);
      if (had === undefined || owner.pid < had.pid) owners.set(inode, owner);
    }
  }
  return { owners, ...(notes.size > 0 ? { incomplete: [...notes].join("; ") } : {}) };
}

/** The wanted socket inodes among one process's descriptors; none if it vanished or cannot be read. */
async function socketsOf(pid: number, wanted: Set<number>, proc: ProcSource, limits: ScanLimits, spend: (n: number) => void, notes: Set<string>): Promise<number[]> {
  let fds: string[];
  try {
    fds = await proc.list(`/proc/${pid}/fd`);
  } catch (e) {
    // ENOENT/ESRCH: it ended. EACCES: another user's, and dockwall is not root.
    if (errorCode(e) === "EACCES" || errorCode(e) === "EPERM") notes.add("some processes' descriptors are not readable (run as root to see every owner)");
    return [];
  }
  if (fds.length > limits.descriptorsPerProcess) {
    notes.add(`only the first ${limits.descriptorsPerProcess} descriptors of a process were looked at`);
    fds = fds.slice(0, limits.descriptorsPerProcess);
  }
  spend(fds.length);
  const held: number[] = [];
  for (const fd of fds) {
    if (!/^\d{1,10}$/.test(fd)) continue;
    const target = await proc.link(`/proc/${pid}/fd/${fd}`).catch(() => undefined);
    const m = target === undefined ? null : SOCKET_LINK.exec(target);
    if (m && wanted.has(Number(m[1]))) held.push(Number(m[1]));
  }
  return held;
}

async function processName(pid: number, proc: ProcSource): Promise<string | undefined> {
  try {
    const text = await proc.read(`/proc/${pid}/comm`, MAX_COMM_BYTES);
    const name = text.endsWith("\n") ? text.slice(0, -1) : text;
    return name === "" ? "?" : name;
  } catch {
    return undefined;
  }
}

function errorCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));
}
