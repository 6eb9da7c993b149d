/**
 * Golden files for compile + render: each case is a policy and the Docker/host facts; the expected
 * output is the exact restore payload for an empty kernel, per family, and the set members (or, for a
 * policy the host cannot take, the errors).
 * UPDATE_GOLDEN=1 rewrites them (then read the diff before committing).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { loadPolicyText } from "../../src/policy/load.js";
import { compile } from "../../src/compile/index.js";
import { RefusedOnThisHost } from "../../src/compile/interfaces.js";
import { formatPolicyError } from "../../src/policy/errors.js";
import type { Ruleset } from "../../src/ruleset/types.js";
import { render } from "../../src/backends/rendered.js";
import { restorePayload } from "../../src/backends/iptables/diff.js";
import type { Facts } from "../../src/facts/types.js";

const root = path.resolve("test/golden");

export async function goldenText(dir: string): Promise<string> {
  const file = path.join(dir, "policy.yaml");
  const loaded = await loadPolicyText(readFileSync(file, "utf8"), file, (p) => readFile(p, "utf8"));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const facts = JSON.parse(readFileSync(path.join(dir, "facts.json"), "utf8")) as Facts;
  const rel = (w: string) => w.split(root + path.sep).join("");
  let ruleset: Ruleset;
  try {
    ruleset = compile(loaded.policy, facts);
  } catch (e) {
    // A policy this host cannot take (an interface it lacks): the errors are the whole output.
    if (!(e instanceof RefusedOnThisHost)) throw e;
    return ["# errors", ...e.errors.map((x) => rel(formatPolicyError(x))), ""].join("\n");
  }
  const desired = render(ruleset);
  return [
    "# warnings",
    ...ruleset.warnings.map(rel),
    "# ipv4",
    restorePayload(desired.ipv4, new Map())!.trimEnd(),
    "# ipv6",
    restorePayload(desired.ipv6, new Map())!.trimEnd(),
    "# sets",
    ...desired.sets.map((s) => `${s.name} ${s.family}: ${s.members.join(" ")}`),
    "# entries (the ids in the rules' comments, and where each was written)",
    ...(desired.entries ?? []).map((e) => `${e.id} ${rel(e.file)}:${e.line}:${e.col}`),
    "",
  ].join("\n");
}

for (const name of readdirSync(root).sort()) {
  test(`golden: ${name}`, async () => {
    const dir = path.join(root, name);
    const actual = await goldenText(dir);
    const expectedFile = path.join(dir, "expected.txt");
    if (process.env.UPDATE_GOLDEN || !existsSync(expectedFile)) {
      writeFileSync(expectedFile, actual);
      if (!process.env.UPDATE_GOLDEN) assert.fail(`wrote missing ${expectedFile}: review it and run again`);
    }
    assert.equal(actual, readFileSync(expectedFile, "utf8"));
  });
}

test("compile is deterministic: the same inputs give byte-identical output", async () => {
  const dir = path.join(root, "full");
  assert.equal(await goldenText(dir), await goldenText(dir));
});
