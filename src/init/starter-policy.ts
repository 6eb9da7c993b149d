/**
 * `dockwall init`'s starter policy: what this host runs now -> the YAML text of a policy. Pure.
 *
 * What it opens: the SSH port of the current session, to the session's source only (a group
 * `admins`, easy to extend), or to anyone when there is no session (said so in the file). What it
 * closes: everything else. Every published container port and every listening host socket is
 * written out as a commented entry, with what it was found from, so opening one is uncommenting a
 * line; nothing found is left out without a word. A Docker that could not be asked, or sockets that
 * could not be read, are said at the top of the file and where their entries would be: the policy
 * is still closed (a port not listed is closed like one listed), but the admin must know the list
 * is not complete.
 *
 * Commented entries are written so that removing `# ` in front of them gives valid YAML the loader
 * accepts (a unit test uncomments them all and loads the result).
 */
import type { ListeningSocket } from "../facts/sockets.js";
import type { DockerFacts, PublishedPort } from "../facts/types.js";
import type { Proto } from "../policy/types.js";
import { escapeControls } from "../policy/quote.js";
import type { SshSession } from "./session.js";

export interface InitFacts {
  docker: Pick<DockerFacts, "reachable" | "error" | "version" | "containers">;
  sockets: { ok: true; list: ListeningSocket[] } | { ok: false; error: string };
  session: SshSession | undefined;
  /** For the header: the host's name and the time, as the caller has them (kept out, the output is a function of the facts). */
  hostname?: string;
  writtenAt?: string;
}

export interface StarterPolicy {
  text: string;
  /** What the admin must hear on the terminal too (Docker not asked, sockets not read, SSH open to anyone). */
  warnings: string[];
  /** "22/tcp to admins (198.18.0.30)": what the policy opens. */
  opens: string[];
  /** How many ports are listed closed, by where they were found. */
  closed: { published: number; listening: number };
}

/** The group the session's source goes into. */
export const ADMINS_GROUP = "admins";
const DEFAULT_SSH_PORT = 22;
const MAX_TEXT = 64;
/** A reason (Docker's error) is worth more of its words than a name. */
const MAX_REASON = 240;

/** Ports whose listener a careful admin should think twice about opening (guessed by number, said as a guess). */
const HINTS: Record<string, string> = {
  "tcp 2375": "Docker's unencrypted API if dockerd listens here: never open it to anyone",
  "tcp 2376": "Docker's TLS API if dockerd listens here: open it only to admins",
  "tcp 2377": "Docker Swarm management? use swarm: peers instead",
  "tcp 7946": "Docker Swarm gossip? use swarm: peers instead",
  "udp 7946": "Docker Swarm gossip? use swarm: peers instead",
};

/** One port found open on the host, in either family, on one or more addresses. */
interface Found {
  proto: Proto;
  port: number;
  binds: string[];
  /** What it is, for the comment: "container web: its 80/tcp" or "listening socket". */
  what: string[];
}

