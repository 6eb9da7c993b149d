/**
 * The SSH session `dockwall init` runs in: where it comes from and which port it reached, from
 * SSH_CONNECTION ("CLIENT CLIENT_PORT SERVER SERVER_PORT", set by sshd). Under `sudo` (whose
 * env_reset drops SSH_CONNECTION), `su` or `doas` the variable is read from the nearest parent
 * process that has it: the admin who runs `sudo dockwall init` over SSH is in a session all the same.
 */
import { readRegularFile } from "../files/regular-file.js";
import { memberSpelling, parseCidr } from "../policy/addresses.js";
import { escapeControls } from "../policy/quote.js";

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
 * Parses SSH_CONNECTION. Hostile text (anything can set an environment variable): it must be four
 * fields, two addresses and two ports, or it is refused with a message (never guessed at).
 */
export function parseSshConnection(value: string, foundIn: string): SessionParse {
  const refuse = (why: string): SessionParse => ({ ok: false, message: `${foundIn} is ${JSON.stringify(escapeControls(value.slice(0, 120)))}: ${why}` });
  const fields = value.trim().split(/\s+/);
  if (fields.length !== 4) return refuse("it must be CLIENT CLIENT_PORT SERVER SERVER_PORT");
  const [clientText, clientPortText, serverText, serverPortText] = fields as [string, string, string, string];
  const client = address(clientText);
  const server = address(serverText);
  const clientPort = port(clientPortText);
  const serverPort = port(serverPortText);
  if (client === undefined) return refuse("the client is not an IPv4 or IPv6 address");
  if (server === undefined) return refuse("the server is not an IPv4 or IPv6 address");
  if (clientPort === undefined || serverPort === undefined) return refuse("a port is not a number 1-65535");
  return { ok: true, session: { client, clientPort, server, serverPort, foundIn } };
}

/** An address as the policy spells a single host; an IPv4-mapped IPv6 address as the IPv4 it carries (its packets are IPv4). */
function address(text: string): string | undefined {
  // A link-local client carries its interface ("fe80::1%eth0"); the address alone is the source.
  const bare = text.replace(/%[A-Za-z0-9_.@-]{1,15}$/, "");
  const mapped = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i.exec(bare);
  if (bare.includes("/")) return undefined;
  const parsed = parseCidr(mapped ? mapped[1]! : bare);
  return parsed.ok ? memberSpelling(parsed.cidr) : undefined;
}

function port(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/** How far up the process tree to look: sudo, a shell, su, another shell, sshd's session shell... */
const MAX_ANCESTORS = 16;
const PROC_LIMIT = { maxBytes: 1024 * 1024, what: "a /proc file" };

export type ProcRead = (file: string) => Promise<string>;

const readProc: ProcRead = async (file) => (await readRegularFile(file, PROC_LIMIT)).toString("utf8");

/**
 * The session from `env`, else from the nearest parent process whose environment has
 * SSH_CONNECTION; undefined when there is none. A value that is there but malformed is an error
 * (the caller refuses to write), not "no session": that would open the SSH port to anyone.
 */
export async function findSshSession(env: NodeJS.ProcessEnv, ppid: number, read: ProcRead = readProc): Promise<SessionParse | undefined> {
  const own = env.SSH_CONNECTION;
  if (own !== undefined && own.trim() !== "") return parseSshConnection(own, "SSH_CONNECTION");
  let pid = ppid;
  for (let depth = 0; depth < MAX_ANCESTORS && pid > 1; depth++) {
    const environ = await read(`/proc/${pid}/environ`).catch(() => undefined);
    const value = environ
      ?.split("\0")
      .find((v) => v.startsWith("SSH_CONNECTION="))
      ?.slice("SSH_CONNECTION=".length);
    if (value !== undefined && value.trim() !== "") {
      const name = (await read(`/proc/${pid}/comm`).catch(() => "?")).trim().slice(0, 16);
      return parseSshConnection(value, `SSH_CONNECTION of ${escapeControls(name)} (pid ${pid})`);
    }
    const status = await read(`/proc/${pid}/status`).catch(() => "");
    const parent = /^PPid:\s*(\d+)$/m.exec(status);
    if (!parent) break;
    pid = Number(parent[1]);
  }
  return undefined;
}
