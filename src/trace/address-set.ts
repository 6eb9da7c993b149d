/**
 * Addresses and CIDRs as the tracer matches them: a rule's `-s 198.18.0.0/15`, an ipset's 100,000
 * members. Lookup is one hash probe per prefix length present, not a scan of the members.
 */
import ipaddr from "ipaddr.js";

const OCTET = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
/** Dotted decimal without leading zeros: the form the rules and the kernel print, read without ipaddr.js. */
const PLAIN_IPV4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

/** The address as bytes (4 or 16), or undefined if it is not one. */
export function addressBytes(text: string): number[] | undefined {
  // Audit tests every probe's addresses against many rules: ipaddr.js's parse was most of its time.
  const plain = PLAIN_IPV4.exec(text);
  if (plain) return [Number(plain[1]), Number(plain[2]), Number(plain[3]), Number(plain[4])];
  if (!ipaddr.isValid(text)) return undefined;
  const a = ipaddr.parse(text);
  if (a.kind() === "ipv6" && (a as ipaddr.IPv6).isIPv4MappedAddress()) return (a as ipaddr.IPv6).toIPv4Address().toByteArray();
  return a.toByteArray();
}

/** The first `prefix` bits of an address, as a map key: equal for every address inside the same CIDR. */
export function key(bytes: number[], prefix: number): string {
  const out: number[] = [];
  for (let i = 0; i * 8 < prefix; i++) {
    const bits = Math.min(8, prefix - i * 8);
    out.push(bytes[i]! & ((0xff << (8 - bits)) & 0xff));
  }
  return out.join(".");
}

/** Parses `ADDR` or `ADDR/LEN`; undefined if it is neither. */
export function parseCidr(text: string): { bytes: number[]; prefix: number } | undefined {
  const slash = text.indexOf("/");
  const bytes = addressBytes(slash < 0 ? text : text.slice(0, slash));
  if (bytes === undefined) return undefined;
  const bitsMax = bytes.length * 8;
  const prefix = slash < 0 ? bitsMax : Number(text.slice(slash + 1));
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bitsMax) return undefined;
  return { bytes, prefix };
}

/** `a.b.c.d` or `a.b.c.d/n` as a 32-bit number and prefix, by char codes (no allocation); undefined if not. */
function parseIpv4Cidr(text: string): { n: number; prefix: number } | undefined {
  let n = 0;
  let octet = -1;
  let dots = 0;
  let i = 0;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      octet = octet < 0 ? c - 48 : octet * 10 + (c - 48);
      if (octet > 255) return undefined;
    } else if (c === 46 && octet >= 0 && dots < 3) {
      n = n * 256 + octet;
      octet = -1;
      dots++;
    } else break;
  }
  if (dots !== 3 || octet < 0) return undefined;
  n = n * 256 + octet;
  if (i === text.length) return { n, prefix: 32 };
  if (text.charCodeAt(i) !== 47) return undefined;
  const prefix = Number(text.slice(i + 1));
  return Number.isInteger(prefix) && prefix >= 0 && prefix <= 32 ? { n, prefix } : undefined;
}

function ipv4Key(n: number, prefix: number): number {
  return prefix === 0 ? 0 : Math.floor(n / 2 ** (32 - prefix));
}

export class AddressSet {
  private readonly byPrefix = new Map<number, Set<string | number>>();
  private readonly family: 4 | 16;

  /** Throws on a member that is not an address or CIDR of the family. */
  constructor(members: Iterable<string>, family: "ipv4" | "ipv6") {
    this.family = family === "ipv4" ? 4 : 16;
    for (const m of members) {
      // IPv4 by number: 100,000 members in ~10 ms, where parsing each with ipaddr.js took ~400 ms.
      const v4 = this.family === 4 ? parseIpv4Cidr(m) : undefined;
      const c = v4 ? undefined : parseCidr(m);
      if (v4 === undefined && (c === undefined || c.bytes.length !== this.family)) throw new Error(`not an ${family} address or CIDR: ${m}`);
      const prefix = v4 ? v4.prefix : c!.prefix;
      let keys = this.byPrefix.get(prefix);
      if (keys === undefined) this.byPrefix.set(prefix, (keys = new Set()));
      keys.add(v4 ? ipv4Key(v4.n, v4.prefix) : key(c!.bytes, c!.prefix));
    }
  }

  has(address: string): boolean {
    if (this.family === 4) {
      const v4 = parseIpv4Cidr(address) ?? (() => {
        const b = addressBytes(address);
        return b?.length === 4 ? { n: ((b[0]! * 256 + b[1]!) * 256 + b[2]!) * 256 + b[3]!, prefix: 32 } : undefined;
      })();
      if (v4 === undefined || v4.prefix !== 32) return false;
      for (const [prefix, keys] of this.byPrefix) if (keys.has(ipv4Key(v4.n, prefix))) return true;
      return false;
    }
    const bytes = addressBytes(address);
    if (bytes === undefined || bytes.length !== this.family) return false;
    for (const [prefix, keys] of this.byPrefix) if (keys.has(key(bytes, prefix))) return true;
    return false;
  }

  /** One address inside the set (the first of some member), for audit's representative sources. */
  static firstAddress(cidr: string): string | undefined {
    const c = parseCidr(cidr);
    if (c === undefined) return undefined;
    const bytes = key(c.bytes, c.prefix).split(".").filter(Boolean).map(Number);
    while (bytes.length < c.bytes.length) bytes.push(0);
    // A network's own address is a poor stand-in for a host on it; take the next one where there is room.
    if (c.prefix < c.bytes.length * 8 - 1) bytes[bytes.length - 1]! += 1;
    return ipaddr.fromByteArray(bytes).toString();
  }
}

/** True if `address` is inside `cidr` (same family). */
export function cidrContains(cidr: string, address: string): boolean {
  return cidrMatcher(cidr)?.(address) ?? false;
}

/**
 * `cidrContains(cidr, ·)` with the CIDR parsed once: a rule's `-s` is tested against every probe
 * audit traces, and parsing it each time was most of audit's time.
 */
export function cidrMatcher(cidr: string): ((address: string) => boolean) | undefined {
  const c = parseCidr(cidr);
  if (c === undefined) return undefined;
  const want = key(c.bytes, c.prefix);
  return (address) => {
    const a = addressBytes(address);
    return a !== undefined && a.length === c.bytes.length && key(a, c.prefix) === want;
  };
}