export function starterPolicy(f: InitFacts): StarterPolicy {
  const warnings: string[] = [];
  const opens: string[] = [];
  const out: string[] = [];
  const sshPort = f.session?.serverPort ?? DEFAULT_SSH_PORT;
  const outside = f.session !== undefined && !isLoopback(f.session.client) ? f.session : undefined;

  const published = publishedPorts(f.docker);
  const publishedKeys = new Set(published.map(key));
  const sockets = f.sockets.ok ? listening(f.sockets.list, publishedKeys) : [];
  const sshKey = `tcp ${sshPort}`;

  // ---- header ----------------------------------------------------------------------------------
  out.push(
    `# dockwall starter policy, written by \`dockwall init\`${f.hostname ? ` on ${text(f.hostname)}` : ""}${f.writtenAt ? ` at ${text(f.writtenAt)}` : ""},`,
    "# from what this host runs now. Everything from outside is closed except what is opened below;",
    "# replies to connections already open, loopback and Docker's own bridges always pass.",
    "# An entry without from: is open to anyone; from: takes group names, addresses and CIDRs. An entry",
    "# opens IPv4 and IPv6 alike; below, 0.0.0.0 and :: mean every IPv4 and every IPv6 address.",
    "# Review it, then: dockwall check, dockwall plan, dockwall apply --confirm 120 (-c FILE each time).",
  );
  if (!f.docker.reachable) {
    const w = `Docker was not reachable (${text(f.docker.error ?? "no reason given", MAX_REASON)}): its published ports are NOT listed in this policy; they are closed by it like every port not opened. Run dockwall init again once Docker answers, or add containers: entries by hand`;
    warnings.push(w);
    out.push("#", ...wrap(`WARNING: ${w}.`, "# "));
  }
  if (!f.sockets.ok) {
    const w = `the host's listening sockets could not be read (${text(f.sockets.error, MAX_REASON)}): none is listed in this policy; they are closed by it like every port not opened`;
    warnings.push(w);
    out.push("#", ...wrap(`WARNING: ${w}.`, "# "));
  }
  out.push("");

  // ---- groups and SSH ----------------------------------------------------------------------------
  if (outside) {
    out.push(
      "groups:",
      ...wrap(`The source of this SSH session (${text(outside.foundIn)}: ${describeSession(outside)}). Add the other admins' addresses or CIDRs here.`, "  # "),
      `  ${ADMINS_GROUP}: ["${outside.client}"]`,
      "",
    );
  }
  out.push("host:");
  const sshListener = sockets.find((s) => key(s) === sshKey);
  const listenerNote = sshListener ? `listening on ${binds(sshListener.binds)}` : `nothing listens on ${sshPort}/tcp now`;
  if (outside) {
    out.push(...wrap(`SSH: the port this session came in on (${text(outside.foundIn)}), kept open to its source; ${listenerNote}.`, "  # "));
    out.push(`  - port: ${sshPort}`, `    from: [${ADMINS_GROUP}]`);
    opens.push(`${sshPort}/tcp to ${ADMINS_GROUP} (${outside.client})`);
  } else {
    const why =
      f.session === undefined
        ? "no SSH session was found (SSH_CONNECTION is not set here nor in a parent process)"
        : `this SSH session comes from loopback (${f.session.client}), so its real source is not known`;
    const w = `${why}: port ${sshPort}/tcp is open to anyone in this policy; narrow it with from: [your addresses]`;
    warnings.push(w);
    out.push(...wrap(`SSH: ${w}; ${listenerNote}.`, "  # "));
    out.push(`  - port: ${sshPort}`);
    opens.push(`${sshPort}/tcp to anyone`);
  }

  // ---- host sockets ------------------------------------------------------------------------------
  const hostFound = sockets.filter((s) => key(s) !== sshKey);
  const hostOpenable = hostFound.filter((s) => !s.binds.every(isLoopback));
  if (hostOpenable.length > 0) {
    out.push("  # Listening on this host (/proc/net/tcp, tcp6, udp, udp6), closed. To open one, uncomment it:");
    for (const s of hostOpenable) out.push(...commentedEntry(s, "  # ", `${s.proto} on ${binds(s.binds)}`));
    if (!f.docker.reachable) out.push("  # (With Docker not reachable, Docker's docker-proxy listeners for published ports are among these.)");
  } else if (f.sockets.ok) {
    out.push("  # No other listening socket was found on this host's addresses (/proc/net/tcp, tcp6, udp, udp6).");
  } else {
    out.push("  # Listening sockets: NOT listed, they could not be read (see the warning at the top).");
  }
  const hostLocal = hostFound.filter((s) => s.binds.every(isLoopback));
  if (hostLocal.length > 0) out.push(...wrap(`Local only (bound to loopback), nothing to open: ${hostLocal.map((s) => `${s.port}/${s.proto} on ${binds(s.binds)}`).join(", ")}.`, "  # "));
  out.push("");

  // ---- published container ports -----------------------------------------------------------------
  const containerOpenable = published.filter((p) => !p.binds.every(isLoopback));
  if (!f.docker.reachable) {
    out.push("# Published container ports: NOT listed, Docker was not reachable (see the warning at the top).");
  } else if (containerOpenable.length > 0) {
    out.push("# Published by Docker (running containers, from the Docker Engine API), closed. To open one,");
    out.push("# uncomment containers: and its entry:");
    out.push("# containers:");
    for (const p of containerOpenable) out.push(...commentedEntry(p, "#   ", `${p.what.join("; ")}; published on ${binds(p.binds)}`));
  } else {
    out.push(`# No running container publishes a port to outside addresses${f.docker.version ? ` (Docker ${text(f.docker.version)})` : ""}.`);
  }
  const containerLocal = published.filter((p) => p.binds.every(isLoopback));
  if (containerLocal.length > 0) {
    out.push(...wrap(`Published on loopback only, not reachable from outside, nothing to open: ${containerLocal.map((p) => `${p.port}/${p.proto} (${p.what.join("; ")}, on ${binds(p.binds)})`).join(", ")}.`, "# "));
  }
  out.push(
    "",
    "icmp: allow        # echo requests (ping); drop refuses them",
    "default: drop      # everything else from outside; reject answers with a refusal (host ports only)",
    "log: { drops: false, rate: 10/minute }   # drops: true logs refused connections, at most rate",
    "",
  );
  return { text: out.join("\n"), warnings, opens, closed: { published: containerOpenable.length, listening: hostOpenable.length } };
}

