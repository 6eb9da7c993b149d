/**
 * The state directory is trusted only if nobody but root (or the user running dockwall) can change
 * what is in it, as sshd's StrictModes trusts ~/.ssh: whoever can write there decides what `rollback`
 * puts in the kernel, and can plant links for root to write through. So the directory and every
 * directory above it must be owned by root or the current user and not writable by group or others
 * (a sticky directory above it, such as /tmp, is fine: others cannot rename or remove what is not
 * theirs), the directory itself must not be a symbolic link, and it must be on a filesystem that
 * stores files (not /proc, /sys or /dev). A missing directory is created 0700.
 */
import { lstat, mkdir, realpath, statfs } from "node:fs/promises";
import type { Stats } from "node:fs";
import path from "node:path";
import { escapeControls } from "../policy/quote.js";

export class StateDirError extends Error {}

/** Where files are not storage (and where Node's recursive mkdir loops for ever: /proc/1/x). */
const PSEUDO_ROOTS = ["/proc", "/sys", "/dev"];

/** statfs magic numbers of filesystems that are views of the kernel, not storage. */
const PSEUDO_FILESYSTEMS = new Map<number, string>([
  [0x9fa0, "proc"],
  [0x62656572, "sysfs"],
  [0x1cd1, "devpts"],
  [0x27e0eb, "cgroup"],
  [0x63677270, "cgroup2"],
  [0x64626720, "debugfs"],
  [0x74726163, "tracefs"],
  [0x73636673, "securityfs"],
  [0x6e736673, "nsfs"],
  [0xcafe4a11, "bpf"],
]);

/**
 * What is wrong with one directory on the way to the state directory, with how to fix it; undefined
 * if nothing. `isStateDir`: the state directory itself (no sticky exemption).
 */
export function directoryProblem(dir: string, st: Pick<Stats, "mode" | "uid" | "isDirectory" | "isSymbolicLink">, isStateDir: boolean, uid: number): string | undefined {
  if (st.isSymbolicLink()) return `${dir} is a symbolic link: dockwall does not follow links to its state; name the directory itself`;
  if (!st.isDirectory()) return `${dir} is not a directory`;
  if (st.uid !== 0 && st.uid !== uid) {
    const who = uid === 0 ? "root" : `root or uid ${uid} (who runs dockwall)`;
    return `${dir} is owned by uid ${st.uid}, not ${who}: that user could change what dockwall applies; fix: chown root ${dir} (or choose another --state-dir)`;
  }
  const sticky = (st.mode & 0o1000) !== 0;
  if ((st.mode & 0o022) !== 0 && (isStateDir || !sticky)) {
    const mode = (st.mode & 0o7777).toString(8).padStart(4, "0");
    const who = [st.mode & 0o020 ? "its group" : "", st.mode & 0o002 ? "others" : ""].filter(Boolean).join(" and ");
    return `${dir} is writable by ${who} (mode ${mode}): they could change what dockwall applies; fix: chmod go-w ${dir}`;
  }
  return undefined;
}

/**
 * Checks the state directory as above and creates it (0700, and any missing parent) if missing.
 * Throws StateDirError naming the directory, what is wrong and how to fix it.
 */
export async function prepareStateDir(dir: string, uid: number = process.getuid?.() ?? 0): Promise<void> {
  const wanted = path.resolve(dir);
  // The path is the user's (or a hostile environment's): shown on one line, without escape sequences.
  const refuse = (problem: string) => new StateDirError(escapeControls(`state directory ${wanted}: ${problem}`));
  const pseudo = (where: string, fsType?: string) => {
    const root = PSEUDO_ROOTS.find((r) => where === r || where.startsWith(`${r}/`));
    if (root !== undefined || fsType !== undefined) {
      throw refuse(`${where} is on ${fsType ?? root}, which is not a filesystem that stores files; choose a directory such as /var/lib/dockwall`);
    }
  };
  pseudo(wanted);
  // The deepest part of the path that exists, and the names below it to create.
  let existing = wanted;
  const missing: string[] = [];
  for (;;) {
    const st = await lstat(existing).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return undefined;
      throw refuse(`cannot look at ${existing}: ${e.code ?? e.message}`);
    });
    if (st !== undefined) break;
    if (existing === path.dirname(existing)) throw refuse("no part of it exists");
    missing.unshift(path.basename(existing));
    existing = path.dirname(existing);
  }
  const self = missing.length === 0 ? await lstat(wanted) : undefined;
  if (self?.isSymbolicLink()) throw refuse(directoryProblem(wanted, self, true, uid)!);
  const real = await realpath(existing).catch((e: NodeJS.ErrnoException) => {
    throw refuse(`cannot resolve ${existing}: ${e.code ?? e.message}`);
  });
  pseudo(real, PSEUDO_FILESYSTEMS.get((await statfs(real)).type));
  // Every directory from / down: a link above the state directory is judged by where it leads.
  const parts = real.split("/").filter((p) => p !== "");
  for (let i = 0; i <= parts.length; i++) {
    const at = `/${parts.slice(0, i).join("/")}`;
    const problem = directoryProblem(at, await lstat(at), missing.length === 0 && i === parts.length, uid);
    if (problem !== undefined) throw refuse(problem);
  }
  // One level at a time (never `recursive`: see PSEUDO_ROOTS), each checked as it is made.
  let at = real;
  for (const name of missing) {
    at = path.join(at, name);
    await mkdir(at, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw refuse(`cannot create ${at}: ${e.code ?? e.message}`);
    });
    const problem = directoryProblem(at, await lstat(at), at === path.join(real, ...missing), uid);
    if (problem !== undefined) throw refuse(problem);
  }
}
