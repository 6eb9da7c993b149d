/**
 * The Ansible role (deploy/ansible/roles/dockwall) against a lab host, with Debian's ansible-core:
 * ansible-playbook runs in the admin client's namespace and reaches the Docker host over real SSH,
 * to an sshd of this test's own in the host's namespace (its own config, host key, authorized keys
 * and pid file in the lab's folder; never the machine's SSH service). Every path the role writes is
 * pointed into the lab's folder too. So the confirm step's reconnect, and the lock-out, are real
 * packets through dockwall's rules.
 *
 * One lab, steps in order: first run (the stranger closed out of the database), a second run that
 * changes nothing, a check-mode run with --diff after a policy change (changed, plan's summary shown,
 * the kernel untouched), a lock-out policy refused by dockwall's guard, and one forced past the guard
 * that dockwall rolls back by itself at the end of its confirm window.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { HOST_ADDR, Lab, REPO_DIR, sleep, type Family } from "./lab.js";
import { LAB_TAG } from "./leftovers.js";
import { seaExecutable } from "../unit/sea-executable.js";
import { ProcessRunner, type CommandResult } from "../../src/exec/runner.js";

const run = new ProcessRunner();
const ROLES = path.join(REPO_DIR, "deploy/ansible/roles");
const PLAYBOOK = path.join(REPO_DIR, "deploy/ansible/playbook.yml");
// Short, to keep the test short, and still room for a new SSH connection and one command.
const CONFIRM_SECONDS = 10;
// The lock-out run only waits the window out: longer than the reconnect that fails (ansible.cfg timeout 3).
const LOCK_OUT_CONFIRM_SECONDS = 6;

/** The policy the role writes, as role variables: SSH for the admin, the database for the trusted client. */
function policy(sshFrom: string, dbFrom: string[]): Record<string, unknown> {
  return {
    host: [{ port: 22, from: [sshFrom] }],
    containers: [{ container: "db", port: 5432, from: dbFrom }],
  };
}

interface Recap {
  ok: number;
  changed: number;
  unreachable: number;
  failed: number;
}

function recapOf(stdout: string): Recap {
  const line = new RegExp(`^${HOST_ADDR.ipv4.replace(/\./g, "\\.")}\\s+:\\s+(.*)$`, "m").exec(stdout)?.[1];
  assert.ok(line, `no PLAY RECAP line for the host in:\n${stdout}`);
  const field = (name: string) => Number(new RegExp(`${name}=(\\d+)`).exec(line)?.[1] ?? NaN);
  return { ok: field("ok"), changed: field("changed"), unreachable: field("unreachable"), failed: field("failed") };
}

/** The host's rules (both families) and sets, without the packet counters traffic moves. */
async function kernelOf(lab: Lab): Promise<string> {
  const families: Family[] = ["ipv4", "ipv6"];
  const rules = await Promise.all(families.map((f) => lab.hostIptablesSave(f)));
  const sets = await lab.exec(lab.hostNs, "ipset", ["save"]);
  return [...rules, sets.stdout]
    .join("\n")
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .join("\n")
    .replace(/\[\d+:\d+\]/g, "[-]");
}

