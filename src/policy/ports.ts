/** Ports as users write them: 80, "8000-8010", or a list of those. */
import type { PortRange } from "./types.js";

export type PortParse = { ok: true; range: PortRange } | { ok: false; message: string };

function portNumber(text: string, whole: string): number | string {
  if (!/^\d{1,5}$/.test(text)) return `"${whole}" is not a port: write a number 1-65535 or a range a-b`;
  const n = Number(text);
  if (n < 1 || n > 65535) return `port ${n} is outside 1-65535`;
  return n;
}

/** One port or an inclusive range; numbers from YAML arrive as numbers, ranges as strings. */
export function parsePort(value: unknown): PortParse {
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < 1 || value > 65535) return { ok: false, message: `port ${value} is outside 1-65535` };
    return { ok: true, range: { from: value, to: value } };
  }
  if (typeof value !== "string") return { ok: false, message: "a port must be a number 1-65535 or a range a-b" };
  const text = value.trim();
  const dash = text.indexOf("-");
  if (dash < 0) {
    const n = portNumber(text, text);
    return typeof n === "string" ? { ok: false, message: n } : { ok: true, range: { from: n, to: n } };
  }
  const from = portNumber(text.slice(0, dash).trim(), text);
  if (typeof from === "string") return { ok: false, message: from };
  const to = portNumber(text.slice(dash + 1).trim(), text);
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
