/**
 * The SSH session `dockwall init` runs in: where it comes from and which port it reached, from
 * SSH_CONNECTION ("CLIENT CLIENT_PORT SERVER SERVER_PORT", set by sshd). Under `sudo` (whose
 * env_reset drops SSH_CONNECTION), `su` or `doas` the variable is read from the nearest parent
 * process that has it: the admin who runs `sudo dockwall init` over SSH is in a session all the same.
 */
import { sshConnectionValue, type ProcRead } from "../facts/ssh-connection.js";
import { memberSpelling, parseCidr } from "../policy/addresses.js";
import { quote } from "../policy/quote.js";
import { SshConnectionUnreadable, sshSession } from "../trace/lockout.js";

export interface SshSession {
  /** The client's address as a policy source ("198.18.0.30", "2001:db8::30"). */
  client: string;
  clientPort: number;
  /** The address and port sshd answered on: the port to keep open. */
  server: string;
  serverPort: number;
  /** Where SSH_CONNECTION was read: "SSH_CONNECTION", or "SSH_CONNECTION of sudo (pid 812)". */
  foundIn: string;
}

export type SessionParse = { ok: true; session: SshSession } | { ok: false; message: string };

/**
 * Parses SSH_CONNECTION as apply's lock-out guard does (trace/lockout.ts: the two must agree on what
 * a session is), for a policy: the client as a source the loader takes. Hostile text (anything can
 * set an environment variable): what is not as sshd writes it is refused with a message, never guessed at.
 */
export function parseSshConnection(value: string, foundIn: string): SessionParse {
  const refuse = (why: string): SessionParse => ({ ok: false, message: `${foundIn} is ${quote(value)}: ${why}` });
  let guarded: ReturnType<typeof sshSession>;
  try {
    guarded = sshSession(value);
  } catch (e) {
    if (!(e instanceof SshConnectionUnreadable)) throw e;
    return refuse("not what sshd writes (CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT)");
  }
  if (guarded === undefined) return refuse("empty");
  const client = source(guarded.client);
  const server = source(guarded.server);
  if (client === undefined || server === undefined) return refuse("an address is not one a policy can name");
  const clientPort = Number(value.trim().split(/\s+/)[1]);
  return { ok: true, session: { client, clientPort, server, serverPort: guarded.port, foundIn } };
}

/** A single host as the policy spells it; a link-local address without its interface ("fe80::1%eth0"). */
function source(address: string): string | undefined {
  const parsed = parseCidr(address.replace(/%[^%]*$/, ""));
  return parsed.ok ? memberSpelling(parsed.cidr) : undefined;
}

/**
 * The session from `env`, else from the nearest parent process whose environment has
 * SSH_CONNECTION (facts/ssh-connection.ts, shared with apply's lock-out guard); undefined when there
 * is none. A value that is there but malformed is an error (the caller refuses to write), not
 * "no session": that would open the SSH port to anyone.
 */
export async function findSshSession(env: NodeJS.ProcessEnv, ppid: number, read?: ProcRead): Promise<SessionParse | undefined> {
  const found = await sshConnectionValue(env, ppid, read);
  return found === undefined ? undefined : parseSshConnection(found.value, found.foundIn);
}
