/**
 * The state files are treated as hostile input: written so that nothing planted in the directory
 * can redirect the write, read without following links, and checked against their schema (rules
 * included) before use. A corrupt file names itself and the way out; apply goes on without it,
 * rollback refuses it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lstat, readFile, readdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { Netfilter } from "../../src/backends/netfilter.js";
import { applyAndRecord } from "../../src/apply/transaction.js";
import { FlockLock, LockError, MemoryLock } from "../../src/apply/lock.js";
import { DEFAULT_STATE_DIR, StateDirOptionError, StateFileError, stateDir, type StateStore } from "../../src/apply/state-store.js";
import { parseRecordFile } from "../../src/apply/state-schema.js";
import { desiredFor, dockerHost, withStore } from "./apply-fixtures.js";
import { loc, policy } from "./fixtures.js";

const a = desiredFor(policy());
const b = desiredFor(policy({ host: [{ ports: [{ from: 2222, to: 2222 }], protos: ["tcp"], from: [{ kind: "any" }], loc }] }));

/** Two applies recorded (current b, previous a), on a fresh fake host. */
async function twoApplied(store: StateStore, lock: MemoryLock) {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft");
  await applyAndRecord(nf, a, store, lock, "a.yaml");
  const stateA = fake.snapshot();
  await applyAndRecord(nf, b, store, lock, "b.yaml");
  return { fake, nf, stateA, stateB: fake.snapshot() };
}

const file = (store: StateStore, name: string) => path.join(store.dir, name);
const unreadable = (name: string, why: RegExp) => (e: unknown) =>
  e instanceof StateFileError && e.message.includes(`${name} is not a valid dockwall state (`) && why.test(e.message);

/** Rewrites a stored JSON file through `edit`. */
async function editJson(f: string, edit: (data: any) => void): Promise<void> {
  const data = JSON.parse(await readFile(f, "utf8"));
  edit(data);
  await writeFile(f, JSON.stringify(data));
}

test("a planted link named like the old temp file, or like the state file itself, does not redirect root's write", async () => {
  await withStore(async (store, lock) => {
    const victim = path.join(store.dir, "..", `victim-${process.pid}`);
    await writeFile(victim, "root's file\n");
    try {
      // The temp name used to be current.json.PID.tmp: predictable, and written through a link.
      for (const name of [`current.json.${process.pid}.tmp`, `previous.json.${process.pid}.tmp`, `pending.json.${process.pid}.tmp`, "previous.json"]) {
        await symlink(victim, file(store, name));
      }
      await twoApplied(store, lock);
      assert.equal(await readFile(victim, "utf8"), "root's file\n");
      assert.ok((await lstat(file(store, "previous.json"))).isFile(), "the link was replaced, not followed");
      const left = (await readdir(store.dir)).filter((n) => n.endsWith(".tmp") && !n.includes(String(process.pid)));
      assert.deepEqual(left, [], "no temp file of its own left behind");
    } finally {
      await writeFile(victim, "").then(() => execFileSync("rm", ["-f", victim]));
    }
  });
});

test("a state file that is a link, a FIFO or too big is refused, never followed or waited on", { timeout: 20_000 }, async () => {
  await withStore(async (store) => {
    await symlink("/etc/hostname", file(store, "current.json"));
    await assert.rejects(store.current(), unreadable("current.json", /it is a symbolic link/));
    execFileSync("mkfifo", [file(store, "previous.json")]);
    await assert.rejects(store.previous(), unreadable("previous.json", /it is a named pipe \(FIFO\); a state file must be a regular file/));
    execFileSync("truncate", ["-s", "300M", file(store, "pending.json")]);
    await assert.rejects(store.pending(), unreadable("pending.json", /it is 314,572,800 bytes; a state file may be at most \d+ MiB/));
  });
});

test("a truncated state file names itself and the way out, for each file", async () => {
  await withStore(async (store, lock) => {
    await twoApplied(store, lock);
    const text = await readFile(file(store, "current.json"), "utf8");
    for (const name of ["current.json", "previous.json", "pending.json"]) await writeFile(file(store, name), text.slice(0, 100));
    await assert.rejects(store.current(), unreadable("current.json", /\(JSON: .*\): `dockwall apply -c POLICY_FILE` reads the whole kernel and writes a new record/));
    await assert.rejects(store.previous(), unreadable("previous.json", /`dockwall rollback` will not use it/));
    await assert.rejects(store.pending(), unreadable("pending.json", /journal of an apply that was stopped part-way/));
  });
});

