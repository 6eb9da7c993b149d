/**
 * Addresses and CIDRs as users write them, normalised to the spelling ipset and iptables print back
 * (dotted quad; RFC 5952 for IPv6), so what dockwall writes compares equal to what it reads.
 */
import ipaddr from "ipaddr.js";
import type { Cidr } from "./types.js";
import { quote } from "./quote.js";

export type CidrParse =
  | { ok: true; cidr: Cidr; /** set when the input had host bits; the value is what the user wrote */ hostBits?: string }
  | { ok: false; message: string };

/** The warning for a CIDR written with host bits, wherever it was written (policy or group file). */
export function hostBitsWarning(parsed: CidrParse): string | undefined {
  return parsed.ok && parsed.hostBits !== undefined ? `${quote(parsed.hostBits)} has host bits set; using ${parsed.cidr.cidr}` : undefined;
}

/**
 * The start of the message for a /0 (0.0.0.0/0, ::/0, 1.2.3.4/0), or undefined for any other prefix.
 * No /0 is taken anywhere in a policy: ipset's hash:net cannot hold one, and iptables prints
 * `-s 0.0.0.0/0` back as no match at all, so the rules could never be verified; "every source" is
 * spelled `any` (or, in `from`, by leaving it out). The caller says what to write instead.
 */
export function everyAddress(text: string, c: Cidr): string | undefined {
  if (!c.cidr.endsWith("/0")) return undefined;
  return `${quote(text)} is every ${c.family === "ipv4" ? "IPv4" : "IPv6"} address (prefix length 0)`;
}

/** The whole message for a /0 in a group (inline or in a group file). */
export function everyAddressInGroup(text: string, c: Cidr): string | undefined {
  const start = everyAddress(text, c);
  return start && `${start}, which can never be a group member: to let every source in, write any where the group is used`;
}

const MAX_CIDR_CHARS = 64;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses "198.51.100.7", "203.0.113.0/24", "2001:db8::/48"; host bits are cleared, not refused. */
export function parseCidr(text: string): CidrParse {
  // The longest address with a prefix is 49 characters (an IPv6 with a dotted-quad tail and /128).
  if (text.length > MAX_CIDR_CHARS) return { ok: false, message: `${quote(text)} is not an IPv4 or IPv6 address or CIDR` };
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  const prefixText = slash < 0 ? undefined : text.slice(slash + 1);
  if (IPV4.test(addr)) return parseV4(addr, prefixText, text);
  if (addr.includes(":")) return parseV6(addr, prefixText, text);
  return { ok: false, message: `${quote(text)} is not an IPv4 or IPv6 address or CIDR` };
}

function parsePrefix(prefixText: string | undefined, max: number, text: string): number | string {
  if (prefixText === undefined) return max;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
    return `${quote(text)}: prefix length must be 0-${max}`;
  }
  return Number(prefixText);
}

/** The list without repeats, first occurrence kept; the same array when there are none. */
export function distinct(list: string[]): string[] {
  const seen = new Set(list);
  return seen.size === list.length ? list : [...seen];
}

/** A group member's spelling (see Group): a single host loses its /32 or /128, as ipset prints it. */
export function memberSpelling(c: Cidr): string {
  const full = c.family === "ipv4" ? "/32" : "/128";
  return c.cidr.endsWith(full) ? c.cidr.slice(0, -full.length) : c.cidr;
}

const DOT = 46;
const SLASH = 47;
const ZERO = 48;

/**
 * The group-file fast path: a dotted quad in canonical spelling (no leading zeros), with an optional
 * prefix and no host bits: nearly every line of a blocklist. Returns a number that identifies the
 * network (address * 64 + prefix), so a 100,000-line file is checked for duplicates by sorting
 * numbers rather than hashing strings; -1 for anything else, which then goes through parseCidr for
 * the full check and its message.
 */
