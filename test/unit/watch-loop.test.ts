/** The daemon loop: triggers folded together, applies never overlapping, failures logged and survived. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { WatchLoop, type LoopDeps } from "../../src/daemon/watch-loop.js";
import { PolicyInvalid } from "../../src/pipeline.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function recorder(applyMs = 0, fail?: (n: number) => Error | undefined) {
  const batches: string[][] = [];
  const logs: { level: string; event: string; fields?: Record<string, unknown> }[] = [];
  let active = 0;
  let maxActive = 0;
  const deps: LoopDeps = {
    apply: async (causes) => {
      active++;
      maxActive = Math.max(maxActive, active);
      batches.push(causes);
      await sleep(applyMs);
      active--;
      const error = fail?.(batches.length);
      if (error) throw error;
      return { changed: batches.length === 1, detail: {} };
    },
    log: (level, event, fields) => logs.push({ level, event, ...(fields ? { fields } : {}) }),
  };
  return { deps, batches, logs, maxActive: () => maxActive };
}

test("triggers close together become one apply that names every cause", async () => {
  const r = recorder();
  const loop = new WatchLoop(r.deps, { debounceMs: 20 });
  loop.trigger("docker container start web");
  loop.trigger("docker network connect web");
  loop.trigger("docker container start web");
  await loop.idle();
  assert.deepEqual(r.batches, [["docker container start web", "docker network connect web"]]);
  assert.deepEqual(r.logs.map((l) => l.event), ["applied"]);
});

test("applies never overlap: a trigger during an apply runs one more apply afterwards", async () => {
  const r = recorder(60);
  const loop = new WatchLoop(r.deps, { debounceMs: 5 });
  loop.trigger("start");
  await sleep(20); // the first apply is running now
  loop.trigger("ruleset changed");
  loop.trigger("SIGHUP");
  await loop.idle();
  assert.deepEqual(r.batches, [["start"], ["ruleset changed", "SIGHUP"]]);
  assert.equal(r.maxActive(), 1);
  assert.deepEqual(loop.counts, { applies: 2, changed: 1, failed: 0 });
});

test("a failed apply (a bad policy on reload) is logged with its errors, and the loop goes on", async () => {
  const r = recorder(0, (n) => (n === 1 ? new PolicyInvalid(["p.yaml:3:9: unknown group \"ofice\""]) : undefined));
  const loop = new WatchLoop(r.deps, { debounceMs: 5 });
  loop.trigger("SIGHUP");
  await loop.idle();
  loop.trigger("file changed: /etc/dockwall/p.yaml");
  await loop.idle();
  assert.equal(r.logs[0]!.level, "error");
  assert.deepEqual(r.logs[0]!.fields!.errors, ['p.yaml:3:9: unknown group "ofice"']);
  assert.equal(r.logs[1]!.level, "info");
  assert.deepEqual(loop.counts, { applies: 2, changed: 0, failed: 1 });
});

test("stop waits for the apply in progress and starts no other", async () => {
  const r = recorder(50);
  const loop = new WatchLoop(r.deps, { debounceMs: 5 });
  loop.trigger("start");
  await sleep(20);
  loop.trigger("docker container die db");
  await loop.stop();
  assert.equal(r.batches.length, 1);
  assert.equal(r.logs.length, 1, "the running apply finished and was logged");
  loop.trigger("SIGHUP");
  await sleep(30);
  assert.equal(r.batches.length, 1);
});

test("a quiet outcome (a periodic check that found the kernel right) is counted but not logged", async () => {
  const logs: string[] = [];
  const loop = new WatchLoop({ apply: async () => ({ changed: false, detail: {}, quiet: true }), log: (_l, event) => logs.push(event) }, { debounceMs: 5 });
  loop.trigger("periodic check");
  await loop.idle();
  assert.deepEqual(logs, []);
  assert.deepEqual(loop.counts, { applies: 1, changed: 0, failed: 0 });
});
