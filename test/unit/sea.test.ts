/**
 * dockwall as a single executable (scripts/build-sea.mjs): it must be the same program as
 * `node dist/dockwall.cjs`, word for word and exit code for exit code, and where it starts itself
 * again (the systemd unit) it must run itself, not node with itself as a script.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ProcessRunner } from "../../src/exec/runner.js";
import { BUNDLE, SEA_NAME, seaExecutable } from "./sea-executable.js";

const runner = new ProcessRunner();
const GOOD = "host:\n  - port: 22\n  - port: 443\n";
// Two errors on two lines: check reports both, with their places.
const BAD = "host:\n  - port: 99999\n  - port: 22\n    from: [nosuchgroup]\n";

async function withPolicies(body: (dir: string, exe: string) => Promise<void>): Promise<void> {
  const exe = await seaExecutable();
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-sea-"));
  try {
    await writeFile(path.join(dir, "good.yaml"), GOOD);
    await writeFile(path.join(dir, "bad.yaml"), BAD);
    await body(dir, exe);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("the single executable answers every command line exactly as node dist/dockwall.cjs does", { timeout: 120_000 }, async () => {
  await withPolicies(async (dir, exe) => {
    const lines = [
      ["--version"],
      ["--help"],
      ["help", "apply"],
      ["check", "--help"],
      ["man", "dockwall"],
      ["man", "dockwall.yaml"],
      ["completion", "bash"],
      ["completion", "zsh"],
      ["completion", "fish"],
      ["check", "-c", path.join(dir, "good.yaml")],
      ["check", "-c", path.join(dir, "bad.yaml")],
      ["check", "-c", path.join(dir, "missing.yaml")],
      ["no-such-command"],
      ["apply", "--no-such-option"],
    ];
    // The same environment for both: no Docker, a state folder of the test's own.
    const env = { DOCKWALL_STATE_DIR: path.join(dir, "state"), DOCKER_HOST: `unix://${path.join(dir, "no-docker.sock")}` };
    for (const args of lines) {
      const viaNode = await runner.run(process.execPath, [BUNDLE, ...args], { env });
      const single = await runner.run(exe, args, { env });
      assert.deepEqual(single, viaNode, `dockwall ${args.join(" ")}`);
    }
  });
});

test("the single executable: --version, and check's verdicts with FILE:LINE:COL and no stack trace", { timeout: 120_000 }, async () => {
  await withPolicies(async (dir, exe) => {
    const version = await runner.run(exe, ["--version"]);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);

    const good = await runner.run(exe, ["check", "-c", path.join(dir, "good.yaml")]);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /good\.yaml: ok \(0 groups with 0 members, 2 host and 0 container entries\)/);

    const bad = await runner.run(exe, ["check", "-c", path.join(dir, "bad.yaml")]);
    assert.equal(bad.code, 1);
    const file = path.join(dir, "bad.yaml");
    assert.deepEqual(bad.stderr.trimEnd().split("\n"), [
      `${file}:2:11: port 99999 is outside 1-65535`,
      `${file}:4:12: unknown group "nosuchgroup"`,
      "dockwall: 2 errors in the policy; nothing was applied",
    ]);
    assert.doesNotMatch(bad.stdout + bad.stderr, /\n\s+at /);
  });
});

test("install from the single executable, called by its name on PATH: the unit runs it itself, node's flags in NODE_OPTIONS", { timeout: 120_000 }, async () => {
  await withPolicies(async (dir, exe) => {
    const policy = path.join(dir, "good.yaml");
    // As a host runs it: the bare name found on PATH (process.argv[1] is then "dockwall-linux-x64",
    // no file here: the unit must still name the executable itself).
    const r = await runner.run(SEA_NAME, ["install", "--dry-run", "-c", policy, "--unit-dir", path.join(dir, "units")], {
      env: { PATH: `${path.dirname(exe)}:${process.env.PATH ?? "/usr/bin:/bin"}` },
    });
    assert.equal(r.code, 0, r.stderr);
    const unit = r.stdout.split("\n").filter((l) => l.startsWith("# would write") || !l.startsWith("# would"));
    const exec = unit.filter((l) => l.startsWith("ExecStart="));
    assert.deepEqual(exec, [`ExecStart=${await realpath(exe)} watch -c ${policy}`]);
    assert.deepEqual(unit.filter((l) => l.startsWith("Environment=")), ["Environment=NODE_OPTIONS=--max-semi-space-size=1"]);
    // A host with the single executable needs no node: no warning that there is none.
    assert.doesNotMatch(r.stderr, /no node on systemd's PATH/);
  });
});
