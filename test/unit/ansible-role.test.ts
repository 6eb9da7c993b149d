/**
 * The Ansible role without a host (Debian's ansible-core, which the test requires): the example
 * playbook and the role parse (ansible-playbook --syntax-check, every imported task file), every
 * default is declared in meta/argument_specs.yml with the same default and nothing is declared
 * without one, and the plan module turns `dockwall plan --detailed-exitcode`'s exit codes into
 * Ansible's changed, its summary into the --diff, and an error into a failure. The role on a real
 * host over SSH is the lab's (test/lab/ansible.test.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { ProcessRunner } from "../../src/exec/runner.js";

const runner = new ProcessRunner();
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const ANSIBLE = path.join(REPO, "deploy/ansible");
const ROLE = path.join(ANSIBLE, "roles/dockwall");
// Debian's ansible-core is installed for the system's Python.
const PYTHON = "/usr/bin/python3";

async function withDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-ansible-"));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("the example playbook and the role pass ansible-playbook --syntax-check and list every task", async () => {
  const which = await runner.run("sh", ["-c", "command -v ansible-playbook"]);
  assert.equal(which.code, 0, "ansible-playbook is missing: install Debian's ansible-core package (scripts/setup.sh does)");
  await withDir(async (dir) => {
    await writeFile(path.join(dir, "inventory.ini"), "[docker_hosts]\nhost1\n");
    const env = { ANSIBLE_ROLES_PATH: path.join(ANSIBLE, "roles"), ANSIBLE_HOME: path.join(dir, "home"), ANSIBLE_LOCAL_TEMP: path.join(dir, "tmp") };
    const args = ["-i", path.join(dir, "inventory.ini"), path.join(ANSIBLE, "playbook.yml")];
    const syntax = await runner.run("ansible-playbook", ["--syntax-check", ...args], { env });
    assert.equal(syntax.code, 0, `${syntax.stdout}${syntax.stderr}`);
    // --list-tasks reads the imported task files too: a broken one fails here.
    const tasks = await runner.run("ansible-playbook", ["--list-tasks", ...args], { env });
    assert.equal(tasks.code, 0, `${tasks.stdout}${tasks.stderr}`);
    for (const name of ["Copy dockwall from the controller", "Install the npm package", "Stage the policy from role variables", "Plan the policy against the kernel", "Write the unit"]) {
      assert.match(tasks.stdout, new RegExp(`dockwall : ${name}\\b`), tasks.stdout);
    }
  });
});

test("every role default is declared in meta/argument_specs.yml, with the same default, and every declared option has a default", async () => {
  const defaults = parse(await readFile(path.join(ROLE, "defaults/main.yml"), "utf8")) as Record<string, unknown>;
  const specs = parse(await readFile(path.join(ROLE, "meta/argument_specs.yml"), "utf8")) as {
    argument_specs: { main: { options: Record<string, { default?: unknown; type: string }> } };
  };
  const options = specs.argument_specs.main.options;
  assert.deepEqual(Object.keys(options).sort(), Object.keys(defaults).sort());
  for (const [name, option] of Object.entries(options)) {
    const value = defaults[name];
    // A default computed from other variables (a Jinja expression) is described, not repeated.
    if (typeof value === "string" && value.includes("{{")) {
      assert.equal(option.default, undefined, `${name}: a computed default is not given in the spec`);
      continue;
    }
    assert.deepEqual(option.default, value, `${name}: the spec's default is the default's`);
  }
});

/** The module as Ansible runs it, against a stand-in dockwall that prints `stdout` and exits `code`. */
async function planModule(dir: string, stdout: string, code: number, stderr = ""): Promise<{ exit: number; result: Record<string, unknown>; argv: string }> {
  const fake = path.join(dir, "dockwall");
  const argvFile = path.join(dir, "argv");
  await writeFile(fake, `#!/bin/sh\necho "$@" > ${argvFile}\ncat <<'EOF'\n${stdout}\nEOF\nprintf '%s' '${stderr}' >&2\nexit ${code}\n`);
  await chmod(fake, 0o755);
  const args = path.join(dir, "args.json");
  await writeFile(args, JSON.stringify({ ANSIBLE_MODULE_ARGS: { executable: fake, policy: "/etc/dockwall/dockwall.yaml.candidate", state_dir: "/var/lib/dockwall", _ansible_diff: true, _ansible_check_mode: true } }));
  const r = await runner.run(PYTHON, [path.join(ROLE, "library/dockwall_plan.py"), args]);
  const result = JSON.parse(r.stdout) as Record<string, unknown>;
  return { exit: r.code, result, argv: (await readFile(argvFile, "utf8")).trim() };
}

const PLAN = (changed: boolean, texts: string[]) => JSON.stringify({ format: 1, changed, summary: texts.map((text) => ({ text })), diff: { chains: [], jumps: [], sets: [] } });

test("the plan module: exit 2 is changed, with plan's summary as the diff; exit 0 is unchanged, without one", async () => {
  await withDir(async (dir) => {
    const changes = await planModule(dir, PLAN(true, ["opens 5432 (db:5432/tcp) to 198.51.100.7"]), 2, "dockwall: warning: container web is not running");
    assert.equal(changes.exit, 0, JSON.stringify(changes.result));
    assert.equal(changes.argv, "--state-dir /var/lib/dockwall plan --json --detailed-exitcode -c /etc/dockwall/dockwall.yaml.candidate");
    assert.equal(changes.result.changed, true);
    // "rc" in a result would make Ansible call it failed whatever `failed` says.
    assert.equal(changes.result.rc, undefined);
    assert.equal(changes.result.failed, undefined);
    assert.deepEqual(changes.result.diff, { before_header: "the kernel now", after_header: "/etc/dockwall/dockwall.yaml.candidate", prepared: "opens 5432 (db:5432/tcp) to 198.51.100.7\n" });
    assert.deepEqual(changes.result.warnings, ["dockwall: warning: container web is not running"]);

    const none = await planModule(dir, PLAN(false, []), 0);
    assert.equal(none.result.changed, false);
    assert.equal(none.result.diff, undefined);
    assert.equal(none.result.failed, undefined);
  });
});

test("the plan module fails with dockwall's message on exit 1, and on output that is not a plan", async () => {
  await withDir(async (dir) => {
    const failed = await planModule(dir, "", 1, "dockwall.yaml:3:5: unknown key prot");
    assert.equal(failed.exit, 1);
    assert.equal(failed.result.failed, true);
    assert.match(String(failed.result.msg), /dockwall plan failed \(exit 1\): dockwall\.yaml:3:5: unknown key prot/);

    const garbled = await planModule(dir, "no changes: the kernel already holds this policy", 0);
    assert.equal(garbled.result.failed, true);
    assert.match(String(garbled.result.msg), /printed no plan this module can read/);
  });
});
