/**
 * Group files: one address or CIDR per line, blank lines and # comments ignored. They can hold
 * hundreds of thousands of lines (blocklists), so this is a plain loop with no YAML and no
 * per-line allocation beyond the result.
 */
import { distinct, everyAddressInGroup, hostBitsWarning, memberSpelling, parseCidr, scannedV4Member, scanV4 } from "./addresses.js";
import type { PolicyError } from "./errors.js";
import { GROUP_FILE_MAX_MESSAGES } from "./limits.js";

/** Members in Group spelling (see policy/types.ts). */
export interface GroupFile {
  ipv4: string[];
  ipv6: string[];
  errors: PolicyError[];
  warnings: PolicyError[];
}

export function parseGroupFile(text: string, file: string): GroupFile {
  const out: GroupFile = { ipv4: [], ipv6: [], errors: [], warnings: [] };
  const v4Keys: number[] = [];
  let errorCount = 0;
  let warningCount = 0;
  let lineNo = 0;
  let start = 0;
  const error = (col: number, message: string) => {
    errorCount++;
    if (errorCount <= GROUP_FILE_MAX_MESSAGES) out.errors.push({ file, line: lineNo, col, message });
  };
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    lineNo++;
    let line = text.slice(start, end);
    start = end + 1;
    const hash = line.indexOf("#");
    if (hash >= 0) line = line.slice(0, hash);
    const trimmed = line.trim();
    if (trimmed === "") continue;
    const key = scanV4(trimmed);
    // A prefix of 0 (key % 64) goes the slow way, to its error.
    if (key >= 0 && key % 64 !== 0) {
      out.ipv4.push(scannedV4Member(trimmed, key));
      v4Keys.push(key);
      continue;
    }
    const col = line.indexOf(trimmed) + 1;
    const parsed = parseCidr(trimmed);
    if (!parsed.ok) {
      error(col, parsed.message);
      continue;
    }
    const everything = everyAddressInGroup(trimmed, parsed.cidr);
    if (everything) {
      error(col, everything);
      continue;
    }
    const warning = hostBitsWarning(parsed);
    if (warning && ++warningCount <= GROUP_FILE_MAX_MESSAGES) out.warnings.push({ file, line: lineNo, col, message: warning });
    const member = memberSpelling(parsed.cidr);
    if (parsed.cidr.family === "ipv6") {
      out.ipv6.push(member);
    } else {
      out.ipv4.push(member);
      v4Keys.push(scanV4(member));
    }
  }
  out.ipv4 = hasDuplicateKeys(v4Keys) ? distinct(out.ipv4) : out.ipv4;
  out.ipv6 = distinct(out.ipv6);
  if (errorCount > GROUP_FILE_MAX_MESSAGES) {
    out.errors.push({ file, line: lineNo, col: 1, message: `${errorCount - GROUP_FILE_MAX_MESSAGES} more bad lines not shown` });
  }
  if (warningCount > GROUP_FILE_MAX_MESSAGES) {
    out.warnings.push({ file, line: lineNo, col: 1, message: `${warningCount - GROUP_FILE_MAX_MESSAGES} more lines with host bits set not shown` });
  }
  if (errorCount === 0 && out.ipv4.length === 0 && out.ipv6.length === 0) {
    out.warnings.push({ file, line: 1, col: 1, message: "the file holds no addresses: its group matches no source" });
  }
  return out;
}

/** Sorting 100,000 numbers costs a third of hashing 100,000 strings, and duplicates are rare. */
function hasDuplicateKeys(keys: number[]): boolean {
  const sorted = Float64Array.from(keys).sort();
  for (let i = 1; i < sorted.length; i++) if (sorted[i] === sorted[i - 1]) return true;
  return false;
}
