/** What `dockwall init` looks at, read side by side: Docker, the listening sockets, the SSH session. */
import { readFile } from "node:fs/promises";
import os from "node:os";
import { readDockerFacts } from "../facts/docker.js";
import { readListeningSockets } from "../facts/sockets.js";
import { findSshSession } from "./session.js";
import type { InitFacts } from "./starter-policy.js";

/** The facts, or the session's problem (a malformed SSH_CONNECTION: init writes nothing then). */
export async function readInitFacts(): Promise<{ ok: true; facts: InitFacts } | { ok: false; message: string }> {
  const [docker, sockets, session] = await Promise.all([readDockerFacts(), readSockets(), findSshSession(process.env, process.ppid)]);
  if (session !== undefined && !session.ok) return session;
  return { ok: true, facts: { docker, sockets, session: session?.session, hostname: os.hostname(), writtenAt: new Date().toISOString() } };
}

/**
 * The listening sockets, or why they could not be read: readListeningSockets takes an unreadable
 * file as empty, which would list nothing without a word. A missing tcp6/udp6 is a host without IPv6.
 */
async function readSockets(): Promise<InitFacts["sockets"]> {
  const failures: string[] = [];
  const { sockets: list } = await readListeningSockets((f) =>
    readFile(f, "utf8").catch((e: NodeJS.ErrnoException) => {
      if (!(e.code === "ENOENT" && /6$/.test(f))) failures.push(`${f}: ${e.message}`);
      throw e;
    }),
  );
  return failures.length === 0 ? { ok: true, list } : { ok: false, error: failures.join("; ") };
}
