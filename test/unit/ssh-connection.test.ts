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
