/**
 * src/policy/reference.ts against the loader: the keys at every level are the ones the loader
 * takes (read from its "expected one of" message), the defaults are what it fills in, the choices
 * what it accepts, and the example loads. A key added to load.ts without its description fails here.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { loadPolicy, loadPolicyText } from "../../src/policy/load.js";
import { POLICY_EXAMPLE, POLICY_KEYS, type PolicyKey } from "../../src/policy/reference.js";

const OPEN = "host: [{ port: 22 }]\n";
const noFiles = async (): Promise<string> => {
  throw new Error("no file in this test");
};

async function errors(text: string): Promise<string[]> {
  const r = await loadPolicyText(text, "/p.yaml", noFiles);
  return r.ok ? [] : r.errors.map((e) => e.message);
}

/** The keys the loader takes where `zz` is written, from its message for the unknown key. */
async function loaderKeys(text: string): Promise<string[]> {
  const message = (await errors(text)).find((m) => m.startsWith(`unknown key "zz"`));
  assert.ok(message, `an unknown-key error for ${text}`);
  return message.replace(/^.*expected one of: /, "").split(", ");
}

function keysOf(name?: string): string[] {
  const keys = name === undefined ? POLICY_KEYS : POLICY_KEYS.find((k) => k.key === name)?.keys ?? [];
  return keys.map((k) => k.key);
}

function key(...names: string[]): PolicyKey {
  let keys: readonly PolicyKey[] = POLICY_KEYS;
  let found: PolicyKey | undefined;
  for (const n of names) {
    found = keys.find((k) => k.key === n);
    assert.ok(found, names.join(" "));
    keys = found.keys ?? [];
  }
  return found!;
}

test("every level of the reference names the keys the loader takes, no more and no fewer", async () => {
  const levels: [string | undefined, string][] = [
    [undefined, `zz: 1\n${OPEN}`],
    ["host", "host: [{ port: 22, zz: 1 }]\n"],
    ["containers", `containers: [{ port: 80, zz: 1 }]\n${OPEN}`],
    ["routes", `routes: [{ in: eth0, out: eth1, zz: 1 }]\n${OPEN}`],
    ["swarm", `swarm: { peers: [any], zz: 1 }\n${OPEN}`],
    ["log", `log: { zz: 1 }\n${OPEN}`],
    ["groups", `groups: { g: { file: x, zz: 1 } }\n${OPEN}`],
  ];
  for (const [name, text] of levels) assert.deepEqual(keysOf(name).sort(), (await loaderKeys(text)).sort(), name ?? "top level");
  const described = POLICY_KEYS.filter((k) => k.keys !== undefined).map((k) => k.key);
  assert.deepEqual(described.sort(), levels.flatMap(([n]) => (n ? [n] : [])).sort(), "every level with keys is checked above");
});

test("the defaults the reference states are the ones the loader fills in", async () => {
  const r = await loadPolicyText(OPEN, "/p.yaml", noFiles);
  assert.ok(r.ok);
  const p = r.policy;
  assert.equal(p.icmp, key("icmp").default);
  assert.equal(p.default, key("default").default);
  assert.equal(String(p.log.drops), key("log", "drops").default);
  assert.equal(p.log.rate, key("log", "rate").default);
  assert.deepEqual(p.host[0]!.protos, [key("host", "proto").default]);
  assert.deepEqual(p.host[0]!.from, [{ kind: key("host", "from").default }]);
  assert.equal(p.interfaces, undefined, "interfaces left out: every outside interface");
  assert.ok(key("host", "port").required && key("routes", "in").required && key("swarm", "peers").required);
});

test("the choices the reference lists are the ones the loader accepts", async () => {
  assert.ok((await errors(`icmp: x\n${OPEN}`)).includes(`icmp must be ${key("icmp").values!.join(" or ")}, not "x"`));
  assert.ok((await errors(`default: x\n${OPEN}`)).includes(`default must be ${key("default").values!.join(" or ")}, not "x"`));
  for (const v of [...key("icmp").values!.map((x) => `icmp: ${x}`), ...key("default").values!.map((x) => `default: ${x}`), ...key("log", "drops").values!.map((x) => `log: { drops: ${x} }`)]) {
    assert.deepEqual(await errors(`${v}\n${OPEN}`), [], v);
  }
  assert.deepEqual(await errors(`host: [{ port: 22, proto: [${key("host", "proto").values!.join(", ")}] }]\n`), []);
});

test("the example of dockwall.yaml(5) loads", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-reference-"));
  try {
    await writeFile(path.join(dir, "dockwall.yaml"), POLICY_EXAMPLE);
    await writeFile(path.join(dir, "admins.list"), "198.51.100.7\n2001:db8:2::/48\n");
    const r = await loadPolicy(path.join(dir, "dockwall.yaml"));
    assert.ok(r.ok, JSON.stringify(r.ok ? [] : r.errors));
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(POLICY_KEYS.map((k) => k.key).filter((k) => !new RegExp(`^${k}:`, "m").test(POLICY_EXAMPLE)), [], "every top-level key is in the example");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
