/**
 * Docker 28's iptables layout (DOCKER-FORWARD, DOCKER-BRIDGE, DOCKER-CT, DOCKER-INTERNAL, raw-table
 * drops; docker-layout.ts) under dockwall: the same placement holds, Docker's rules are never
 * touched, remove leaves exactly Docker's layout. Docker's nftables back end (29) is accepted when
 * dockwall writes through iptables-nft, and refused through iptables-legacy or with no iptables.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeNetfilter } from "./fake-netfilter.js";
import { DOCKER_28_SAVE } from "./docker-layout.js";
import { Netfilter } from "../../src/backends/netfilter.js";
import { apply } from "../../src/apply/apply.js";
import { emptyState, render } from "../../src/backends/rendered.js";
import { compile } from "../../src/compile/index.js";
import { compilePolicy, UnsupportedHost } from "../../src/pipeline.js";
import { commandOnPath, readHostFacts } from "../../src/facts/host.js";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Facts } from "../../src/facts/types.js";
import { policy as basePolicy } from "./fixtures.js";
import type { Runner } from "../../src/exec/runner.js";

const policy = basePolicy({ groups: [{ name: "office", ipv4: ["203.0.113.0/24"], ipv6: ["2001:db8:1::/48"] }] });

/** Docker 28 as the Engine API reports it: firewall back end iptables, bridge1 named by option. */
const facts: Facts = {
  docker: {
    reachable: true,
    version: "28.3.0",
    firewallBackend: "iptables",
    containers: [
      {
        id: "c1",
        name: "c1",
        running: true,
        published: [
          { hostIp: "0.0.0.0", hostPort: 8080, containerPort: 80, proto: "tcp" },
          { hostIp: "127.0.0.1", hostPort: 8081, containerPort: 81, proto: "tcp" },
        ],
        addresses: ["192.0.2.2"],
        networks: ["bridge1"],
      },
    ],
    networks: [{ id: "n1", name: "bridge1", driver: "bridge", bridge: "bridge1", subnets: ["192.0.2.0/24"] }],
  },
  host: { interfaces: [], iptables: "nft" },
};

/** Every line of the save that is Docker's: not dockwall's, and not the mangle table (Docker writes none there). */
function dockerPart(fake: FakeNetfilter): string {
  let table = "";
  return fake
    .saveText("ipv4")
    .split("\n")
    .filter((l) => {
      if (l.startsWith("*")) table = l.slice(1);
      return table !== "mangle" && /^[*:-]/.test(l) && !/DOCKWALL/.test(l);
    })
    .join("\n");
}

test("on Docker 28's layout dockwall's jumps come first and Docker's rules stay as they are", async () => {
  const fake = new FakeNetfilter();
  fake.loadSave("ipv4", DOCKER_28_SAVE);
  const docker = dockerPart(fake);
  const nf = new Netfilter(fake, "nft");
  const desired = render(compile(policy, facts));
  assert.equal((await apply(nf, desired)).changed, true);
  assert.equal(dockerPart(fake), docker, "no rule or chain of Docker's changed, raw table included");
  assert.equal(fake.rules("ipv4", "filter", "INPUT")[0], "-m comment --comment dockwall -j DOCKWALL-INPUT");
  assert.equal(fake.rules("ipv4", "mangle", "FORWARD")[0], "-m comment --comment dockwall -j DOCKWALL-FORWARD");
  // Docker 28's FORWARD is only jumps to DOCKER-USER and DOCKER-FORWARD: dockwall adds nothing there.
  assert.deepEqual(fake.rules("ipv4", "filter", "FORWARD"), ["-j DOCKER-USER", "-j DOCKER-FORWARD"]);
  assert.deepEqual(fake.rules("ipv4", "filter", "DOCKER-USER"), []);
  // Docker's bridge named by option is let through, like docker0 and br-*.
  assert.ok(fake.rules("ipv4", "mangle", "DOCKWALL-FORWARD").some((r) => r.startsWith("-i bridge1 ")));
  assert.equal((await apply(nf, desired)).changed, false, "a re-apply is a no-op");
  await apply(nf, emptyState());
  assert.equal(fake.saveText("ipv4").includes("DOCKWALL"), false);
  assert.equal(dockerPart(fake), docker, "remove leaves exactly Docker's layout");
});

/** A runner that records every command and runs none: the refusals must come before any. */
function refusingRunner(calls: string[]): Runner {
  return {
    run: async (cmd) => {
      calls.push(cmd);
      throw new Error(`nothing may run: ${cmd}`);
    },
  };
}

const nftablesDocker = (host: Facts["host"]) => ({ facts: { ...facts, docker: { ...facts.docker, version: "29.0.1", firewallBackend: "nftables" }, host }, warnings: [] });

test("Docker's nftables back end with iptables-legacy is refused before anything is read from the kernel", async () => {
  const calls: string[] = [];
  await assert.rejects(
    compilePolicy("/nonexistent/dockwall.yaml", refusingRunner(calls), undefined, Promise.resolve(nftablesDocker({ interfaces: [], iptables: "legacy" }))),
    (e: unknown) => e instanceof UnsupportedHost && /nftables firewall back end \(nftables\) and this host's iptables is iptables-legacy/.test(e.message),
  );
  assert.deepEqual(calls, []);
});

test("Docker's nftables back end on a host without iptables is refused, saying so", async () => {
  const calls: string[] = [];
  await assert.rejects(
    compilePolicy("/nonexistent/dockwall.yaml", refusingRunner(calls), undefined, Promise.resolve(nftablesDocker({ interfaces: [], iptables: "nft", iptablesMissing: true }))),
    (e: unknown) => e instanceof UnsupportedHost && /this host has no iptables \(iptables-nft-restore not found\)/.test(e.message),
  );
  assert.deepEqual(calls, []);
});

test("Docker's nftables back end with iptables-nft compiles: dockwall's drops are final beside Docker's tables", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-d29-"));
  try {
    const file = path.join(dir, "dockwall.yaml");
    await writeFile(file, "containers:\n  - port: 8080\n    from: [203.0.113.7]\n");
    const compiled = await compilePolicy(file, refusingRunner([]), undefined, Promise.resolve(nftablesDocker({ interfaces: [], iptables: "nft" })));
    assert.equal(compiled.netfilter.variant, "nft");
    const forward = compiled.desired.ipv4.chains.find((c) => c.table === "mangle" && c.name === "DOCKWALL-FORWARD-OUTSIDE");
    assert.ok(forward && forward.rules.some((r) => r.startsWith("-s 203.0.113.7/32 ")), "dockwall's FORWARD filter is compiled for Docker 29's nftables host");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("the host facts say when the variant's iptables-restore is not on PATH, without starting a process", async () => {
  const runner: Runner = { run: async (cmd) => (cmd === "iptables" ? { code: 0, stdout: "iptables v1.8.9 (nf_tables)\n", stderr: "" } : { code: 1, stdout: "", stderr: "" }) };
  const looked: string[] = [];
  const without = await readHostFacts(runner, (c) => (looked.push(c), false));
  assert.equal(without.host.iptablesMissing, true);
  assert.deepEqual(looked, ["iptables-nft-restore"]);
  const withIt = await readHostFacts(runner, () => true);
  assert.equal(withIt.host.iptablesMissing, undefined);
  assert.equal(commandOnPath("sh", "/nonexistent:/bin:/usr/bin"), true);
  assert.equal(commandOnPath("no-such-command-dockwall", "/bin:/usr/bin"), false);
});
