/**
 * dockwall as a Swarm global service (deploy/swarm/dockwall-stack.yml, deployed as users deploy it,
 * with `docker stack deploy`) on the lab's three-node Docker 20.10 swarm (swarm-lab.ts), in the
 * dockwall image built from the machine's files (dockwall-image.ts):
 *   - every node applies the policy, given as a Docker config: the rules in each node's kernel (host
 *     side `status --expect-policy`, which reads the kernel) and the stranger's probes of the ports
 *     the swarm's own service publishes in host mode;
 *   - a node that joins later gets the policy by itself;
 *   - a new policy is a `docker service update --config-rm/--config-add`, rolled out one node at a
 *     time (update_config), and reaches every node;
 *   - a policy that does not apply (valid YAML naming an unknown group) turns the first node's task
 *     unhealthy (the health check: `status --expect-policy`), the update stops there and rolls back,
 *     and every node holds the previous policy;
 *   - a host's own `dockwall watch` (as the unit from `dockwall install` runs it) beside the service's
 *     task refuses to start and changes nothing.
 * One swarm for the file; the tests run in order, each leaving the service converged.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { SwarmLab, SwarmNode, swarmPolicyGroups } from "./swarm-lab.js";
import { probeOutcomes } from "./checks.js";
import { REPO_DIR, sleep, type ProbeSpec } from "./lab.js";
import { DOCKWALL_IMAGE, importDockwallImage, removeDockwallRootfs } from "./dockwall-image.js";
import { ProcessRunner } from "../../src/exec/runner.js";
import type { ClientName } from "./expectations.js";

const runner = new ProcessRunner();
const STACK = "dockwall";
const SERVICE = `${STACK}_dockwall`;
const TARGET = "/etc/dockwall/dockwall.yaml";
/** Inside each node's dockerd mount namespace (a private tmpfs, swarm-lab.ts): one path on every node for its own socket and state. */
const NODE_DIR = "/var/run/docker/dwsvc";

/** A policy whose api port (8001) is for `api`: admins only, or everyone. */
const policy = (api: string) => `# dockwall swarm service lab policy
${swarmPolicyGroups()}containers:
  - port: 8080
${api}
swarm:
  peers: [nodes]
`;
const ADMINS_ONLY = policy("  - port: 8001\n    from: [admins]");
const PUBLIC_API = policy("  - port: 8001");
/** Valid YAML, and no policy: the group is not defined. */
const UNKNOWN_GROUP = policy("  - port: 8001\n    from: [contractors]");

