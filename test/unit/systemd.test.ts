/**
 * The service unit: ordered before the network and Docker, ready only once rules hold, node found
 * on PATH, sandboxed as systemd-analyze scores it (the real systemd-analyze, which the test
 * requires), paths quoted for systemd; and `install` that changes nothing with --dry-run and calls
 * no systemctl with another --unit-dir.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { installSteps, renderUnit, UNIT_NAME, UNIT_PATH, type UnitOptions } from "../../src/daemon/systemd.js";
import { ProcessRunner } from "../../src/exec/runner.js";
import { COMPLETION_SHELLS, completionPath, listedShells } from "../../src/cli-docs/completion-files.js";

const runner = new ProcessRunner();
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../dockwall.cjs");
const BASE: UnitOptions = { script: "/usr/lib/node_modules/dockwall/dist/dockwall.cjs", policy: "/etc/dockwall/dockwall.yaml" };

const settings = (unit: string, key: string) => unit.split("\n").filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));

async function withDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-unit-"));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("the unit starts before the network and docker.service, as a notify service wanted by Docker", () => {
  const unit = renderUnit(BASE);
  assert.deepEqual(settings(unit, "Before"), ["network-pre.target docker.service shutdown.target"]);
  assert.deepEqual(settings(unit, "Wants"), ["network-pre.target"]);
  // After=network-online.target with Before=network-pre.target would be an ordering cycle.
  assert.deepEqual(settings(unit, "After"), ["local-fs.target"]);
  assert.deepEqual(settings(unit, "DefaultDependencies"), ["no"]);
  assert.deepEqual(settings(unit, "Type"), ["notify"]);
  assert.deepEqual(settings(unit, "NotifyAccess"), ["all"]);
  assert.deepEqual(settings(unit, "SyslogIdentifier"), ["dockwall"]);
  assert.deepEqual(settings(unit, "WantedBy"), ["multi-user.target docker.service"]);
  assert.deepEqual(settings(unit, "StateDirectory"), ["dockwall"]);
});

test("ExecStart finds node on PATH when the service starts (a Node.js upgrade does not break it), with the daemon's node flag", () => {
  const unit = renderUnit(BASE);
  assert.deepEqual(settings(unit, "ExecStart"), ["/usr/bin/env node --max-semi-space-size=1 /usr/lib/node_modules/dockwall/dist/dockwall.cjs watch -c /etc/dockwall/dockwall.yaml"]);
  assert.doesNotMatch(unit, new RegExp(process.execPath.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
});

test("paths with spaces, quotes, % or $ are written the way systemd reads them back", () => {
  const unit = renderUnit({ script: '/srv/dock"wall/100%/dockwall.cjs', policy: "/etc/dockwall/my $policy.yaml", stateDir: "/srv/dock wall", metrics: "[::1]:9273" });
  assert.deepEqual(settings(unit, "ExecStart"), [
    '/usr/bin/env node --max-semi-space-size=1 "/srv/dock\\"wall/100%%/dockwall.cjs" --state-dir "/srv/dock wall" watch -c "/etc/dockwall/my $$policy.yaml" --metrics "[::1]:9273"',
  ]);
  assert.ok(settings(unit, "ReadWritePaths").includes("/srv/dock\\x20wall"));
  assert.deepEqual(settings(unit, "StateDirectory"), []);
});

/** The unit as systemd-analyze sees it: its exposure score, and what `verify` says. */
async function analyze(unit: string): Promise<{ exposure: number; verify: string }> {
  const which = await runner.run("sh", ["-c", "command -v systemd-analyze"]);
  assert.equal(which.code, 0, "systemd-analyze is missing: install Debian's systemd package (scripts/setup.sh does)");
  return withDir(async (dir) => {
    const file = path.join(dir, UNIT_NAME);
    await writeFile(file, unit);
    const security = await runner.run("systemd-analyze", ["security", "--offline=true", "--no-pager", file]);
    const m = /Overall exposure level for dockwall\.service: (\d+\.\d+)/.exec(security.stdout + security.stderr);
    assert.ok(m, `no exposure level in:\n${security.stdout}${security.stderr}`);
    const verify = await runner.run("systemd-analyze", ["verify", "--man=no", file]);
    return { exposure: Number(m[1]), verify: `${verify.code} ${verify.stdout}${verify.stderr}`.trim() };
  });
}

for (const [what, options] of [
  ["the default unit", BASE],
  ["a unit with another state directory and metrics", { ...BASE, stateDir: "/srv/dockwall-state", metrics: "127.0.0.1:9273" }],
  ["a unit whose script lives under /root", { ...BASE, script: "/root/.npm-global/lib/node_modules/dockwall/dist/dockwall.cjs", underHome: true }],
] as const) {
  test(`${what} is sandboxed: systemd-analyze security exposure at most 4.0 ("OK"), and verify finds nothing`, async () => {
    const { exposure, verify } = await analyze(renderUnit(options));
    assert.ok(exposure <= 4.0, `exposure ${exposure}`);
    assert.equal(verify, "0");
  });
}

