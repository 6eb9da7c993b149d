/**
 * User text inside messages. A value from a policy or group file is hostile: a newline in it would
 * print a line of its own (a fake `FILE:LINE:COL: ...` error, or a fake "ok"), an escape sequence
 * would drive the terminal, a bidi override would reorder what the reader sees, and a 60 MB line
 * would be echoed whole. Every message that shows user text shows it through `quote`.
 */

/** Longest piece of user text a message shows, in characters; the rest is cut and marked with "…". */
export const QUOTE_MAX_CHARS = 60;

// C0 and C1 controls and DEL (Cc), format characters such as bidi overrides, zero-width joiners and
// the BOM (Cf), line and paragraph separators (Zl, Zp), and lone surrogates (Cs); `"` and `\` so the
// quoted text cannot end early.
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}"\\]/gu;
const UNSAFE_BARE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

const SHORT: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\" };

function escapeChar(c: string): string {
  const short = SHORT[c];
  if (short !== undefined) return short;
  let out = "";
  for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, "0")}`;
  return out;
}

/** `"text"`, JSON-style escaped, cut to QUOTE_MAX_CHARS with `…` after the closing quote when cut. */
export function quote(text: string): string {
  // Counted in code points (an emoji is one), and never further than the cut.
  let end = 0;
  let count = 0;
  for (const c of text) {
    if (count === QUOTE_MAX_CHARS) break;
    count++;
    end += c.length;
  }
  const cut = end < text.length;
  return `"${text.slice(0, end).replace(UNSAFE, escapeChar)}"${cut ? "…" : ""}`;
}

/**
 * Text shown without quotes where a quote would be in the way (a file name before `:LINE:COL`, a
 * message from the YAML library): the same escapes, no cut, so it stays one line and jumps still work.
 */
export function escapeControls(text: string): string {
  return text.replace(UNSAFE_BARE, escapeChar);
}
