/**
 * What iptables keeps of a log rate. The limit match stores a rate as a period in units of
 * 1/10,000 s (libxt_limit.c parse_rate: XT_LIMIT_SCALE * seconds-per-unit / N, rounded down) and
 * prints it back in the largest unit that divides it well enough (print_rate). A rate it cannot keep
 * as written reads back differently (9999/minute as 166/sec, 7000/second as 10000/sec, 60/minute as
 * 1/sec: measured), apply's read-back then fails, and every apply of that policy fails: so the loader
 * refuses such a rate with what iptables would make of it.
 */

export type RateUnit = "second" | "minute" | "hour" | "day";

const SCALE = 10_000;
/** Largest first, as print_rate walks them; the seconds each unit holds. */
const UNITS: { unit: RateUnit; seconds: number }[] = [
  { unit: "day", seconds: 86_400 },
  { unit: "hour", seconds: 3_600 },
  { unit: "minute", seconds: 60 },
  { unit: "second", seconds: 1 },
];

/** The rate iptables reads back for N per unit, in the policy's spelling; undefined when it is too fast to keep. */
export function keptRate(n: number, unit: RateUnit): { n: number; unit: RateUnit } | undefined {
  const period = Math.floor((SCALE * UNITS.find((u) => u.unit === unit)!.seconds) / n);
  if (period === 0) return undefined;
  let i = 1;
  for (; i < UNITS.length; i++) {
    const mult = SCALE * UNITS[i]!.seconds;
    if (period > mult || Math.floor(mult / period) < mult % period) break;
  }
  const chosen = UNITS[i - 1]!;
  return { n: Math.floor((SCALE * chosen.seconds) / period), unit: chosen.unit };
}
