/**
 * The policy entry a rule comes from, carried in its comment as `[ID]` (then the rule's description):
 * `-m comment --comment "[host-3f2a9c1b] host 22/tcp"`. The kernel keeps comments, so the tag reads
 * back from `iptables-save -c` together with the rule's counters (metrics) and from the live rules
 * `explain` traces. Pure.
 */
import { ENTRY_ID } from "../../compile/entries.js";

/** xt_comment's limit, in bytes. */
export const MAX_COMMENT = 255;

/** The comment text of a rule from `entry` described by `text`: the tag whole, the description cut to fit. */
export function taggedComment(entry: string, text?: string): string {
  const tag = `[${entry}]`;
  if (text === undefined || text === "") return tag;
  let full = `${tag} ${text}`;
  while (Buffer.byteLength(full) > MAX_COMMENT) full = full.slice(0, -1);
  return full;
}

/** The entry id a comment's text starts with, if it is a tag; undefined for an untagged (older) comment. */
export function entryOfComment(comment: string): string | undefined {
  const m = /^\[([^\]]*)\](?: |$)/.exec(comment);
  return m && ENTRY_ID.test(m[1]!) ? m[1] : undefined;
}

/** Whether a comment opens with `[`, i.e. claims to carry a tag (rule-check then holds it to the form). */
export function claimsTag(comment: string): boolean {
  return comment.startsWith("[");
}

/** A comment word as iptables-save prints it (bare, or double-quoted with `"` and `\` escaped), unquoted. */
export function unquoteWord(word: string): string {
  return word.startsWith('"') ? word.slice(1, -1).replace(/\\(.)/g, "$1") : word;
}

const COMMENT = /(?:^| )-m comment --comment ("(?:[^"\\]|\\.)*"|[^ "]+)/;

/** The comment of a rule spec (as after `-A CHAIN `), unquoted; undefined when it has none. */
export function commentOfSpec(spec: string): string | undefined {
  const m = COMMENT.exec(spec);
  return m ? unquoteWord(m[1]!) : undefined;
}

/** A rule spec with its comment match taken out: what the rule matches and does. */
export function specWithoutComment(spec: string): string {
  return spec.replace(COMMENT, "");
}

/** The entry id a rule spec's comment carries, if any. */
export function entryOfSpec(spec: string): string | undefined {
  const comment = commentOfSpec(spec);
  return comment === undefined ? undefined : entryOfComment(comment);
}
