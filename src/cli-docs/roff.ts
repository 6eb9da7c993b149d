/** Writing man(7) roff: text escaped so that no line of it is read as a request, and any character renders. */

/** Text in running prose: backslashes, and characters outside ASCII as \[uXXXX] (groff needs no input encoding then). */
export function roffText(s: string): string {
  return s
    .replace(/\t/g, "    ")
    .replace(/\\/g, "\\e")
    // \- and \(aq \(ga stay the ASCII characters in every output (groff draws - as a hyphen, ' and ` as
    // typographic quotes), so commands copied from the page still run.
    .replace(/-/g, "\\-")
    .replace(/'/g, "\\(aq")
    .replace(/`/g, "\\(ga")
    .replace(/[^\x20-\x7e\n]/gu, (c) => `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}]`)
    .split("\n")
    // A line starting with . would be a request (' is escaped already); \& in front makes it text.
    .map((line) => (/^[.]/.test(line) ? `\\&${line}` : line))
    .join("\n");
}

export const bold = (s: string): string => `\\fB${roffText(s)}\\fR`;
export const italic = (s: string): string => `\\fI${roffText(s)}\\fR`;

/** Paragraphs from plain text: blank lines part them; lines indented like examples stay as written. */
export function roffParagraphs(text: string): string[] {
  const out: string[] = [];
  for (const block of text.trim().split(/\n\s*\n/)) {
    const lines = block.split("\n");
    const heading = lines.length > 1 && /:$/.test(lines[0]!) && lines.slice(1).every((l) => /^\s/.test(l));
    if (heading) {
      out.push(".PP", roffText(lines[0]!), ".RS 4", ".nf", ...lines.slice(1).map((l) => roffText(l.trim())), ".fi", ".RE");
    } else if (lines.some((l) => /^\s/.test(l))) {
      out.push(".PP", ".nf", ...lines.map(roffText), ".fi");
    } else {
      // Each source line becomes one text line: roff fills them into the page's width.
      out.push(".PP", ...lines.map((l) => roffText(l.trim())));
    }
  }
  return out;
}

export function section(name: string): string {
  return `.SH ${quoteArg(name)}`;
}

export function subsection(name: string): string {
  return `.SS ${quoteArg(name)}`;
}

/** An argument of a request: in double quotes, with the quotes inside escaped. */
export function quoteArg(s: string): string {
  return `"${roffText(s).replace(/"/g, '\\(dq')}"`;
}