test("install steps: systemctl only for systemd's own unit directory; a custom state directory is created first", () => {
  const real = installSteps({ ...BASE, stateDir: "/srv/dw", unitDir: "/etc/systemd/system/", start: true });
  assert.equal(real.unitFile, UNIT_PATH);
  assert.deepEqual(real.directories, ["/srv/dw"]);
  assert.deepEqual(real.systemctl, [["daemon-reload"], ["enable", UNIT_NAME], ["start", UNIT_NAME]]);
  const packaged = installSteps({ ...BASE, stateDir: "/srv/dw", unitDir: "/tmp/pkg/lib/systemd/system", start: true });
  assert.equal(packaged.unitFile, `/tmp/pkg/lib/systemd/system/${UNIT_NAME}`);
  assert.deepEqual(packaged.directories, []);
  assert.deepEqual(packaged.systemctl, []);
});

/** `dockwall install ARGS` with a systemctl first on PATH that only records its calls. */
async function install(dir: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string; systemctl: string[] }> {
  const bin = path.join(dir, "bin");
  const calls = path.join(dir, "systemctl-calls");
  await runner.run("mkdir", ["-p", bin]);
  await writeFile(path.join(bin, "systemctl"), `#!/bin/sh\necho "$*" >> ${calls}\n`, { mode: 0o755 });
  const policy = path.join(dir, "dockwall.yaml");
  await writeFile(policy, "host:\n  - port: 22\n");
  const r = await runner.run(process.execPath, [CLI, "install", "-c", policy, ...args], { env: { PATH: `${bin}:${process.env.PATH ?? ""}` } });
  const systemctl = existsSync(calls) ? (await readFile(calls, "utf8")).trim().split("\n") : [];
  return { ...r, systemctl };
}

test("install --dry-run prints the unit and the systemctl commands, and changes nothing", async () => {
  await withDir(async (dir) => {
    const unitDir = path.join(dir, "units");
    // systemd's own directory: the commands are shown, not run; nothing is written there either.
    const r = await install(dir, ["--dry-run"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^# would write ${UNIT_PATH}:$`, "m"));
    assert.match(r.stdout, /^ExecStart=\/usr\/bin\/env node /m);
    assert.match(r.stdout, /^# would run: systemctl daemon-reload$/m);
    assert.match(r.stdout, /^# would run: systemctl enable dockwall\.service$/m);
    assert.match(r.stdout, /^# would run: systemctl start dockwall\.service$/m);
    assert.deepEqual(r.systemctl, []);
    const other = await install(dir, ["--dry-run", "--unit-dir", unitDir]);
    assert.equal(other.code, 0, other.stderr);
    assert.match(other.stdout, /would run no systemctl command/);
    assert.equal(existsSync(unitDir), false);
    assert.deepEqual(other.systemctl, []);
  });
});

test("install --unit-dir elsewhere writes the unit and calls no systemctl", async () => {
  await withDir(async (dir) => {
    const unitDir = path.join(dir, "units");
    const r = await install(dir, ["--unit-dir", unitDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readdir(unitDir), [UNIT_NAME]);
    assert.match(await readFile(path.join(unitDir, UNIT_NAME), "utf8"), /^Type=notify$/m);
    assert.deepEqual(r.systemctl, []);
  });
});

test("install --completion --dry-run names the completion file of each shell in /etc/shells and writes none", async () => {
  await withDir(async (dir) => {
    const before = await Promise.all(COMPLETION_SHELLS.map((s) => stat(completionPath(s, "dockwall")).then((st) => st.mtimeMs, () => "absent")));
    const r = await install(dir, ["--dry-run", "--completion", "--unit-dir", path.join(dir, "units")]);
    assert.equal(r.code, 0, r.stderr);
    const shells = listedShells(await readFile("/etc/shells", "utf8"));
    assert.ok(shells.includes("bash"), "bash is in /etc/shells");
    const named = [...r.stdout.matchAll(/^# would write (\S+) \((\w+) completion\)$/gm)].map((m) => [m[2], m[1]]);
    assert.deepEqual(named, shells.map((s) => [s, completionPath(s, "dockwall")]));
    const after = await Promise.all(COMPLETION_SHELLS.map((s) => stat(completionPath(s, "dockwall")).then((st) => st.mtimeMs, () => "absent")));
    assert.deepEqual(after, before, "no completion file written or changed");
  });
});

test("install --completion under --completion-root writes every shell's script as dockwall completion prints it; uninstall --completion removes them", async () => {
  await withDir(async (dir) => {
    const root = path.join(dir, "stage");
    const r = await install(dir, ["--completion", "--completion-root", root, "--unit-dir", path.join(dir, "units")]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.systemctl, []);
    for (const shell of COMPLETION_SHELLS) {
      const printed = await runner.run(process.execPath, [CLI, "completion", shell]);
      assert.equal(await readFile(path.join(root, completionPath(shell, "dockwall")), "utf8"), printed.stdout, shell);
    }
    const un = await runner.run(process.execPath, [CLI, "uninstall", "--completion", "--completion-root", root, "--unit-dir", path.join(dir, "units")]);
    assert.equal(un.code, 0, un.stderr);
    for (const shell of COMPLETION_SHELLS) assert.equal(existsSync(path.join(root, completionPath(shell, "dockwall"))), false, shell);
    assert.equal(existsSync(path.join(dir, "units", UNIT_NAME)), false);
  });
});

test("/etc/shells: the shells by the last part of each path, comments and blank lines left out", () => {
  assert.deepEqual(listedShells("# /etc/shells\n/bin/sh\n/usr/bin/fish\n\n/bin/bash # login\n/usr/local/bin/zsh5\n"), ["bash", "fish"]);
  assert.deepEqual(listedShells(""), []);
});
