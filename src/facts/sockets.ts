/**
 * Listening host sockets, from /proc/net/{tcp,tcp6,udp,udp6} of the namespace dockwall runs in
 * (no `ss` process), with the process that holds each (socket-owners.ts): what `audit` checks
 * besides Docker's published ports.
 */
import { readFile } from "node:fs/promises";
import ipaddr from "ipaddr.js";
import type { Family, Proto } from "../policy/types.js";
import { socketOwners, SYSTEM_PROC, type ProcSource, type SocketOwner } from "./socket-owners.js";

export interface ListeningSocket {
  proto: Proto;
  family: Family;
  /** "0.0.0.0", "::", or the address bound to. */
  address: string;
  port: number;
  /** The socket's inode (the /proc/net field), what ties it to a process. */
  inode: number;
  /** The process holding it (the lowest pid, when several do); absent when none was found. */
  process?: SocketOwner;
}

export interface ListeningSockets {
  sockets: ListeningSocket[];
  /** Why a socket may show no process though one holds it (socket-owners.ts); absent when the scan was whole. */
  ownersIncomplete?: string;
}

const TCP_LISTEN = "0A";
const UDP_UNCONNECTED = "07";

/** The kernel prints each 32-bit word of an address in host byte order (little-endian here). */
function decodeAddress(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex.slice(w, w + 8);
    for (let b = 6; b >= 0; b -= 2) bytes.push(parseInt(word.slice(b, b + 2), 16));
  }
  return ipaddr.fromByteArray(bytes).toString();
}

export function parseProcNet(text: string, proto: Proto, family: Family): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const [local, remote, state, inode] = [f[1]!, f[2]!, f[3]!, f[9]];
    const listening = proto === "tcp" ? state === TCP_LISTEN : state === UDP_UNCONNECTED && /^0+:0000$/.test(remote);
    if (!listening) continue;
    const [addr, port] = local.split(":");
    out.push({ proto, family, address: decodeAddress(addr!), port: parseInt(port!, 16), inode: inode !== undefined && /^\d{1,20}$/.test(inode) ? Number(inode) : 0 });
  }
  return out;
}

export async function readListeningSockets(read: (file: string) => Promise<string> = (f) => readFile(f, "utf8"), proc: ProcSource = SYSTEM_PROC): Promise<ListeningSockets> {
  const files: [string, Proto, Family][] = [
    ["/proc/net/tcp", "tcp", "ipv4"],
    ["/proc/net/tcp6", "tcp", "ipv6"],
    ["/proc/net/udp", "udp", "ipv4"],
    ["/proc/net/udp6", "udp", "ipv6"],
  ];
  const all = await Promise.all(files.map(([file, proto, family]) => read(file).then((t) => parseProcNet(t, proto, family), () => [])));
  // Inode 0: a socket the kernel shows without one (being torn down); it has no owner to find.
  const { owners, incomplete } = await socketOwners(all.flat().flatMap((s) => (s.inode > 0 ? [s.inode] : [])), proc);
  // Several sockets on one address and port (SO_REUSEPORT workers) are one target: the lowest pid names it.
  const byKey = new Map<string, ListeningSocket>();
  for (const s of all.flat()) {
    const k = `${s.proto} ${s.family} ${s.address} ${s.port}`;
    const owner = owners.get(s.inode);
    const had = byKey.get(k);
    if (had === undefined) byKey.set(k, owner ? { ...s, process: owner } : s);
    else if (owner && (had.process === undefined || owner.pid < had.process.pid)) had.process = owner;
  }
  return { sockets: [...byKey.values()], ...(incomplete ? { ownersIncomplete: incomplete } : {}) };
}
