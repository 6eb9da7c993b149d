/** `dockwall watch` options and log lines: bad timings are usage errors (exit 1); journald priorities only where stdout is the journal. */
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ProcessRunner } from "../../src/exec/runner.js";
import { formatLogLine, stdoutIsJournal } from "../../src/daemon/log-line.js";

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../dockwall.cjs");
const runner = new ProcessRunner();

for (const [option, value] of [
  ["--check-every", "0"],
  ["--check-every", "-5"],
  ["--check-every", "1e2"],
  ["--check-every", "99999999"],
  ["--debounce", "abc"],
  ["--debounce", "0"],
  ["--debounce", ""],
] as const) {
  test(`watch ${option} "${value}" is a usage error: exit 1 with the option named, before anything runs`, async () => {
    // A policy that does not exist: reaching it would be another error than the one asked about.
    const r = await runner.run(process.execPath, [CLI, "--state-dir", "/nonexistent/dockwall-test", "watch", "-c", "/nonexistent/p.yaml", option, value]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`option '${option} <seconds>' argument '${value}' is invalid\\. expected a positive number of seconds`));
    assert.equal(r.stdout, "", "nothing logged: the daemon did not start");
  });
}

test("log lines carry the journald priority only when stdout is the journal stream (JOURNAL_STREAM matches stdout's device and inode)", () => {
  const stdout = () => ({ dev: 25n, ino: 4711n });
  assert.equal(stdoutIsJournal({ JOURNAL_STREAM: "25:4711" }, stdout), true);
  assert.equal(stdoutIsJournal({ JOURNAL_STREAM: "25:4712" }, stdout), false, "stdout redirected since: a pipe or a file");
  assert.equal(stdoutIsJournal({}, stdout), false);
  assert.equal(stdoutIsJournal({ JOURNAL_STREAM: "garbage" }, stdout), false);
  const at = new Date("2026-12-01T08:00:00.000Z");
  assert.equal(formatLogLine("error", "apply failed", { x: 1 }, at, true), '<3>{"time":"2026-12-01T08:00:00.000Z","level":"error","event":"apply failed","x":1}\n');
  assert.match(formatLogLine("warn", "w", {}, at, true), /^<4>\{/);
  assert.match(formatLogLine("info", "i", {}, at, true), /^<6>\{/);
  assert.equal(formatLogLine("info", "i", {}, at, false), '{"time":"2026-12-01T08:00:00.000Z","level":"info","event":"i"}\n');
});