describe("the Ansible role on Docker 20.10, from the admin's controller over SSH", () => {
  let lab: Lab;
  let work: string;
  let madeRunSshd = false;
  let executable: string;
  const vars = (extra: Record<string, unknown>) => ({
    dockwall_install_method: "binary",
    // The single executable (scripts/build-sea.mjs), copied from the controller: what a host without Node.js gets.
    dockwall_binary_src: executable,
    dockwall_bin_dir: path.join(work, "usr-local-bin"),
    dockwall_policy_path: path.join(work, "etc-dockwall/dockwall.yaml"),
    dockwall_state_dir: lab.stateDir,
    dockwall_unit_dir: path.join(work, "etc-systemd-system"),
    // This machine's packages are the machine's; the apt module would also install python3-apt.
    dockwall_manage_packages: false,
    dockwall_confirm_seconds: CONFIRM_SECONDS,
    // The lab's dockerd; the tag lets the lab find and end a confirm keeper that outlived a failed test.
    dockwall_environment: { DOCKER_HOST: `unix://${lab.socket}`, [LAB_TAG]: lab.id },
    ...extra,
  });

  /** ansible-playbook from the admin's namespace; its SSH control masters are closed afterwards. */
  const playbook = async (extra: Record<string, unknown>, flags: string[] = []): Promise<CommandResult> => {
    const varsFile = path.join(work, "vars.json");
    await writeFile(varsFile, JSON.stringify(vars(extra)));
    const r = await run.run("ip", ["netns", "exec", lab.clients.admin.ns, "ansible-playbook", "-i", path.join(work, "inventory.ini"), "-e", `@${varsFile}`, ...flags, PLAYBOOK], {
      env: { ANSIBLE_CONFIG: path.join(work, "ansible.cfg"), ANSIBLE_HOME: path.join(work, "ansible-home"), ANSIBLE_FORCE_COLOR: "0", [LAB_TAG]: lab.id },
    });
    const controlDir = path.join(work, "cp");
    for (const socket of existsSync(controlDir) ? await readdir(controlDir) : []) {
      await run.run("ip", ["netns", "exec", lab.clients.admin.ns, "ssh", "-F", "/dev/null", "-o", `ControlPath=${path.join(controlDir, socket)}`, "-O", "exit", HOST_ADDR.ipv4]);
    }
    return r;
  };
  const show = (r: CommandResult) => `exit ${r.code}\n${r.stdout}\n${r.stderr}`;

  before(async () => {
    executable = await seaExecutable();
    lab = await Lab.create({ ipv6Mode: "proxy", ipForwardBeforeDocker: false, withServices: false });
    work = lab.workDir;
    await lab.startContainer({ name: "db", args: ["-p", "5432:5432"], command: lab.servicesCommand([[5432, "db", "tcp"]]) });
    const ssh = path.join(work, "ssh");
    await mkdir(ssh, { mode: 0o700 });
    for (const key of ["host_key", "client_key"]) {
      const r = await run.run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `dockwall-lab-${key}`, "-f", path.join(ssh, key)]);
      assert.equal(r.code, 0, r.stderr);
    }
    await writeFile(path.join(ssh, "authorized_keys"), await readFile(path.join(ssh, "client_key.pub")), { mode: 0o600 });
    await writeFile(
      path.join(ssh, "sshd_config"),
      [
        "Port 22",
        `HostKey ${path.join(ssh, "host_key")}`,
        `AuthorizedKeysFile ${path.join(ssh, "authorized_keys")}`,
        `PidFile ${path.join(ssh, "sshd.pid")}`,
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        // The lab folder is made by mkdtemp under /tmp, whose modes StrictModes would refuse.
        "StrictModes no",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
        "",
      ].join("\n"),
    );
    // sshd's privilege separation directory is compiled in; the package's service would make it.
    if (!existsSync("/run/sshd")) {
      await mkdir("/run/sshd", { mode: 0o755 });
      madeRunSshd = true;
    }
    lab.spawnIn(lab.hostNs, "/usr/sbin/sshd", ["-D", "-f", path.join(ssh, "sshd_config"), "-E", path.join(ssh, "sshd.log")]);
    await writeFile(path.join(work, "inventory.ini"), `[docker_hosts]\n${HOST_ADDR.ipv4} ansible_user=root ansible_become=false ansible_ssh_private_key_file=${path.join(ssh, "client_key")}\n`);
    await writeFile(
      path.join(work, "ansible.cfg"),
      [
        "[defaults]",
        `roles_path = ${ROLES}`,
        `local_tmp = ${path.join(work, "ansible-local")}`,
        `remote_tmp = ${path.join(work, "ansible-remote")}`,
        "interpreter_python = /usr/bin/python3",
        "host_key_checking = False",
        "retry_files_enabled = False",
        // A locked-out reconnect fails after this long.
        "timeout = 3",
        "[ssh_connection]",
        `control_path_dir = ${path.join(work, "cp")}`,
        `ssh_args = -F /dev/null -o ControlMaster=auto -o ControlPersist=30s -o UserKnownHostsFile=${path.join(ssh, "known_hosts")}`,
        "pipelining = True",
        "",
      ].join("\n"),
    );
    // Before dockwall: the admin reaches sshd, the stranger the database (waited for: both come up a moment after start).
    for (const [client, port] of [[lab.clients.admin, 22], [lab.clients.stranger, 5432]] as const) {
      let up = false;
      for (let i = 0; i < 40 && !up; i++) {
        up = await lab.probe(client, "ipv4", "tcp", port);
        if (!up) await sleep(250);
      }
      assert.ok(up, `${client.name} -> ${port} before dockwall`);
    }
  });
  after(async () => {
    await lab?.destroy();
    if (madeRunSshd) await rm("/run/sshd", { recursive: true, force: true });
  });

  it("first run, second run, check and diff, a lock-out refused and one rolled back by itself", async () => {
    const { admin, trusted, stranger } = lab.clients;
    const v1 = policy(admin.ipv4, [trusted.ipv4]);

    // First run: installed, applied with a confirm window, confirmed over a new connection.
    const first = await playbook({ dockwall_policy: v1 });
    assert.equal(first.code, 0, show(first));
    assert.ok(recapOf(first.stdout).changed > 0, show(first));
    const [strangerDb, trustedDb, adminSsh] = await lab.probeMany([
      { client: stranger, family: "ipv4", proto: "tcp", port: 5432 },
      { client: trusted, family: "ipv4", proto: "tcp", port: 5432 },
      { client: admin, family: "ipv4", proto: "tcp", port: 22 },
    ]);
    assert.deepEqual({ strangerDb, trustedDb, adminSsh }, { strangerDb: false, trustedDb: true, adminSsh: true });
    const status = await lab.dockwall(["status", "--json"]);
    assert.equal(status.code, 0, show(status));
    assert.equal((JSON.parse(status.stdout) as { awaitingConfirm?: unknown }).awaitingConfirm, undefined, "confirmed, no window left open");
    const unit = await readFile(path.join(work, "etc-systemd-system/dockwall.service"), "utf8");
    assert.match(unit, new RegExp(`^ExecStart=.* watch -c ${path.join(work, "etc-dockwall/dockwall.yaml")}$`, "m"));
    const applied = await kernelOf(lab);

    // Second run: nothing to do.
    const second = await playbook({ dockwall_policy: v1 });
    assert.equal(second.code, 0, show(second));
    assert.equal(recapOf(second.stdout).changed, 0, show(second));

    // Check mode after a policy change: changed, plan's summary as the diff, the kernel and the policy file untouched.
    const livePolicy = await readFile(path.join(work, "etc-dockwall/dockwall.yaml"), "utf8");
    const checked = await playbook({ dockwall_policy: policy(admin.ipv4, [trusted.ipv4, stranger.ipv4]) }, ["--check", "--diff"]);
    assert.equal(checked.code, 0, show(checked));
    assert.ok(recapOf(checked.stdout).changed > 0, show(checked));
    // plan's summary line, as the diff of the plan task.
    assert.match(checked.stdout, /^opens 5432 \(db:5432\/tcp\) to 198\.18\.0\.20 \(open to 198\.18\.0\.10 already\)$/m, show(checked));
    assert.equal(await kernelOf(lab), applied, "check mode changed the kernel");
    assert.equal(await readFile(path.join(work, "etc-dockwall/dockwall.yaml"), "utf8"), livePolicy, "check mode changed the policy file");

    // A policy that closes SSH to the admin: dockwall's own guard refuses it from this very session.
    const lockOut = policy(trusted.ipv4, [trusted.ipv4]);
    const refused = await playbook({ dockwall_policy: lockOut });
    assert.notEqual(refused.code, 0, show(refused));
    assert.match(refused.stdout, /refusing to apply: the SSH session this runs from/, show(refused));
    assert.equal(await kernelOf(lab), applied, "the refused policy changed the kernel");

    // Forced past the guard: applied, the reconnect is dropped, and dockwall rolls back by itself.
    const forced = await playbook({ dockwall_policy: lockOut, dockwall_apply_force: true, dockwall_confirm_seconds: LOCK_OUT_CONFIRM_SECONDS });
    assert.notEqual(forced.code, 0, show(forced));
    assert.equal(recapOf(forced.stdout).failed, 1, show(forced));
    assert.match(forced.stdout, /UNREACHABLE/, `the reconnect was not locked out:\n${show(forced)}`);
    assert.match(forced.stdout, /dockwall rolled back to the previous rules by itself/, show(forced));
    assert.equal(await kernelOf(lab), applied, "not rolled back to the previous rules");
    assert.equal(await readFile(path.join(work, "etc-dockwall/dockwall.yaml"), "utf8"), livePolicy, "the lock-out policy was promoted");
    const [adminAfter, strangerAfter] = await lab.probeMany([
      { client: admin, family: "ipv4", proto: "tcp", port: 22 },
      { client: stranger, family: "ipv4", proto: "tcp", port: 5432 },
    ]);
    assert.deepEqual({ adminAfter, strangerAfter }, { adminAfter: true, strangerAfter: false });
  });
});
