/** The confirm keeper and window against damaged state files: what was not confirmed still goes; a bad window names itself. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { Netfilter } from "../../src/backends/netfilter.js";
import { applyAndRecord } from "../../src/apply/transaction.js";
import { openWindow, readWindow } from "../../src/apply/confirm.js";
import { keepWindow } from "../../src/cli/confirm.js";
import { desiredFor, dockerHost, withStore } from "./apply-fixtures.js";
import { loc, policy } from "./fixtures.js";

test("an unconfirmed window is rolled back at its deadline even when current.json has become unreadable", async () => {
  await withStore(async (store, lock) => {
    const fake = dockerHost();
    const nf = new Netfilter(fake, "nft");
    await applyAndRecord(nf, desiredFor(policy()), store, lock, "a.yaml");
    const stateA = fake.snapshot();
    await applyAndRecord(nf, desiredFor(policy({ host: [{ ports: [{ from: 2222, to: 2222 }], protos: ["tcp"], from: [{ kind: "any" }], loc }] })), store, lock, "b.yaml");
    const w = await openWindow(store, (await store.current())!.at, "b.yaml", 0);
    await writeFile(path.join(store.dir, "current.json"), "{");
    await keepWindow({ runner: fake, store, lock }, w.token);
    assert.deepEqual(fake.snapshot(), stateA);
  });
});

test("a confirm window that is not one dockwall wrote names its file and the way out", async () => {
  await withStore(async (store) => {
    await writeFile(path.join(store.dir, "confirm.json"), '{"token": 1}');
    await assert.rejects(readWindow(store), /confirm\.json is not a valid dockwall confirm window \(a field is missing or of the wrong type\): remove it/);
  });
});
