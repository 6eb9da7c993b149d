/**
 * docs/REFERENCE.md: the committed file is what `npm run build:docs` writes from today's
 * definitions (so it cannot drift from --help or the policy keys), it holds every command and option
 * --help shows and every policy key, and its text cannot break its own Markdown.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { anchor, text } from "../../src/cli-docs/markdown.js";
import { POLICY_KEYS, type PolicyKey } from "../../src/policy/reference.js";
import { dockwall, helpInventory } from "./cli-help.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const HAND_WRITTEN = "src/cli-docs/reference-outputs.md";

async function generated(): Promise<string> {
  const r = await dockwall(["reference", path.join(ROOT, HAND_WRITTEN)]);
  assert.equal(r.code, 0, r.stderr);
  // The header names the hand-written part as given: the build gives it relative to the checkout.
  return r.stdout.replaceAll(path.join(ROOT, HAND_WRITTEN), HAND_WRITTEN);
}

test("docs/REFERENCE.md is what npm run build:docs writes today (edit the definitions or the hand-written part, then run it)", async () => {
  const committed = await readFile(path.join(ROOT, "docs/REFERENCE.md"), "utf8");
  assert.equal(committed, await generated(), "docs/REFERENCE.md is stale: run `npm run build:docs` and commit it");
});

test("docs/REFERENCE.md: every command --help lists has its section with every one of its options, and the generator's own command is not one of them", async () => {
  const doc = await generated();
  const inventory = await helpInventory();
  assert.ok(!inventory.commands.includes("reference"), "the build's command is hidden from --help");
  assert.doesNotMatch(doc, /^### dockwall reference$/m);
  const sections = doc.split(/^(?=### )/m);
  for (const c of inventory.commands) {
    const body = sections.find((s) => s.startsWith(`### dockwall ${c}\n`));
    assert.ok(body, `a section for dockwall ${c}`);
    for (const o of inventory.options.get(c)!) assert.match(body, new RegExp(`\`[^\`]*(^|[\\s,\`])${o}([\\s,\`]|$)`, "m"), `dockwall ${c}: ${o}`);
    assert.match(doc, new RegExp(`\\]\\(#${anchor(`dockwall ${c}`)}\\)`), `the contents link to dockwall ${c}`);
  }
  const all = (keys: readonly PolicyKey[]): PolicyKey[] => keys.flatMap((k) => [k, ...all(k.keys ?? [])]);
  for (const k of POLICY_KEYS) assert.match(doc, new RegExp(`^### ${k.key}$`, "m"), `a section for the policy key ${k.key}`);
  for (const k of all(POLICY_KEYS)) assert.ok(doc.includes(`\`${k.key}\``), `the policy key ${k.key}`);
});

test("docs/REFERENCE.md includes the hand-written part whole: exit codes and JSON output", async () => {
  const doc = await generated();
  const handWritten = (await readFile(path.join(ROOT, HAND_WRITTEN), "utf8")).trim();
  assert.ok(doc.endsWith(`${handWritten}\n`));
  assert.match(doc, /^- \[Exit codes\]\(#exit-codes\)$/m);
  assert.match(doc, /^- \[JSON output\]\(#json-output\)$/m);
});

test("Markdown text: table bars, tags and emphasis are escaped, code spans kept (but for their bars); anchors as GitHub makes them", () => {
  assert.equal(text("a | b"), "a \\| b");
  assert.equal(text("-c <file>"), "-c &lt;file&gt;");
  assert.equal(text("1-24 letters, _ or *"), "1-24 letters, \\_ or \\*");
  assert.equal(text("run `dockwall status --json` now"), "run `dockwall status --json` now");
  assert.equal(text("`a | b`"), "`a \\| b`", "a bar ends a table cell even in a code span");
  assert.equal(text("tcp://host[:port]"), "tcp://host\\[:port\\]");
  assert.equal(anchor("dockwall explain"), "dockwall-explain");
  assert.equal(anchor("status --json"), "status---json");
  assert.equal(anchor("watch's log"), "watchs-log");
});
