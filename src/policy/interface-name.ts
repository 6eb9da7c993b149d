/** What the kernel and iptables take for an interface name: checked where the policy is loaded, with its line. */

/** IFNAMSIZ is 16 with the NUL: a name has at most 15 bytes, a trailing + (iptables' wildcard) included. */
const IFNAMSIZ = 16;

/**
 * Why the kernel (dev_valid_name: not empty, under IFNAMSIZ bytes, not "." or "..", no '/', ':' or
 * whitespace) or iptables (a leading '-' or '!' reads as an option or a negation; '+' is the prefix
 * wildcard, so only last) would not take `name` for the interface meant; undefined when it is fine.
 * Beyond the kernel: only letters, digits, '_', '.', '@' and '-' (what real names use), since names
 * go bare into iptables-restore lines and must come back from iptables-save spelled the same.
 * `lo` is refused: it is always let through (the host's own connections), filtering it makes no sense.
 */
export function interfaceNameProblem(name: string): string | undefined {
  const base = name.endsWith("+") ? name.slice(0, -1) : name;
  if (name === "") return "it is empty";
  if (base === "") return "a lone + would match every interface, lo and Docker's bridges included; leave interfaces out to mean every outside interface";
  if (Buffer.byteLength(name) >= IFNAMSIZ) return `at most ${IFNAMSIZ - 1} characters, a trailing + included (it has ${name.length})`;
  if (base === "." || base === "..") return `"." and ".." are not allowed`;
  if (base.includes(":")) return "':' is not allowed (eth0:1 is an address label, not an interface: write the interface, eth0)";
  if (base.includes("/")) return "'/' is not allowed";
  if (/^[-!]/.test(base)) return "it must not start with '-' or '!' (iptables would read an option or a negation)";
  if (base.includes("+")) return "'+' is only allowed last (eth+ matches every name starting with eth)";
  if (!/^[A-Za-z0-9_.@-]+$/.test(base)) return "only letters, digits, '_', '.', '@' and '-' are allowed (no spaces, quotes or control characters)";
  if (name === "lo") return "lo is always allowed (the host's own connections); it cannot be filtered or routed";
  return undefined;
}
