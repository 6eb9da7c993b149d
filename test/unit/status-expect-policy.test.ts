/**
 * `status --expect-policy FILE` (the Swarm service's health check): the rules in force must have been
 * compiled from FILE's content. A new policy that did not apply (it names an unknown group) leaves the
 * old rules in force and in sync, which plain `status` calls healthy; the content decides, not the path.
 */
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { FakeNetfilter } from "./fake-netfilter.js";
import { applyPolicy } from "../../src/apply-policy.js";
import { Netfilter } from "../../src/backends/netfilter.js";
import { StateStore } from "../../src/apply/state-store.js";
import { MemoryLock } from "../../src/apply/lock.js";
import { readStatus, statusExitCode } from "../../src/status/report.js";
import { expectedPolicyProblem } from "../../src/status/expected-policy.js";

const GOOD = "host:\n  - port: 22\n";
const NEXT = "host:\n  - port: 22\n  - port: 443\n";
const UNKNOWN_GROUP = "host:\n  - port: 22\n    from: [nosuchgroup]\n";

before(() => {
  process.env.DOCKER_HOST = "unix:///nonexistent/dockwall-test/docker.sock";
});

test("status --expect-policy: in force only when the applied rules came from that file's content; a policy that failed to apply is not, though the old rules are in sync", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-expect-"));
  try {
    const file = path.join(dir, "dockwall.yaml");
    const fake = new FakeNetfilter();
    const store = new StateStore(path.join(dir, "state"));
    const deps = { runner: fake, store, lock: new MemoryLock() };
    assert.match(expectedPolicyProblem(await store.current(), file, GOOD) ?? "", /nothing is applied/);

    await writeFile(file, GOOD);
    await applyPolicy(file, deps);
    assert.equal(expectedPolicyProblem(await store.current(), file, GOOD), undefined);
    // The same content elsewhere (the host's view of a container's config) is the same policy.
    assert.equal(expectedPolicyProblem(await store.current(), "/elsewhere/dockwall.yaml", GOOD), undefined);

    // The new policy does not apply: the old rules stay, in sync, and plain status says 0.
    await writeFile(file, UNKNOWN_GROUP);
    await assert.rejects(applyPolicy(file, deps));
    assert.equal(statusExitCode(await readStatus({ nf: new Netfilter(fake, "nft"), store })), 0, "plain status: the old rules, in sync");
    assert.match(expectedPolicyProblem(await store.current(), file, UNKNOWN_GROUP) ?? "", /is not in force: the rules applied at .* were compiled from another policy/);

    await writeFile(file, NEXT);
    await applyPolicy(file, deps);
    assert.equal(expectedPolicyProblem(await store.current(), file, NEXT), undefined);
    assert.notEqual(expectedPolicyProblem(await store.current(), file, GOOD), undefined, "the previous policy is no longer in force");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
