/**
 * Ports as users write them: 80, 8000-8010, or a list of those.
 *
 * Judged on the text as written, not on the value YAML made of it: YAML reads 0x50 as 80, 1e2 as
 * 100, 80.0 as 80, +80 as 80, and under `%YAML 1.1` 010 as 8 and 1:20 as 80. A port is a decimal
 * integer 1-65535 without leading zeros, or a range a-b of two such.
 */
import type { PortRange } from "./types.js";
import { quote } from "./quote.js";

export type PortParse = { ok: true; range: PortRange } | { ok: false; message: string };

const PORT_TEXT = /^(\d+)(?:-(\d+))?$/;

function portNumber(digits: string): number | string {
  const shown = digits.length <= 15 ? digits : quote(digits);
  const n = Number(digits);
  if (n < 1 || n > 65535) return `port ${shown} is outside 1-65535`;
  if (digits.startsWith("0")) return `port ${shown} has a leading zero (octal or decimal is ambiguous): write ${n}`;
  return n;
}

/** One port or an inclusive range, from the text the user wrote (the YAML scalar's source). */
export function parsePort(text: string): PortParse {
  const m = PORT_TEXT.exec(text);
  if (!m) return { ok: false, message: `${quote(text)} is not a port: write a decimal number 1-65535 or a range a-b` };
  const from = portNumber(m[1]!);
  if (typeof from === "string") return { ok: false, message: from };
  if (m[2] === undefined) return { ok: true, range: { from, to: from } };
  const to = portNumber(m[2]);
  if (typeof to === "string") return { ok: false, message: to };
  if (from > to) return { ok: false, message: `port range ${text} is reversed: write ${to}-${from}` };
  return { ok: true, range: { from, to } };
}

/** Sorted, with overlapping and adjacent ranges merged, so the compiled rules are stable. */
export function mergePortRanges(ranges: PortRange[]): PortRange[] {
  const sorted = [...ranges].sort((a, b) => a.from - b.from || a.to - b.to);
  const out: PortRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else out.push({ ...r });
  }
  return out;
}