/** Published ports of running containers, one per (proto, host port), with every binding and container. */
function publishedPorts(docker: InitFacts["docker"]): Found[] {
  const found = new Map<string, Found>();
  for (const c of docker.containers.filter((c) => c.running)) {
    for (const p of c.published) {
      const k = key({ proto: p.proto, port: p.hostPort });
      const entry = found.get(k) ?? { proto: p.proto, port: p.hostPort, binds: [], what: [] };
      add(entry.binds, bindOf(p));
      add(entry.what, `container ${text(c.name)}: its ${p.containerPort}/${p.proto}`);
      found.set(k, entry);
    }
  }
  return sorted([...found.values()]);
}

/** Listening sockets, one per (proto, port); docker-proxy's are the published ports (as audit counts them). */
function listening(sockets: ListeningSocket[], publishedKeys: Set<string>): Found[] {
  const found = new Map<string, Found>();
  for (const s of sockets) {
    const k = key(s);
    if (publishedKeys.has(k)) continue;
    const entry = found.get(k) ?? { proto: s.proto, port: s.port, binds: [], what: ["listening socket"] };
    add(entry.binds, s.address);
    found.set(k, entry);
  }
  return sorted([...found.values()]);
}

/**
 * `- port: N  # why`, and `proto: udp` under it, after `prefix` ("  # " in host:, "#   " under a
 * commented `# containers:`): valid YAML once the first `# ` is taken off each line.
 */
function commentedEntry(f: Found, prefix: string, why: string): string[] {
  const hint = HINTS[key(f)];
  const lines = [`${prefix}- port: ${f.port}`.padEnd(prefix.length + 16) + ` # ${why}${hint ? ` (${hint})` : ""}`];
  if (f.proto === "udp") lines.push(`${prefix}  proto: udp`);
  return lines;
}

function bindOf(p: PublishedPort): string {
  return p.hostIp === "" ? "0.0.0.0" : p.hostIp;
}

function binds(list: string[]): string {
  return list.join(" and ");
}

function isLoopback(address: string): boolean {
  return /^127\./.test(address) || address === "::1" || /^::ffff:127\./i.test(address);
}

function describeSession(s: SshSession): string {
  const at = (a: string, p: number) => (a.includes(":") ? `[${a}]:${p}` : `${a}:${p}`);
  return `${at(s.client, s.clientPort)} to ${at(s.server, s.serverPort)}`;
}

function key(f: { proto: Proto; port: number }): string {
  return `${f.proto} ${f.port}`;
}

function sorted(list: Found[]): Found[] {
  return list.sort((a, b) => a.port - b.port || a.proto.localeCompare(b.proto));
}

function add(list: string[], item: string): void {
  if (!list.includes(item)) list.push(item);
}

/**
 * Text from outside (a container's name, Docker's error, the host's name) inside a comment: on one
 * line (a newline would end the comment and start YAML of its own), with no terminal controls, cut.
 */
function text(t: string, max = MAX_TEXT): string {
  const one = escapeControls(t);
  return one.length > max ? `${one.slice(0, max)}…` : one;
}

/** A long comment over several lines of at most ~100 characters, each with `prefix`. */
function wrap(sentence: string, prefix: string, width = 100): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of sentence.split(" ")) {
    if (line !== "" && prefix.length + line.length + 1 + word.length > width) {
      lines.push(`${prefix}${line}`);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") lines.push(`${prefix}${line}`);
  return lines;
}