describe("dockwall as a Swarm global service on a three-node Docker 20.10 swarm", () => {
  let swarm: SwarmLab;
  const figures: string[] = [];
  const started = Date.now();
  const files: Record<string, string> = {};

  before(async () => {
    swarm = await SwarmLab.create();
    await swarm.formSwarm();
    await swarm.deployService();
    for (const node of swarm.nodes) {
      await importDockwallImage(node.socket);
      await sameBindPaths(node);
    }
    for (const [name, text] of Object.entries({ "admins-only": ADMINS_ONLY, "public-api": PUBLIC_API, "unknown-group": UNKNOWN_GROUP })) {
      files[name] = path.join(swarm.workDir, `${name}.yaml`);
      await writeFile(files[name], text);
    }
    // The third node joins only once the service runs (the join test).
    await swarm.leave(swarm.nodes[2]!);
  });
  after(async () => {
    process.stdout.write(`# swarm service figures: ${figures.join("; ")}; the file ran ${Date.now() - started} ms\n`);
    await swarm?.destroy();
    await removeDockwallRootfs();
  });

  /**
   * The service's bind mounts name one path for every node; each node's socket and state directory
   * are in its own folder. Bound into that node's dockerd mount namespace only (its /var/run/docker
   * is a private tmpfs), so the same path is each node's own, and nothing shows on the machine.
   */
  async function sameBindPaths(node: SwarmNode): Promise<void> {
    const pid = (await readFile(path.join(node.workDir, "docker.pid"), "utf8")).trim();
    const script = [
      `mkdir -p ${NODE_DIR}/state && touch ${NODE_DIR}/docker.sock && mkdir -m 700 -p "$2"`,
      `mount --bind "$1" ${NODE_DIR}/docker.sock && mount --bind "$2" ${NODE_DIR}/state`,
    ].join(" && ");
    const r = await runner.run("nsenter", ["-t", pid, "-m", "sh", "-c", script, "sh", node.socket, node.stateDir]);
    assert.equal(r.code, 0, `node${node.index}: bind mounts: ${r.stderr}`);
  }

  const members = () => swarm.nodes.filter((n) => n.swarmId !== "");

  /** The node's kernel holds the rules of this policy file's content, in sync, not DEGRADED (read on the host, beside the service). */
  const holds = async (node: SwarmNode, file: string) => (await node.dockwall(["status", "--expect-policy", file])).code === 0;

  const waitHolds = (nodes: SwarmNode[], file: string) =>
    Promise.all(nodes.map((n) => swarm.waitFor(`node${n.index} holding ${path.basename(file)}`, () => holds(n, file), 120_000)));

  const updateState = async () => (await swarm.manager.dockerText(["service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", SERVICE])).trim();

  /** The stranger's and the admin's probes of the api port (8001) and web (8080) on these nodes: what differs from `apiOpenTo`. */
  const probeMismatches = async (nodes: SwarmNode[], apiOpenTo: ClientName[]) => {
    const specs: (ProbeSpec & { label: string; open: boolean })[] = [];
    for (const node of nodes) {
      for (const client of [swarm.clients.stranger, swarm.clients.admin]) {
        for (const [port, open] of [[8080, true], [8001, apiOpenTo.includes(client.name)]] as const) {
          specs.push({ client, family: "ipv4", proto: "tcp", port, dst: node.address.ipv4, label: `node${node.index} ${client.name} -> ${port}`, open });
        }
      }
      specs.push({ client: swarm.clients.stranger, family: "ipv6", proto: "tcp", port: 8001, dst: node.address.ipv6, label: `node${node.index} stranger ipv6 -> 8001`, open: apiOpenTo.includes("stranger") });
    }
    const results = await probeOutcomes(swarm.manager, specs, (i) => specs[i]!.open);
    return specs.flatMap((s, i) => (results[i] === s.open ? [] : [`${s.label}: expected ${s.open ? "open" : "closed"}, was ${results[i] ? "open" : "closed"}`]));
  };

  /** The tasks of the service given this config: on which node (index), and why each ended. */
  const tasksGiven = async (config: string) => {
    const ids = (await swarm.manager.dockerText(["service", "ps", "-q", SERVICE])).split(/\s+/).filter(Boolean);
    const lines = (await swarm.manager.dockerText(["inspect", "-f", "{{.ID}}\t{{.NodeID}}\t{{range .Spec.ContainerSpec.Configs}}{{.ConfigName}}{{end}}\t{{.Status.State}}: {{.Status.Message}} {{.Status.Err}}", ...ids])).split("\n");
    return lines
      .map((l) => l.split("\t"))
      .filter(([, , name]) => name === config)
      .map(([id, nodeId, , status]) => ({ id: id!, node: swarm.nodes.find((n) => n.swarmId === nodeId), status: status ?? "" }));
  };

  /** What Docker's health check made of a task's container on its node (its container is kept with the task history). */
  const taskHealth = async (task: { id: string; node?: SwarmNode }) => {
    if (!task.node) return "no node";
    const ids = (await task.node.dockerText(["ps", "-aq", "--filter", `label=com.docker.swarm.task.id=${task.id}`])).split(/\s+/).filter(Boolean);
    if (ids.length === 0) return "no container";
    return task.node.dockerText(["inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{end}} exit {{.State.ExitCode}}", ...ids]);
  };

  const updateConfig = async (from: string, to: string) =>
    swarm.manager.dockerText(["service", "update", "--detach", "--config-rm", from, "--config-add", `source=${to},target=${TARGET},mode=0444`, SERVICE]);

  it("deployed with docker stack deploy as a global service, every node applies the policy it was given", async () => {
    const t0 = Date.now();
    const env = {
      DOCKER_HOST: `unix://${swarm.manager.socket}`,
      DOCKWALL_IMAGE,
      DOCKWALL_POLICY: files["admins-only"]!,
      DOCKWALL_POLICY_CONFIG: "policy-admins-only",
      DOCKER_SOCKET: `${NODE_DIR}/docker.sock`,
      DOCKWALL_STATE: `${NODE_DIR}/state`,
      // Short for the lab (2 cores, three nodes): every health check is a `dockwall status`.
      DOCKWALL_HEALTH_INTERVAL: "2s",
      DOCKWALL_HEALTH_START: "2s",
      DOCKWALL_UPDATE_DELAY: "2s",
      DOCKWALL_MONITOR: "10s",
    };
    const r = await runner.run("docker", ["stack", "deploy", "--resolve-image", "never", "-c", path.join(REPO_DIR, "deploy/swarm/dockwall-stack.yml"), STACK], { env });
    assert.equal(r.code, 0, `docker stack deploy: ${r.stderr}`);
    const spec = await swarm.manager.dockerText(["service", "inspect", "-f", "{{.Spec.Mode.Global}} {{.Spec.TaskTemplate.ContainerSpec.CapabilityAdd}} {{range .Spec.TaskTemplate.Networks}}{{.Target}}{{end}}", SERVICE]);
    assert.match(spec, /^\{\} \[(CAP_)?NET_ADMIN (CAP_)?NET_RAW\] \S+$/, `global, NET_ADMIN and NET_RAW, one network: ${spec}`);
    await waitHolds(members(), files["admins-only"]!);
    figures.push(`stack deploy until both nodes hold the policy: ${Date.now() - t0} ms`);
    assert.deepEqual(await probeMismatches(members(), ["admin"]), []);
  });

  it("a node that joins later gets the policy by itself", async () => {
    const node = swarm.nodes[2]!;
    assert.equal(await holds(node, files["admins-only"]!), false, "before it joins, node3's kernel does not hold the policy");
    const t0 = Date.now();
    await swarm.join(node);
    await waitHolds([node], files["admins-only"]!);
    figures.push(`join until the policy is in node3's kernel: ${Date.now() - t0} ms`);
    await swarm.waitForService([node]);
    assert.deepEqual(await probeMismatches([node], ["admin"]), []);
  });

  it("a new policy, swapped in by docker service update, is rolled out to every node", async () => {
    await swarm.manager.dockerText(["config", "create", "policy-public-api", files["public-api"]!]);
    const t0 = Date.now();
    await updateConfig("policy-admins-only", "policy-public-api");
    await waitHolds(swarm.nodes, files["public-api"]!);
    figures.push(`service update until every node holds the new policy: ${Date.now() - t0} ms`);
    await swarm.waitFor("the update completed", async () => (await updateState()) === "completed", 120_000);
    assert.deepEqual(await probeMismatches(swarm.nodes, ["stranger", "admin"]), []);
  });

  it("a policy that does not apply stops on the first node and rolls back: every node holds the previous policy", async () => {
    await swarm.manager.dockerText(["config", "create", "policy-unknown-group", files["unknown-group"]!]);
    const t0 = Date.now();
    await updateConfig("policy-public-api", "policy-unknown-group");
    await swarm.waitFor("the update rolled back", async () => ["rollback_completed", "rollback_paused"].includes(await updateState()), 180_000);
    figures.push(`bad policy until rolled back: ${Date.now() - t0} ms`);
    assert.equal(await updateState(), "rollback_completed");
    const given = await tasksGiven("policy-unknown-group");
    const health = await Promise.all(given.map(taskHealth));
    const described = given.map((t, i) => `node${t.node?.index} ${t.status.trim()} (container: ${health[i]})`);
    figures.push(`the bad policy's tasks: ${described.join(", ")}`);
    assert.equal(new Set(given.map((t) => t.node)).size, 1, `only the first node was given the bad policy: ${described.join(", ")}`);
    assert.ok(given.every((t) => !/^running/.test(t.status)), `none of its tasks still runs: ${described.join(", ")}`);
    assert.ok(health.some((h) => /^unhealthy/.test(h)), `the health check turned its container unhealthy: ${described.join(", ")}`);
    await waitHolds(swarm.nodes, files["public-api"]!);
    assert.deepEqual(await probeMismatches(swarm.nodes, ["stranger", "admin"]), []);
  });

  it("a host's own dockwall watch beside the service's task refuses to start and changes nothing", async () => {
    const node = swarm.nodes[1]!;
    const before = await node.hostIptablesSave("ipv4");
    // The admins-only policy: had it applied, 8001 would close to the stranger.
    const watch = node.startDockwall(["watch", "-c", files["admins-only"]!]);
    // A deadline, not a measurement: a watch that does not refuse runs until it is ended (by pid, in destroy).
    const code = await Promise.race([watch.exit, sleep(30_000).then(() => "still running")]);
    assert.equal(code, 2, `the host's watch exits 2: ${watch.stderr.join("")} ${JSON.stringify(watch.lines)}`);
    assert.ok(watch.lines.some((l) => l.event === "not starting" && /another dockwall watch holds .*watch\.lock/.test(String(l.reason))), JSON.stringify(watch.lines));
    assert.equal(withoutCounters(await node.hostIptablesSave("ipv4")), withoutCounters(before), "the kernel is as the service left it");
    assert.equal(await holds(node, files["public-api"]!), true);
    assert.deepEqual(await probeMismatches([node], ["stranger", "admin"]), []);
  });
});

/** iptables-save without its comment lines (time stamps) and the built-in chains' packet counters. */
function withoutCounters(save: string): string {
  return save.split("\n").filter((l) => !l.startsWith("#")).map((l) => l.replace(/ \[\d+:\d+\]$/, "")).join("\n");
}
