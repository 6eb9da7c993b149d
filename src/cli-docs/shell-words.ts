/** Quoting for the generated scripts: every name and description goes through here. */

/** A POSIX shell single-quoted word (bash and zsh): 'it'\''s'. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A fish single-quoted word: only \ and ' are special inside. */
export function fishQuote(s: string): string {
  return `'${s.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

/** One line of a description: completion menus show a line, not a paragraph. */
export function oneLine(s: string): string {
  return s.replace(/\s+/g, " ").trim();
}
