/**
 * The state directory is used only when nobody but root (or the user running dockwall) can change
 * it, like sshd's StrictModes; pseudo filesystems are refused at once (Node's recursive mkdir spun
 * for ever on /proc/1/x). These run as root, as dockwall does, and make their own directories.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmod, chown, lstat, mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { prepareStateDir, StateDirError } from "../../src/apply/state-dir.js";

async function withTemp(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-dir-"));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const refusal = (pattern: RegExp) => (e: unknown) => e instanceof StateDirError && pattern.test(e.message);

test("a missing state directory is created 0700, parents too, under a sticky /tmp", async () => {
  await withTemp(async (tmp) => {
    const dir = path.join(tmp, "a", "b", "state");
    await prepareStateDir(dir);
    for (const d of [path.join(tmp, "a"), path.join(tmp, "a", "b"), dir]) {
      const st = await lstat(d);
      assert.ok(st.isDirectory());
      assert.equal(st.mode & 0o777, 0o700, d);
    }
    await prepareStateDir(dir);
  });
});

test("a state directory writable by others, or by its group, is refused with the chmod that fixes it", async () => {
  await withTemp(async (tmp) => {
    const dir = path.join(tmp, "state");
    await mkdir(dir);
    await chmod(dir, 0o777);
    await assert.rejects(prepareStateDir(dir), refusal(new RegExp(`${dir} is writable by its group and others \\(mode 0777\\).*fix: chmod go-w ${dir}`)));
    await chmod(dir, 0o1777);
    await assert.rejects(prepareStateDir(dir), refusal(/mode 1777/), "sticky is no excuse for the state directory itself");
    await chmod(dir, 0o702);
    await assert.rejects(prepareStateDir(dir), refusal(/writable by others \(mode 0702\)/));
    await chmod(dir, 0o770);
    await assert.rejects(prepareStateDir(dir), refusal(/writable by its group \(mode 0770\)/));
  });
});

test("a directory above it writable by others is refused; a sticky one (like /tmp) is not", async () => {
  await withTemp(async (tmp) => {
    const parent = path.join(tmp, "shared");
    const dir = path.join(parent, "state");
    await mkdir(dir, { recursive: true });
    await chmod(parent, 0o777);
    await assert.rejects(prepareStateDir(dir), refusal(new RegExp(`${parent} is writable`)));
    await assert.rejects(prepareStateDir(path.join(parent, "new")), refusal(new RegExp(`${parent} is writable`)), "and nothing is created under it");
    await assert.rejects(lstat(path.join(parent, "new")));
    await chmod(parent, 0o1777);
    await prepareStateDir(dir);
  });
});

test("a state directory, or one above it, owned by another user is refused with the chown that fixes it", async () => {
  await withTemp(async (tmp) => {
    const parent = path.join(tmp, "home");
    const dir = path.join(parent, "state");
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chown(dir, 4242, 4242);
    await assert.rejects(prepareStateDir(dir), refusal(new RegExp(`${dir} is owned by uid 4242, not root.*chown root ${dir}`)));
    await chown(dir, 0, 0);
    await chown(parent, 4242, 4242);
    await assert.rejects(prepareStateDir(dir), refusal(new RegExp(`${parent} is owned by uid 4242`)));
    // Run by that user, the directories are its own: accepted.
    await chown(dir, 4242, 4242);
    await prepareStateDir(dir, 4242);
  });
});

test("a state directory that is a symbolic link is refused; a link above it is judged by where it leads", async () => {
  await withTemp(async (tmp) => {
    const real = path.join(tmp, "real");
    await mkdir(real, { mode: 0o700 });
    const link = path.join(tmp, "link");
    await symlink(real, link);
    await assert.rejects(prepareStateDir(link), refusal(new RegExp(`${link} is a symbolic link`)));
    await prepareStateDir(path.join(link, "state"));
    await chown(real, 4242, 4242);
    await assert.rejects(prepareStateDir(path.join(link, "state2")), refusal(new RegExp(`${real} is owned by uid 4242`)));
  });
});

test("a state directory that is a file is refused", async () => {
  await assert.rejects(prepareStateDir("/etc/hostname"), refusal(/\/etc\/hostname is not a directory/));
  await assert.rejects(prepareStateDir("/etc/hostname/state"), refusal(/cannot look at \/etc\/hostname\/state: ENOTDIR/));
});

for (const dir of ["/proc/self", "/proc/1", "/proc/1/dockwall", "/proc/self/x/y", "/sys/kernel/dockwall", "/dev/shm/dockwall", "/dev"]) {
  // Before, /proc/1/dockwall made Node's recursive mkdir spin at 100% CPU for ever: the timeout ends such a run.
  test(`--state-dir ${dir} is refused at once: not a filesystem that stores files`, { timeout: 20_000 }, async () => {
    await assert.rejects(prepareStateDir(dir), refusal(/is on (proc|sysfs|\/proc|\/sys|\/dev), which is not a filesystem that stores files/));
  });
}

test("a state directory that is a dangling link is refused as a link", async () => {
  await withTemp(async (tmp) => {
    const link = path.join(tmp, "dangling");
    await symlink(path.join(tmp, "nowhere"), link);
    await assert.rejects(prepareStateDir(link), refusal(new RegExp(`${link} is a symbolic link`)));
  });
});

test("a hostile state directory path is shown escaped: no raw escape sequence or newline in the refusal", async () => {
  await withTemp(async (dir) => {
    const planted = path.join(dir, "x\u001b[2J\nstate directory ok");
    await symlink("/etc", planted);
    await assert.rejects(prepareStateDir(planted), (e: unknown) => {
      assert.ok(e instanceof StateDirError, String(e));
      assert.doesNotMatch(e.message, /[\u001b\n]/);
      assert.match(e.message, /x\\u001b\[2J\\nstate directory ok is a symbolic link/);
      return true;
    });
  });
});
