/**
 * Where a walk through one chain may skip to, knowing the packet's source. fail2ban, CrowdSec and
 * allow-list scripts write thousands of `-s ADDR -j ...` rules in a row, and a packet can match only
 * those whose `-s` holds its source. With the rules indexed by prefix, a walk jumps from one such
 * rule to the next instead of testing each: audit traces a stand-in for every address the rules
 * name, so testing every rule made it quadratic in the addresses (5,000 took minutes).
 *
 * Skipping is exact: a rule is indexed only if, for a source outside its `-s`, testing it could only
 * have said "no match" (the `-s` comes before any condition that may throw, and the rule is
 * understood), and a rule that does not match leaves no step behind.
 */
import { key, parseCidr } from "./address-set.js";
import type { ParsedRule } from "./rule.js";

/** The `-s` a rule can be skipped by, if it can be. */
function skippableBy(rule: ParsedRule): string | undefined {
  if (rule.unknown !== undefined) return undefined;
  for (const c of rule.conditions) {
    if (c.source !== undefined) return c.source;
    if (c.lookup) return undefined;
  }
  return undefined;
}

/** The first entry of an ascending list that is at least `i`, if any. */
function firstAtLeast(list: number[], i: number): number | undefined {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! < i) lo = mid + 1;
    else hi = mid;
  }
  return list[lo];
}

export class SourceIndex {
  /** Address length (4 or 16) -> prefix length -> the prefix's key -> indexes of the rules, ascending. */
  private readonly byPrefix = new Map<number, Map<number, Map<string, number[]>>>();

  private constructor(
    /** For each rule (and one past the end), the first rule at or after it that is not indexed. */
    private readonly nextOther: Int32Array,
  ) {}

  /** The chain's index, or undefined when no rule of it can be skipped by source. */
  static of(rules: ParsedRule[]): SourceIndex | undefined {
    const cidrs = rules.map((r) => {
      const cidr = skippableBy(r);
      return cidr === undefined ? undefined : parseCidr(cidr);
    });
    if (cidrs.every((c) => c === undefined)) return undefined;
    const nextOther = new Int32Array(rules.length + 1);
    nextOther[rules.length] = rules.length;
    for (let i = rules.length - 1; i >= 0; i--) nextOther[i] = cidrs[i] === undefined ? i : nextOther[i + 1]!;
    const index = new SourceIndex(nextOther);
    cidrs.forEach((c, i) => {
      if (c === undefined) return;
      let prefixes = index.byPrefix.get(c.bytes.length);
      if (prefixes === undefined) index.byPrefix.set(c.bytes.length, (prefixes = new Map()));
      let keys = prefixes.get(c.prefix);
      if (keys === undefined) prefixes.set(c.prefix, (keys = new Map()));
      const k = key(c.bytes, c.prefix);
      const list = keys.get(k);
      if (list === undefined) keys.set(k, [i]);
      else list.push(i);
    });
    return index;
  }

  /**
   * The first rule at or after `i` that a packet from `src` (its bytes; undefined if not an
   * address) may match; the chain's length if none.
   */
  next(src: number[] | undefined, i: number): number {
    const other = this.nextOther[i]!;
    if (other === i) return i;
    let best = other;
    const prefixes = src === undefined ? undefined : this.byPrefix.get(src.length);
    if (prefixes === undefined) return best;
    for (const [prefix, keys] of prefixes) {
      const list = keys.get(key(src!, prefix));
      const j = list === undefined ? undefined : firstAtLeast(list, i);
      if (j !== undefined && j < best) best = j;
    }
    return best;
  }
}