export function scanV4(text: string): number {
  const n = text.length;
  let i = 0;
  let value = 0;
  for (let octet = 0; octet < 4; octet++) {
    const start = i;
    let v = 0;
    while (i < n && i - start < 4) {
      const d = text.charCodeAt(i) - ZERO;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
      i++;
    }
    const len = i - start;
    if (len === 0 || len > 3 || v > 255 || (len > 1 && text.charCodeAt(start) === ZERO)) return -1;
    value = value * 256 + v;
    if (octet < 3) {
      if (text.charCodeAt(i) !== DOT) return -1;
      i++;
    }
  }
  if (i === n) return value * 64 + 32;
  if (text.charCodeAt(i) !== SLASH || i + 1 === n || i + 3 < n) return -1;
  const p1 = text.charCodeAt(i + 1) - ZERO;
  const p2 = i + 2 < n ? text.charCodeAt(i + 2) - ZERO : -1;
  if (p1 < 0 || p1 > 9 || (i + 2 < n && (p2 < 0 || p2 > 9 || p1 === 0))) return -1;
  const prefix = p2 < 0 ? p1 : p1 * 10 + p2;
  // Host bits set: the slow path clears them and warns.
  if (prefix > 32 || value % 2 ** (32 - prefix) !== 0) return -1;
  return value * 64 + prefix;
}

/** The member spelling of text that scanV4 accepted: the text itself, less a /32. */
export function scannedV4Member(text: string, key: number): string {
  if (key % 64 !== 32) return text;
  const slash = text.indexOf("/");
  return slash < 0 ? text : text.slice(0, slash);
}

// The common case (tens of thousands of lines in a group file) stays off ipaddr.js: plain integer maths.
function parseV4(addr: string, prefixText: string | undefined, text: string): CidrParse {
  const octets = IPV4.exec(addr)!.slice(1);
  let value = 0;
  for (const o of octets) {
    if (o.length > 1 && o.startsWith("0")) {
      return { ok: false, message: `${quote(text)}: octet "${o}" has a leading zero (octal or decimal is ambiguous)` };
    }
    const n = Number(o);
    if (n > 255) return { ok: false, message: `${quote(text)}: octet ${o} is larger than 255` };
    value = value * 256 + n;
  }
  const prefix = parsePrefix(prefixText, 32, text);
  if (typeof prefix === "string") return { ok: false, message: prefix };
  const size = 2 ** (32 - prefix);
  const network = value - (value % size);
  const spelled = `${Math.floor(network / 16777216)}.${Math.floor(network / 65536) % 256}.${Math.floor(network / 256) % 256}.${network % 256}`;
  const cidr: Cidr = { family: "ipv4", cidr: `${spelled}/${prefix}` };
  return network === value ? { ok: true, cidr } : { ok: true, cidr, hostBits: text };
}

function parseV6(addr: string, prefixText: string | undefined, text: string): CidrParse {
  if (addr.includes("%")) return { ok: false, message: `${quote(text)}: zone indexes (%) are not allowed in a firewall address` };
  if (!ipaddr.IPv6.isValid(addr)) {
    return { ok: false, message: `${quote(text)} is not a valid IPv6 address` };
  }
  const parsed = ipaddr.IPv6.parse(addr);
  if (parsed.isIPv4MappedAddress()) {
    return {
      ok: false,
      message: `${quote(text)} is an IPv4-mapped IPv6 address, which never reaches ip6tables; write ${parsed.toIPv4Address().toString()}`,
    };
  }
  const prefix = parsePrefix(prefixText, 128, text);
  if (typeof prefix === "string") return { ok: false, message: prefix };
  const bytes = parsed.toByteArray();
  let changed = false;
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    const mask = keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
    const masked = bytes[i]! & mask;
    if (masked !== bytes[i]) changed = true;
    bytes[i] = masked;
  }
  const spelled = (ipaddr.fromByteArray(bytes) as ipaddr.IPv6).toString();
  const cidr: Cidr = { family: "ipv6", cidr: `${spelled}/${prefix}` };
  return changed ? { ok: true, cidr, hostBits: text } : { ok: true, cidr };
}