test("a crafted previous.json is refused before rollback can load it: ACCEPT in INPUT, a second line, a foreign chain, a jump from OUTPUT", async () => {
  const crafts: [string, (d: any) => void, RegExp][] = [
    ["a chain named INPUT", (d) => d.record.state.ipv4.chains.push({ table: "filter", name: "INPUT", rules: ["-j ACCEPT"] }), /chain INPUT is not a dockwall chain/],
    ["a second line in a rule", (d) => (d.record.state.ipv4.chains[0].rules[0] += "\n-A INPUT -j ACCEPT"), /control character/],
    ["COMMIT and a new table in a rule", (d) => (d.record.state.ipv6.chains[0].rules[0] = "-j RETURN\nCOMMIT\n*filter\n-I INPUT -j ACCEPT"), /control character/],
    ["an ACCEPT in a dockwall chain", (d) => d.record.state.ipv4.chains[0].rules.unshift("-s 198.18.0.0/15 -j ACCEPT"), /its target \(-j ACCEPT\)/],
    ["a jump from OUTPUT", (d) => d.record.state.ipv4.jumps.push({ table: "filter", from: "OUTPUT", to: "DOCKWALL-INPUT", spec: "-m comment --comment dockwall -j DOCKWALL-INPUT" }), /dockwall jumps only filter INPUT -> DOCKWALL-INPUT and mangle FORWARD -> DOCKWALL-FORWARD/],
    ["a jump spec that accepts", (d) => (d.record.state.ipv4.jumps[0].spec = "-j ACCEPT"), /is not the jump dockwall writes/],
    ["the wrong variant", (d) => (d.record.variant = "ebtables"), /variant: not "nft" or "legacy"/],
    ["a member that is not an address", (d) => (d.record.state.sets[0].members += "\n198.18.0.1 nomatch"), /is not an ipv4 address or network/],
    ["a count that disagrees", (d) => (d.record.state.sets[0].count += 1), /count 3, but 2 members/],
    ["a set of the other family", (d) => (d.record.state.sets[0].family = "ipv6"), /name: not a dockwall ipv6 set name/],
    ["a set name outside dockwall's", (d) => (d.record.state.sets[0].name = "blocklist"), /not a dockwall ipv4 set name/],
    ["another format", (d) => (d.format = 2), /format 2, not 3/],
  ];
  for (const [what, craft, why] of crafts) {
    await withStore(async (store, lock) => {
      const { fake } = await twoApplied(store, lock);
      await editJson(file(store, "previous.json"), craft);
      const before = fake.snapshot();
      await assert.rejects(store.rollbackTarget(), unreadable("previous.json", why), what);
      assert.deepEqual(fake.snapshot(), before);
    });
  }
});

test("a crafted current.json is refused, not reported in sync", async () => {
  await withStore(async (store, lock) => {
    await twoApplied(store, lock);
    await editJson(file(store, "current.json"), (d) => d.record.state.ipv4.chains[0].rules.push("-j ACCEPT"));
    await assert.rejects(store.current(), unreadable("current.json", /its target \(-j ACCEPT\)/));
  });
});

test("apply goes on past a corrupt current.json: the whole kernel is read, the policy applied, the file replaced, and it says so", async () => {
  await withStore(async (store, lock) => {
    const { fake, nf, stateA, stateB } = await twoApplied(store, lock);
    await writeFile(file(store, "current.json"), "{\"format\":3,\"rec");
    fake.calls.length = 0;
    const result = await applyAndRecord(nf, a, store, lock, "a.yaml");
    assert.deepEqual(fake.snapshot(), stateA);
    assert.ok(fake.calls.some((c) => c.cmd === "ipset" && c.args[0] === "save"), "set members read from the kernel, not trusted from a record");
    assert.match(result.warnings?.join("\n") ?? "", /current\.json is not a valid dockwall state \(JSON: .*\): not used; the whole kernel was read/);
    assert.equal((await store.current())?.source, "a.yaml");
    const previous = await store.previous();
    assert.equal(previous?.source, "what the kernel held (the record was unreadable)");
    await applyAndRecord(nf, previous!.state, store, lock, "rollback");
    assert.deepEqual(fake.snapshot(), stateB);
  });
});

test("apply goes on past a corrupt journal: the last record becomes previous, the journal goes", async () => {
  await withStore(async (store, lock) => {
    const { nf, fake, stateA } = await twoApplied(store, lock);
    await writeFile(file(store, "pending.json"), "garbage");
    const result = await applyAndRecord(nf, a, store, new MemoryLock(), "a.yaml");
    assert.deepEqual(fake.snapshot(), stateA);
    assert.match(result.warnings?.join("\n") ?? "", /pending\.json is not a valid dockwall state/);
    assert.equal(await store.pending(), undefined);
    assert.equal((await store.previous())?.source, "b.yaml");
  });
});

