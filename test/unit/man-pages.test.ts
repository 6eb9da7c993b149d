/**
 * The man pages: dockwall(8) holds every command and option --help shows, under that command's
 * heading; both pages render with man and groff without a warning; the build wrote what
 * `dockwall man` prints, and the package ships and links it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ProcessRunner } from "../../src/exec/runner.js";
import { roffParagraphs, roffText } from "../../src/cli-docs/roff.js";
import { POLICY_KEYS, type PolicyKey } from "../../src/policy/reference.js";
import { dockwall, helpInventory } from "./cli-help.js";

const runner = new ProcessRunner();
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const PAGES = [
  { page: "dockwall", file: "man/dockwall.8" },
  { page: "dockwall.yaml", file: "man/dockwall.yaml.5" },
];

async function page(name: string): Promise<string> {
  const r = await dockwall(["man", name]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** The page as man shows it, and what man and groff said while rendering it. */
async function render(roff: string): Promise<{ text: string; warnings: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-man-"));
  try {
    const file = path.join(dir, "page");
    await writeFile(file, roff);
    const env = { MANWIDTH: "200", LC_ALL: "C.UTF-8", MAN_KEEP_FORMATTING: "", PATH: process.env.PATH ?? "" };
    const man = await runner.run("man", ["--warnings=w", "-l", file], { env });
    assert.equal(man.code, 0, man.stderr);
    const groff = await runner.run("groff", ["-man", "-Tutf8", "-ww", "-z", file]);
    assert.equal(groff.code, 0, groff.stderr);
    return { text: man.stdout.replace(/.\x08/g, ""), warnings: man.stderr + groff.stderr };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("dockwall(8): every command --help lists has its section, with every option of that command in it, and the program's options in OPTIONS", async () => {
  const inventory = await helpInventory();
  const { text, warnings } = await render(await page("dockwall"));
  assert.equal(warnings, "", "man and groff render it without a warning");
  const lines = text.split("\n");
  const sectionOf = (heading: RegExp) => {
    const start = lines.findIndex((l) => heading.test(l));
    assert.ok(start >= 0, `${heading} in the page`);
    const end = lines.findIndex((l, i) => i > start && (/^ {3}\S/.test(l) || /^\S/.test(l)));
    return lines.slice(start, end < 0 ? undefined : end).join("\n");
  };
  for (const c of inventory.commands) {
    const body = sectionOf(new RegExp(`^ {3}dockwall ${c}$`));
    for (const o of inventory.options.get(c)!) assert.match(body, new RegExp(`(^|[\\s,])${o}([\\s,]|$)`, "m"), `dockwall ${c}: ${o}`);
  }
  const options = sectionOf(/^OPTIONS$/);
  for (const o of inventory.options.get("")!) assert.match(options, new RegExp(`(^|[\\s,])${o}([\\s,]|$)`, "m"), o);
  assert.match(sectionOf(/^SYNOPSIS$/), /dockwall explain \[options\] source service/);
  assert.match(text, /dockwall apply --confirm 120/, "a command's examples are on the page, with ASCII hyphens to copy");
});

/** Every key of the reference, with its parents: "host", "host port", ... */
function everyKey(keys: readonly PolicyKey[], parents: string[] = []): { path: string[]; key: PolicyKey }[] {
  return keys.flatMap((k) => [{ path: [...parents, k.key], key: k }, ...everyKey(k.keys ?? [], [...parents, k.key])]);
}

test("dockwall.yaml(5): renders without a warning and describes every key of the reference with its default", async () => {
  const { text, warnings } = await render(await page("dockwall.yaml"));
  assert.equal(warnings, "");
  const flat = text.replace(/\s+/g, " ");
  for (const { path: p, key } of everyKey(POLICY_KEYS)) {
    assert.match(text, new RegExp(`^ +${key.key}\\b`, "m"), p.join(" "));
    if (key.default !== undefined) assert.ok(flat.includes(`default: ${key.default}`), `${p.join(" ")}: default ${key.default}`);
  }
  assert.match(text, /^EXAMPLE$/m);
});

test("the build wrote what dockwall man prints, and package.json ships and links both pages", async () => {
  const pkg = JSON.parse(await readFile(path.join(ROOT, "package.json"), "utf8")) as { files: string[]; man: string[] };
  for (const { page: name, file } of PAGES) {
    assert.equal(await readFile(path.join(ROOT, file), "utf8"), await page(name), `${file} is up to date (npm run build)`);
    assert.ok(pkg.man.includes(`./${file}`), `man: ${file}`);
  }
  assert.ok(pkg.files.includes("man"), "files: man");
});

test("roff: text cannot become a request, keeps ASCII - ' ` for copying, and any character renders", async () => {
  assert.equal(roffText(".TH x\n'br"), "\\&.TH x\n\\(aqbr");
  assert.equal(roffText("a\\b --x it's `c`"), "a\\eb \\-\\-x it\\(aqs \\(gac\\(ga");
  assert.equal(roffText("3 × 4 — ok"), "3 \\[u00D7] 4 \\[u2014] ok");
  const { text, warnings } = await render([".TH T 1", ".SH NAME", ...roffParagraphs(".SH not a section\n'also not\nsources × ports — `dockwall --help`")].join("\n"));
  assert.equal(warnings, "");
  assert.match(text, /\.SH not a section 'also not sources × ports — `dockwall --help`/);
});
