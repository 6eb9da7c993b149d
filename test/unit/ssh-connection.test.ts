/** sshConnectionValue: this process's SSH_CONNECTION, or the nearest parent's under sudo; empty says "not from SSH". */
import { test } from "node:test";
import assert from "node:assert/strict";
import { sshConnectionValue } from "../../src/facts/ssh-connection.js";

const tree: Record<string, string> = {
  "/proc/40/environ": "HOME=/root\0",
  "/proc/40/status": "Name:\tsudo\nPPid:\t30\n",
  "/proc/30/environ": "USER=admin\0SSH_CONNECTION=198.18.0.30 50022 198.18.0.1 22\0",
  "/proc/30/comm": "bash\n",
};
const read = async (f: string) => tree[f] ?? Promise.reject(new Error("ENOENT"));

test("unset here: the nearest parent that has it, named", async () => {
  assert.deepEqual(await sshConnectionValue({}, 40, read), { value: "198.18.0.30 50022 198.18.0.1 22", foundIn: "SSH_CONNECTION of bash (pid 30)" });
});

test("set here: this process's own, no parent asked", async () => {
  const asked: string[] = [];
  const r = await sshConnectionValue({ SSH_CONNECTION: "2001:db8::30 1 2001:db8::1 2222" }, 40, (f) => (asked.push(f), read(f)));
  assert.deepEqual(r, { value: "2001:db8::30 1 2001:db8::1 2222", foundIn: "SSH_CONNECTION" });
  assert.deepEqual(asked, []);
});

test("set to the empty string: not from SSH, and no parent is asked", async () => {
  const asked: string[] = [];
  assert.equal(await sshConnectionValue({ SSH_CONNECTION: "" }, 40, (f) => (asked.push(f), read(f))), undefined);
  assert.deepEqual(asked, []);
});

test("a walk that meets a vanished process, a status without PPid, a loop or pid 1 ends with nothing", async () => {
  assert.equal(await sshConnectionValue({}, 99, read), undefined);
  const loop: Record<string, string> = { "/proc/7/environ": "", "/proc/7/status": "PPid:\t7\n" };
  const asked: string[] = [];
  assert.equal(await sshConnectionValue({}, 7, async (f) => (asked.push(f), loop[f] ?? Promise.reject(new Error("ENOENT")))), undefined);
  assert.ok(asked.length <= 32, `bounded walk (${asked.length} reads)`);
  assert.equal(await sshConnectionValue({}, 1, read), undefined);
});

test("a process name with control characters is escaped in where it was found", async () => {
  const t: Record<string, string> = { "/proc/5/environ": "SSH_CONNECTION=198.18.0.30 1 198.18.0.1 22\0", "/proc/5/comm": "ev\x1b[2Jil\n" };
  const r = await sshConnectionValue({}, 5, async (f) => t[f] ?? Promise.reject(new Error("ENOENT")));
  assert.ok(r !== undefined && !/\x1b/.test(r.foundIn), r?.foundIn);
});

test("apply under sudo: the lock-out guard reads the parent's SSH_CONNECTION (here malformed, so it refuses before anything is read or touched)", async () => {
  const { execFile } = await import("node:child_process");
  const path = await import("node:path");
  const os = await import("node:os");
  const { mkdtemp, rm, writeFile } = await import("node:fs/promises");
  const CLI = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../dockwall.cjs");
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-sudo-"));
  try {
    const file = path.join(dir, "dockwall.yaml");
    await writeFile(file, "host:\n  - port: 22\n");
    // sh stands in for sudo's parent shell: it has SSH_CONNECTION, and `env -u` drops it for dockwall as sudo's env_reset does.
    // Not exec'd, and followed by another command, so the shell stays dockwall's parent.
    const script = `env -u SSH_CONNECTION "${process.execPath}" "${CLI}" --state-dir "${dir}/state" apply -c "${file}"; exit $?`;
    const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile("sh", ["-c", script], { env: { PATH: "/nonexistent:/usr/bin:/bin", SSH_CONNECTION: "not a session" }, timeout: 60_000 }, (err, _out, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      ),
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^dockwall: refusing to apply: SSH_CONNECTION of sh \(pid \d+\) is set but cannot be read/m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