test("rollback refuses a corrupt journal or previous.json, and goes on past a corrupt current.json", async () => {
  await withStore(async (store, lock) => {
    const { fake, nf, stateA } = await twoApplied(store, lock);
    await writeFile(file(store, "pending.json"), "");
    await assert.rejects(store.rollbackTarget(), unreadable("pending.json", /JSON/));
    await writeFile(file(store, "pending.json"), "").then(() => execFileSync("rm", [file(store, "pending.json")]));
    const previous = await readFile(file(store, "previous.json"), "utf8");
    await writeFile(file(store, "previous.json"), previous.slice(0, -10));
    await assert.rejects(store.rollbackTarget(), unreadable("previous.json", /JSON/));
    await writeFile(file(store, "previous.json"), previous);
    await writeFile(file(store, "current.json"), "[]");
    const target = await store.rollbackTarget();
    assert.equal(target?.source, "a.yaml");
    const result = await applyAndRecord(nf, target!.state, store, lock, "rollback");
    assert.deepEqual(fake.snapshot(), stateA);
    assert.match(result.warnings?.join("\n") ?? "", /current\.json .*the file is not an object|current\.json is not a valid/);
  });
});

test("a record written by dockwall reads back equal, and its members are checked in bulk", async () => {
  await withStore(async (store, lock) => {
    await twoApplied(store, lock);
    const checked = parseRecordFile(await readFile(file(store, "current.json"), "utf8"));
    assert.ok(checked.ok);
    assert.deepEqual(JSON.parse(JSON.stringify(checked.value.state)), JSON.parse(JSON.stringify(b)));
  });
});

test("a record read twice (other objects, same members) is recognised as what the kernel holds: no member read, nothing planned", async () => {
  await withStore(async (store, lock) => {
    const { fake, nf } = await twoApplied(store, lock);
    const { StateStore } = await import("../../src/apply/state-store.js");
    const again = (await new StateStore(store.dir).current())!;
    assert.notEqual(again.state.sets[0], (await store.current())!.state.sets[0]);
    fake.calls.length = 0;
    const result = await applyAndRecord(nf, again.state, store, lock, "b.yaml");
    assert.equal(result.changed, false);
    assert.ok(!fake.calls.some((c) => c.cmd === "ipset" && c.args[0] === "save"), "no members read back");
  });
});

test("a state file whose check throws (here a 1,000,000-deep format) is refused by name, not an uncaught RangeError", async () => {
  await withStore(async (store) => {
    await writeFile(file(store, "current.json"), `{"format":${"[".repeat(1_000_000)}${"]".repeat(1_000_000)}}`);
    await assert.rejects(store.current(), unreadable("current.json", /could not be checked: Maximum call stack size exceeded/));
  });
});

test("a state file's bytes quoted in a JSON error are escaped: no raw escape sequence or newline in the message", async () => {
  await withStore(async (store) => {
    await writeFile(file(store, "current.json"), '\u001b[31m\nfake: ok\n');
    await assert.rejects(store.current(), (e: unknown) => {
      assert.ok(e instanceof StateFileError, String(e));
      assert.doesNotMatch(e.message, /[\u001b\n]/);
      assert.match(e.message, /\\u001b/);
      return true;
    });
  });
});

test("a FIFO or a link planted at the lock file is refused at once: flock never hangs on it, root never creates the link's target", { timeout: 20_000 }, async () => {
  await withStore(async (store) => {
    await store.ready();
    execFileSync("mkfifo", [store.lockFile]);
    const lockRefused = (why: RegExp) => (e: unknown) => e instanceof LockError && e.message.includes(store.lockFile) && why.test(e.message) && /remove it/.test(e.message);
    await assert.rejects(new FlockLock(store.lockFile, 1).acquire(), lockRefused(/it is a named pipe \(FIFO\); the lock file must be a regular file/));
    execFileSync("rm", [store.lockFile]);
    const target = path.join(store.dir, "created-by-root");
    await symlink(target, store.lockFile);
    await assert.rejects(new FlockLock(store.lockFile, 1).acquire(), lockRefused(/it is a symbolic link/));
    await assert.rejects(lstat(target), /ENOENT/);
    execFileSync("rm", [store.lockFile]);
    const release = await new FlockLock(store.lockFile, 1).acquire();
    await release();
    assert.equal(((await lstat(store.lockFile)).mode & 0o777).toString(8), "600");
  });
});

test("the state directory must be absolute: an empty DOCKWALL_STATE_DIR counts as unset, an empty or relative one is refused", () => {
  assert.equal(stateDir(undefined, ""), DEFAULT_STATE_DIR);
  assert.equal(stateDir(undefined, undefined), DEFAULT_STATE_DIR);
  assert.equal(stateDir(undefined, "/srv/dockwall"), "/srv/dockwall");
  assert.equal(stateDir("/srv/x", "/srv/dockwall"), "/srv/x");
  const refused = (from: string) => (e: unknown) => e instanceof StateDirOptionError && e.message.startsWith(from) && /the state directory must be an absolute path/.test(e.message);
  assert.throws(() => stateDir("", "/srv/dockwall"), refused('--state-dir ""'));
  assert.throws(() => stateDir("state", undefined), refused('--state-dir "state"'));
  assert.throws(() => stateDir(undefined, "./state"), refused('DOCKWALL_STATE_DIR "./state"'));
});
