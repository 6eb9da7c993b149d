/**
 * Interface names: what no kernel or iptables would take is refused where it is written; a name the
 * host does not have, or one of Docker's bridges, refuses the compile (plan, apply, watch) with its
 * line; `check` only warns about a name this machine lacks; a wildcard for interfaces to come warns.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { loadPolicyText } from "../../src/policy/load.js";
import { formatPolicyError } from "../../src/policy/errors.js";
import { compile } from "../../src/compile/index.js";
import { RefusedOnThisHost, checkInterfaces } from "../../src/compile/interfaces.js";
import { checkInterfacesHere, compilePolicy, PolicyInvalid } from "../../src/pipeline.js";
import type { Facts } from "../../src/facts/types.js";
import type { Policy } from "../../src/policy/types.js";
import type { GatheredFacts } from "../../src/facts/index.js";
import { Netfilter } from "../../src/backends/netfilter.js";
import { applyWhenReady } from "../../src/apply/transaction.js";
import { policy as basePolicy } from "./fixtures.js";
import { dockerHost, withStore } from "./apply-fixtures.js";

const FILE = "/etc/dockwall/p.yaml";
const noFiles = async (p: string): Promise<string> => {
  throw Object.assign(new Error(`ENOENT: ${p}`), { code: "ENOENT" });
};

async function loaded(text: string) {
  return loadPolicyText(text, FILE, noFiles);
}

async function loadOk(text: string): Promise<Policy> {
  const r = await loaded(text);
  if (!r.ok) assert.fail(r.errors.map(formatPolicyError).join("\n"));
  return r.policy;
}

const FACTS: Facts = {
  docker: {
    reachable: true,
    containers: [],
    networks: [
      { id: "n1", name: "bridge", driver: "bridge", bridge: "docker0", subnets: ["172.17.0.0/16"] },
      { id: "n2", name: "appnet", driver: "bridge", bridge: "dw-app", subnets: ["172.30.0.0/24"] },
    ],
  },
  host: {
    interfaces: [
      { name: "docker0", addresses: ["172.17.0.1/16"] },
      { name: "dw-app", addresses: ["172.30.0.1/24"] },
      { name: "eth0", addresses: ["198.51.100.1/24"] },
      { name: "lo", addresses: ["127.0.0.1/8"] },
      // No address yet: getifaddrs would not list it, /proc/net/dev does.
      { name: "wg0", addresses: [] },
    ],
    iptables: "nft",
  },
};

test("names no kernel or iptables would take are errors at their line, in interfaces and in routes", async () => {
  const r = await loaded(`host:
  - port: 22
interfaces:
  - "."
  - ".."
  - "-j"
  - "!eth0"
  - "eth0:1"
  - "eth 0"
  - "a/b"
  - "wg+0"
  - "+"
  - ""
  - lo
  - "abcdefghijklmnop"
  - "abcdefghijklmno+"
  - "tab\\there"
  - "a\\"b"
  - "ëth0"
routes:
  - { in: lo, out: eth0 }
  - { in: eth0, out: "-o" }
`);
  assert.equal(r.ok, false);
  const errors = r.ok ? [] : r.errors.map(formatPolicyError);
  assert.deepEqual(errors, [
    `${FILE}:4:5: "." is not an interface name: "." and ".." are not allowed`,
    `${FILE}:5:5: ".." is not an interface name: "." and ".." are not allowed`,
    `${FILE}:6:5: "-j" is not an interface name: it must not start with '-' or '!' (iptables would read an option or a negation)`,
    `${FILE}:7:5: "!eth0" is not an interface name: it must not start with '-' or '!' (iptables would read an option or a negation)`,
    `${FILE}:8:5: "eth0:1" is not an interface name: ':' is not allowed (eth0:1 is an address label, not an interface: write the interface, eth0)`,
    `${FILE}:9:5: "eth 0" is not an interface name: only letters, digits, '_', '.', '@' and '-' are allowed (no spaces, quotes or control characters)`,
    `${FILE}:10:5: "a/b" is not an interface name: '/' is not allowed`,
    `${FILE}:11:5: "wg+0" is not an interface name: '+' is only allowed last (eth+ matches every name starting with eth)`,
    `${FILE}:12:5: "+" is not an interface name: a lone + would match every interface, lo and Docker's bridges included; leave interfaces out to mean every outside interface`,
    `${FILE}:13:5: "" is not an interface name: it is empty`,
    `${FILE}:14:5: "lo" is not an interface name: lo is always allowed (the host's own connections); it cannot be filtered or routed`,
    `${FILE}:15:5: "abcdefghijklmnop" is not an interface name: at most 15 characters, a trailing + included (it has 16)`,
    `${FILE}:16:5: "abcdefghijklmno+" is not an interface name: at most 15 characters, a trailing + included (it has 16)`,
    `${FILE}:17:5: "tab\\there" is not an interface name: only letters, digits, '_', '.', '@' and '-' are allowed (no spaces, quotes or control characters)`,
    `${FILE}:18:5: "a\\"b" is not an interface name: only letters, digits, '_', '.', '@' and '-' are allowed (no spaces, quotes or control characters)`,
    `${FILE}:19:5: "ëth0" is not an interface name: only letters, digits, '_', '.', '@' and '-' are allowed (no spaces, quotes or control characters)`,
    `${FILE}:21:11: "lo" is not an interface name: lo is always allowed (the host's own connections); it cannot be filtered or routed`,
    `${FILE}:22:22: "-o" is not an interface name: it must not start with '-' or '!' (iptables would read an option or a negation)`,
  ]);
});

test("valid names load, each once, with the place it was first written", async () => {
  const p = await loadOk(`host:
  - port: 22
interfaces: [eth0, "wg+", ens3.100, eth0, "abcdefghijklmn+", veth_x-1@]
routes:
  - { in: wg0, out: docker0 }
`);
  assert.deepEqual(p.interfaces, ["eth0", "wg+", "ens3.100", "abcdefghijklmn+", "veth_x-1@"]);
  assert.deepEqual(p.interfaceLocations?.get("eth0"), { file: FILE, line: 3, col: 14 });
  assert.deepEqual(p.interfaceLocations?.get("wg+"), { file: FILE, line: 3, col: 20 });
  assert.deepEqual(p.routes, [{ in: "wg0", out: "docker0", loc: { file: FILE, line: 5, col: 5 } }]);
});

async function refusal(text: string, facts: Facts = FACTS): Promise<string[]> {
  const p = await loadOk(text);
  try {
    compile(p, facts);
  } catch (e) {
    if (e instanceof RefusedOnThisHost) return e.errors.map(formatPolicyError);
    throw e;
  }
  return assert.fail("expected the compile to refuse");
}

test("an interface this host does not have refuses the compile, naming the line: no ruleset that filters nothing", async () => {
  assert.deepEqual(await refusal("host:\n  - port: 22\ninterfaces: [eth1]\n"), [
    `${FILE}:3:14: interface "eth1" does not exist on this host (its outside interfaces: eth0, wg0): nothing would be filtered where traffic really comes in (an interface that comes later needs a wildcard, such as wg+)`,
  ]);
  assert.deepEqual(await refusal("host:\n  - port: 22\ninterfaces:\n  - eth0\n  - nonexistent0\n"), [
    `${FILE}:5:5: interface "nonexistent0" does not exist on this host (its outside interfaces: eth0, wg0): nothing would be filtered where traffic really comes in (an interface that comes later needs a wildcard, such as wg+)`,
  ]);
});

test("Docker's bridges, by Docker's naming or by the facts, and wildcards that cover them or lo, refuse the compile", async () => {
  const errors = await refusal("host:\n  - port: 22\ninterfaces: [docker0, br-0123456789ab, dw-app, docker_gwbridge, \"d+\", \"br+\", \"dw+\", \"l+\"]\n");
  assert.equal(errors.length, 8, errors.join("\n"));
  assert.match(errors[0]!, /^\/etc\/dockwall\/p.yaml:3:14: "docker0" is one of Docker's bridges \(docker\+\): traffic from containers and the host itself is not outside traffic; list the interfaces this host is reached on from outside \(its outside interfaces: eth0, wg0\)$/);
  assert.match(errors[1]!, /"br-0123456789ab" is one of Docker's bridges \(br-\+\)/);
  assert.match(errors[2]!, /"dw-app" is one of Docker's bridges \(dw-app\)/);
  assert.match(errors[3]!, /"docker_gwbridge" is one of Docker's bridges \(docker\+\)/);
  assert.match(errors[4]!, /"d\+" also matches Docker's bridges \(docker\+, dw-app\)/);
  assert.match(errors[5]!, /"br\+" also matches Docker's bridges \(br-\+\)/);
  assert.match(errors[6]!, /"dw\+" also matches Docker's bridges \(dw-app\)/);
  assert.match(errors[7]!, /"l\+" also matches lo \(always allowed\)/);
});

test("an interface without an address, and a wildcard matching nothing yet, compile; the wildcard warns", async () => {
  const p = await loadOk("host:\n  - port: 22\ninterfaces: [eth0, wg0, \"tun+\", \"e+\"]\nroutes:\n  - { in: tun0, out: docker0 }\n");
  const ruleset = compile(p, FACTS);
  assert.deepEqual(ruleset.warnings, [
    `${FILE}:3:25: "tun+" matches no interface of this host yet: interfaces it matches are filtered when they appear`,
    `${FILE}:5:5: route: interface "tun0" does not exist on this host (yet): the route lets nothing through until it does`,
  ]);
  const inIfaces = ruleset.ipv4.chains[0]!.rules.map((r) => r.match.inIface);
  assert.deepEqual(inIfaces, ["eth0", "wg0", "tun+", "e+"]);
});

test("without interfaces: nothing to check, nothing warned", async () => {
  assert.deepEqual(compile(basePolicy(), FACTS).warnings, []);
  assert.deepEqual(checkInterfaces(basePolicy(), { interfaces: [], namedBridges: [] }, true), { errors: [], warnings: [] });
});

test("check, which may run on another machine than the target: a missing interface warns, a Docker bridge is an error", async () => {
  const here = () => [{ name: "enp0s31f6", addresses: ["192.0.2.9/24"] }, { name: "lo", addresses: [] }];
  const p = await loadOk("host:\n  - port: 22\ninterfaces: [eth0, \"wg+\"]\n");
  assert.deepEqual(checkInterfacesHere(p, here), [
    `${FILE}:3:14: interface "eth0" does not exist on this host (its outside interfaces: enp0s31f6): fine if the policy is for another host; plan and apply refuse it on a host without it`,
    `${FILE}:3:20: "wg+" matches no interface of this host yet: interfaces it matches are filtered when they appear`,
  ]);
  const bridge = await loadOk("host:\n  - port: 22\ninterfaces: [docker0]\n");
  assert.throws(() => checkInterfacesHere(bridge, here), (e: unknown) => e instanceof PolicyInvalid && /3:14: "docker0" is one of Docker's bridges/.test(e.errors[0]!));
  const unreadable = () => {
    throw new Error("cannot list this host's network interfaces: /proc/net/dev: ENOENT");
  };
  assert.deepEqual(checkInterfacesHere(p, unreadable), [
    "cannot list this host's network interfaces: /proc/net/dev: ENOENT: the interfaces the policy names were not compared with this host's",
  ]);
});

test("apply of a policy naming an interface the host lacks: refused with its line, the previous rules and record stay", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-interfaces-"));
  try {
    const file = path.join(dir, "dockwall.yaml");
    const gathered: GatheredFacts = { facts: FACTS, warnings: [] };
    const fake = dockerHost();
    const nf = new Netfilter(fake, "nft");
    await withStore(async (store, lock) => {
      const applyFile = () => applyWhenReady(Promise.resolve(nf), compilePolicy(file, fake, undefined, Promise.resolve(gathered)), store, lock, file);
      await writeFile(file, "interfaces: [eth0]\nhost:\n  - port: 22\n");
      assert.equal((await applyFile()).changed, true);
      const before = fake.snapshot();
      const recorded = await store.current();
      await writeFile(file, "interfaces: [eth1]\nhost:\n  - port: [22, 9100]\n");
      await assert.rejects(applyFile(), (e: unknown) => e instanceof PolicyInvalid && e.errors.length === 1 && e.errors[0]!.startsWith(`${file}:1:14: interface "eth1" does not exist on this host`));
      assert.deepEqual(fake.snapshot(), before);
      assert.deepEqual(await store.current(), recorded);
      assert.equal(await store.pending(), undefined);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
