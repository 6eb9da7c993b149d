/**
 * Loading set members: split over several `ipset restore` processes (fillPayloads), and started
 * before the rules are compiled (prepareSets), taken over by apply or undone when it does not go ahead.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Netfilter } from "../../src/backends/netfilter.js";
import { fillPayloads, maxelemFor, type SetFill } from "../../src/backends/ipset.js";
import { apply, ApplyError, prepareSets, readLive } from "../../src/apply/apply.js";
import { applyWhenReady } from "../../src/apply/transaction.js";
import type { DesiredState } from "../../src/backends/rendered.js";
import { desiredFor, dockerHost, withStore } from "./apply-fixtures.js";
import { policy } from "./fixtures.js";

const addresses = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `198.${18 + ((from + i) >> 16)}.${((from + i) >> 8) & 255}.${(from + i) & 255}`);

/** Each payload's sets: the members of its add lines, and whether its create line came before them. */
function readPayload(text: string): Map<string, { created: boolean; members: string[] }> {
  const sets = new Map<string, { created: boolean; members: string[] }>();
  for (const line of text.split("\n").filter((l) => l !== "")) {
    const [verb, name, member] = line.split(" ") as [string, string, string];
    const set = sets.get(name) ?? { created: false, members: [] };
    sets.set(name, set);
    if (verb === "create") set.created = true;
    else if (verb === "add") {
      assert.ok(set.created, `add to ${name} before its create line`);
      set.members.push(member);
    } else assert.fail(`unexpected line: ${line}`);
  }
  return sets;
}

test("fillPayloads: every member once, in order, after its set's create line; at most one load per loader, none below 20,000 members", () => {
  fc.assert(
    fc.property(fc.array(fc.nat(70_000), { maxLength: 4 }), fc.integer({ min: 1, max: 8 }), (sizes, loaders) => {
      let next = 0;
      const fills: SetFill[] = sizes.map((n, i) => {
        const members = addresses(n, next);
        next += n;
        return { name: `dw4-g${i}`, create: `create dw4-g${i} hash:net family inet maxelem 131072`, members };
      });
      const payloads = fillPayloads(fills, loaders);
      const total = sizes.reduce((a, b) => a + b, 0);
      assert.equal(payloads.length, total === 0 ? 0 : Math.max(1, Math.min(loaders, Math.floor(total / 20_000))));
      const loaded = new Map<string, string[]>();
      for (const p of payloads.map(readPayload)) {
        for (const [name, s] of p) loaded.set(name, [...(loaded.get(name) ?? []), ...s.members]);
      }
      for (const f of fills) assert.deepEqual(loaded.get(f.name) ?? [], f.members);
    }),
    { numRuns: 60 },
  );
});

const big = (n: number) => policy({ groups: [{ name: "office", ipv4: addresses(n), ipv6: ["2001:db8:1::/48"] }] });

test("members loaded by three ipset processes side by side: the kernel holds exactly the group, new set and swapped set alike", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft", 3);
  await apply(nf, desiredFor(big(70_000)));
  const loads = fake.calls.filter((c) => c.cmd === "ipset" && c.args.join(" ") === "-exist restore" && /^add dw4-office /m.test(c.input ?? ""));
  assert.equal(loads.length, 3);
  assert.deepEqual([...fake.set("dw4-office")!.members].sort(), addresses(70_000).sort());
  // A large change goes through a scratch set, loaded the same way, then swapped in.
  await apply(nf, desiredFor(policy({ groups: [{ name: "office", ipv4: addresses(65_000, 10_000), ipv6: [] }] })));
  assert.deepEqual([...fake.set("dw4-office")!.members].sort(), addresses(65_000, 10_000).sort());
  assert.equal(fake.set("dw4-office.n"), undefined);
});

test("one failed load of several: nothing changed, the half-filled set is gone", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft", 3);
  const before = fake.snapshot();
  let loads = 0;
  fake.failNext((cmd, _args, input) => cmd === "ipset" && /^add /m.test(input ?? "") && ++loads === 2, { code: 1, stderr: "ipset v7.17: Kernel error" });
  await assert.rejects(apply(nf, desiredFor(big(70_000))), (e: unknown) => e instanceof ApplyError && e.rolledBack);
  assert.deepEqual(fake.snapshot(), before);
});

