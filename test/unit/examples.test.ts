/**
 * The shipped examples (examples/, in the package): each passes the real `check` (the bundled CLI,
 * as a user runs it on this machine), loads without a warning, and compiles without a warning for
 * the host it is written for: one that has the interfaces it names and runs the containers it names,
 * publishing the ports it opens. The large group file is exactly what its generator writes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { loadPolicy } from "../../src/policy/load.js";
import { formatPolicyError } from "../../src/policy/errors.js";
import type { Policy } from "../../src/policy/types.js";
import { compile } from "../../src/compile/index.js";
import type { ContainerFacts, Facts } from "../../src/facts/types.js";
import { EXAMPLES, EXAMPLE_FILES, examplePolicies } from "./example-files.js";

const CLI = path.resolve("dist/dockwall.cjs");

/**
 * The host an example is written for: every interface it names exists (with an address), Docker is
 * reachable, and each container it names runs and publishes the container-side ports it opens (on
 * host port 10000 + port).
 */
function hostFor(policy: Policy): Facts {
  const named = [...(policy.interfaces ?? []), ...policy.routes.flatMap((r) => [r.in, r.out])].filter((n) => !n.endsWith("+"));
  const containers = new Map<string, ContainerFacts>();
  for (const entry of policy.containers) {
    if (entry.container === undefined) continue;
    const c = containers.get(entry.container) ?? { id: `id-${entry.container}`, name: entry.container, running: true, published: [], addresses: ["172.17.0.9"], networks: ["bridge"] };
    for (const proto of entry.protos) {
      for (const range of entry.ports) {
        for (let port = range.from; port <= range.to; port++) c.published.push({ hostIp: "0.0.0.0", hostPort: 10000 + port, containerPort: port, proto });
      }
    }
    containers.set(entry.container, c);
  }
  return {
    docker: {
      reachable: true,
      containers: [...containers.values()],
      networks: [{ id: "n1", name: "bridge", driver: "bridge", bridge: "docker0", subnets: ["172.17.0.0/16"] }],
    },
    host: {
      interfaces: [...new Set(["lo", ...named])].map((name, i) => ({ name, addresses: name === "lo" ? ["127.0.0.1/8"] : [`192.0.2.${i}/32`] })),
      iptables: "nft",
    },
  };
}

function check(file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, "check", "-c", file], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

test("examples/ holds exactly the policies EXAMPLE_FILES lists (each one tested below)", () => {
  assert.deepEqual(examplePolicies(), EXAMPLE_FILES);
});

for (const name of EXAMPLE_FILES) {
  const file = path.join(EXAMPLES, name);

  test(`example ${name}: the real check passes (warning only about interfaces this machine lacks)`, { timeout: 60_000 }, async () => {
    const r = await check(file);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: ok \\(`));
    for (const line of r.stderr.split("\n").filter((l) => l !== "")) assert.match(line, /^warning: .*interface "[^"]+" does not exist on this host/, line);
  });

  test(`example ${name}: loads without a warning and compiles without a warning for its host`, async () => {
    const loaded = await loadPolicy(file);
    if (!loaded.ok) assert.fail(loaded.errors.map(formatPolicyError).join("\n"));
    assert.deepEqual(loaded.warnings.map(formatPolicyError), []);
    const { policy } = loaded;
    const ruleset = compile(policy, hostFor(policy));
    assert.deepEqual(ruleset.warnings, []);
    const comments = new Set([...ruleset.ipv4.chains, ...ruleset.ipv6.chains].flatMap((c) => c.rules.map((r) => r.comment)));
    // Each entry that names a container opened its port (a name that matched nothing would only warn).
    for (const entry of policy.containers.filter((e) => e.container !== undefined)) {
      for (const proto of entry.protos) assert.ok(comments.has(`container ${entry.container} ${entry.ports[0]!.from}/${proto}`), `${entry.container} ${proto}`);
    }
    for (const route of policy.routes) assert.ok(comments.has(`route ${route.in} to ${route.out}`));
    if (policy.swarm) assert.ok(comments.has("swarm 4789/udp"));
  });
}

test("the large group file is what scripts/example-group-file.mjs writes, a few thousand test addresses", async () => {
  const script = (await import(pathToFileURL(path.resolve("scripts/example-group-file.mjs")).href)) as { GROUP_FILE: string; groupFileText: () => string };
  const committed = readFileSync(script.GROUP_FILE, "utf8");
  assert.equal(committed, script.groupFileText(), "run node scripts/example-group-file.mjs and commit the result");
  const loaded = await loadPolicy(path.join(EXAMPLES, "large-group-file/dockwall.yaml"));
  assert.ok(loaded.ok);
  const group = loaded.policy.groups.find((g) => g.name === "customers")!;
  assert.ok(group.ipv4.length + group.ipv6.length >= 3000, `${group.ipv4.length + group.ipv6.length} members`);
  // Test addresses only: no real network is named in the package.
  for (const m of group.ipv4) assert.match(m, /^198\.(18|19)\./, m);
  for (const m of group.ipv6) assert.match(m, /^2001:db8:/, m);
});
