/**
 * Where this command's SSH session is written: SSH_CONNECTION ("CLIENT CLIENT_PORT SERVER
 * SERVER_PORT", set by sshd), in this process's environment or, under `sudo` (whose env_reset
 * drops it), `su` or `doas`, in the nearest parent process's. The admin who runs `sudo dockwall
 * apply` over SSH is in a session all the same, and the lock-out guard and `init` must see it.
 *
 * Set to the empty string, it says "not from SSH" and no parent is asked (a console, a test).
 * /proc is read as hostile input: bounded reads, a process that vanishes mid-walk ends the walk.
 */
import { readRegularFile } from "../files/regular-file.js";
import { escapeControls } from "../policy/quote.js";

export interface SshConnectionValue {
  value: string;
  /** "SSH_CONNECTION", or "SSH_CONNECTION of sudo (pid 812)". */
  foundIn: string;
}

/** How far up the process tree to look: sudo, a shell, su, another shell, sshd's session shell... */
const MAX_ANCESTORS = 16;
const PROC_LIMIT = { maxBytes: 1024 * 1024, what: "a /proc file" };

export type ProcRead = (file: string) => Promise<string>;

const readProc: ProcRead = async (file) => (await readRegularFile(file, PROC_LIMIT)).toString("utf8");

export async function sshConnectionValue(env: NodeJS.ProcessEnv, ppid: number, read: ProcRead = readProc): Promise<SshConnectionValue | undefined> {
  const own = env.SSH_CONNECTION;
  if (own !== undefined) return own.trim() === "" ? undefined : { value: own, foundIn: "SSH_CONNECTION" };
  let pid = ppid;
  for (let depth = 0; depth < MAX_ANCESTORS && pid > 1; depth++) {
    const environ = await read(`/proc/${pid}/environ`).catch(() => undefined);
    const value = environ
      ?.split("\0")
      .find((v) => v.startsWith("SSH_CONNECTION="))
      ?.slice("SSH_CONNECTION=".length);
    if (value !== undefined && value.trim() !== "") {
      const name = (await read(`/proc/${pid}/comm`).catch(() => "?")).trim().slice(0, 16);
      return { value, foundIn: `SSH_CONNECTION of ${escapeControls(name)} (pid ${pid})` };
    }
    const status = await read(`/proc/${pid}/status`).catch(() => "");
    const parent = /^PPid:\s*(\d+)$/m.exec(status);
    if (!parent) break;
    pid = Number(parent[1]);
  }
  return undefined;
}
