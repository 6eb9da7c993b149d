/**
 * The single executable against a real kernel, in a scratch network namespace of its own (no
 * dockerd: Docker unreachable, so host rules only): `apply` puts the rules in, `apply --confirm`
 * left unconfirmed is rolled back by the keeper the executable starts from itself, and one answered
 * "yes" on a terminal stays, as for `node dist/dockwall.cjs`.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ProcessRunner } from "../../src/exec/runner.js";
import { seaExecutable } from "../unit/sea-executable.js";
import { sleep } from "./lab.js";

const runner = new ProcessRunner();
const NS = `dockwall-sea-${process.pid}`;

describe("the single executable on a real kernel", () => {
  let dir: string;
  let exe: string;
  // No Docker here; SSH_CONNECTION empty: the lock-out guard is not what this tests.
  const env = () => ({ DOCKWALL_STATE_DIR: path.join(dir, "state"), DOCKER_HOST: `unix://${path.join(dir, "no-docker.sock")}`, SSH_CONNECTION: "" });
  const dockwall = (args: string[]) => runner.run("ip", ["netns", "exec", NS, exe, ...args], { env: env() });
  const inputRules = async () => {
    const r = await runner.run("ip", ["netns", "exec", NS, "iptables", "-S", "DOCKWALL-INPUT-OUTSIDE"]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };

  /** This test's confirm keepers still running: the single executable started with its state folder. */
  const keepers = async () => {
    const found: string[] = [];
    for (const pid of (await readdir("/proc")).filter((p) => /^\d+$/.test(p))) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
      if (cmdline.includes("confirm-keeper") && cmdline.includes(path.join(dir, "state"))) found.push(pid);
    }
    return found;
  };

  before(async () => {
    exe = await seaExecutable();
    dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-sea-lab-"));
    await writeFile(path.join(dir, "a.yaml"), "host:\n  - port: 22\n");
    await writeFile(path.join(dir, "b.yaml"), "host:\n  - port: 22\n  - port: 8080\n");
    const r = await runner.run("ip", ["netns", "add", NS]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await runner.run("ip", ["netns", "del", NS]);
    await rm(dir, { recursive: true, force: true });
  });

  it("applies; an unconfirmed apply --confirm is rolled back by the keeper it started, one confirmed on a terminal stays", { timeout: 60_000 }, async () => {
    const first = await dockwall(["apply", "-c", path.join(dir, "a.yaml")]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(await inputRules(), /--dport 22 .*-j RETURN/);

    const second = await dockwall(["apply", "--confirm", "1", "-c", path.join(dir, "b.yaml")]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /run `dockwall confirm` by/);
    assert.match(await inputRules(), /--dport 8080 /);

    // The keeper rolls back at the deadline (1 s): wait for it, bounded.
    let rules = await inputRules();
    for (let i = 0; i < 100 && /--dport 8080 /.test(rules); i++) {
      await sleep(200);
      rules = await inputRules();
    }
    assert.doesNotMatch(rules, /--dport 8080 /, "the keeper did not roll back the unconfirmed apply");
    assert.match(rules, /--dport 22 .*-j RETURN/);

    // On a terminal the question is asked in the executable itself (readline, imported when needed).
    const q = (w: string) => `'${w.replace(/'/g, "'\\''")}'`;
    const line = ["ip", "netns", "exec", NS, "env", ...Object.entries(env()).map(([k, v]) => `${k}=${v}`), exe, "apply", "--confirm", "3", "-c", path.join(dir, "b.yaml")];
    const asked = await runner.run("script", ["-qec", line.map(q).join(" "), "/dev/null"], { input: "yes\n" });
    assert.equal(asked.code, 0, asked.stdout);
    assert.match(asked.stdout, /keep these rules\? type "yes"/);
    assert.match(asked.stdout, /confirmed: the new rules stay/);
    assert.match(await inputRules(), /--dport 8080 /);

    const status = await dockwall(["status"]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /from .*b\.yaml/);
    assert.match(status.stdout, /in sync: the kernel holds what was applied/);

    // Each keeper ends by itself at its deadline: none outlives the test.
    for (let i = 0; i < 100 && (await keepers()).length > 0; i++) await sleep(200);
    assert.deepEqual(await keepers(), []);
  });
});