test("sets prepared before the rules are compiled are taken over: the same kernel state as a plain apply", async () => {
  const plain = dockerHost();
  await apply(new Netfilter(plain, "nft", 2), desiredFor(big(50_000)));
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft", 2);
  const desired = desiredFor(big(50_000));
  const prepared = prepareSets(nf, desired.sets, await readLive(nf));
  const result = await apply(nf, desired, await readLive(nf), {}, prepared);
  assert.equal(result.changed, true);
  assert.deepEqual(fake.snapshot(), plain.snapshot());
  // Each set was created once by `prepare`; the loads' create lines were no-ops.
  const prepares = fake.calls.filter((c) => c.cmd === "ipset" && /^create /.test(c.input ?? "") && !/^add /m.test(c.input ?? ""));
  assert.equal(prepares.length, 1);
});

test("sets prepared from one compile are taken over by an equal one (other objects, same names and members): loaded once, never destroyed", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft", 2);
  const prepared = prepareSets(nf, desiredFor(big(50_000)).sets, await readLive(nf));
  const desired = desiredFor(big(50_000));
  assert.notEqual(desired.sets, prepared.sets);
  await apply(nf, desired, await readLive(nf), {}, prepared);
  assert.deepEqual([...fake.set("dw4-office")!.members].sort(), addresses(50_000).sort());
  const loads = fake.calls.filter((c) => c.cmd === "ipset" && /^add dw4-office /m.test(c.input ?? ""));
  assert.equal(loads.length, 2, "one load, split over the two loaders");
  assert.ok(!fake.calls.some((c) => c.cmd === "ipset" && /^destroy dw4-office$/m.test(c.input ?? "")));
});

test("prepared sets that are not the desired state's are undone, and the apply goes on as usual", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft");
  const other = desiredFor(policy({ groups: [{ name: "elsewhere", ipv4: ["198.51.100.0/24"], ipv6: [] }], trusted: [{ kind: "group", name: "elsewhere" }] }));
  const prepared = prepareSets(nf, other.sets, await readLive(nf));
  await apply(nf, desiredFor(policy()), await readLive(nf), {}, prepared);
  assert.equal(fake.set("dw4-elsewhere"), undefined);
  assert.ok(fake.set("dw4-office")!.members.has("203.0.113.0/24"));
});

test("an apply refused by its guard after the sets were prepared leaves the kernel as it was", async () => {
  await withStore(async (store, lock) => {
    const fake = dockerHost();
    const nf = new Netfilter(fake, "nft");
    const before = fake.snapshot();
    const desired = desiredFor(big(30_000));
    let guarded = false;
    await assert.rejects(
      applyWhenReady(Promise.resolve(nf), Promise.resolve({ netfilter: nf, desired }), store, lock, "p.yaml", {
        sets: Promise.resolve(desired.sets),
        guard: async (_d: DesiredState) => {
          guarded = true;
          // By now the sets are being loaded: the refusal must undo them.
          throw new Error("refused by the guard");
        },
      }),
      /refused by the guard/,
    );
    assert.equal(guarded, true);
    assert.ok(fake.calls.some((c) => c.cmd === "ipset" && /^add dw4-office /m.test(c.input ?? "")), "the members were being loaded");
    assert.deepEqual(fake.snapshot(), before);
  });
});

test("a scratch set left by an interrupted run is destroyed before the next one is created: its stale members never reach the swapped set", async () => {
  const fake = dockerHost();
  const nf = new Netfilter(fake, "nft", 2);
  await apply(nf, desiredFor(big(40_000)));
  // What a killed run leaves: the scratch set, created as the next swap will create it, half filled.
  const stale = `create dw4-office.n hash:net family inet maxelem ${maxelemFor(45_000)}\nadd dw4-office.n 192.0.2.99\n`;
  assert.equal((await fake.run("ipset", ["-exist", "restore"], { input: stale })).code, 0);
  await apply(nf, desiredFor(policy({ groups: [{ name: "office", ipv4: addresses(45_000, 40_000), ipv6: [] }] })));
  assert.deepEqual([...fake.set("dw4-office")!.members].sort(), addresses(45_000, 40_000).sort());
  assert.equal(fake.set("dw4-office.n"), undefined);
});
