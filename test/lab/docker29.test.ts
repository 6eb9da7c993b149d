/**
 * dockwall beside the Docker 29 stand-in (docker29.ts), both of Docker 29's firewall back ends,
 * with real packets: Docker alone lets everyone reach the published port; under dockwall's policy
 * the probe matrix (three clients, IPv4 and IPv6, a published port by host port with a per-source
 * opening, direct routing to a container address, a container started after the apply) matches the
 * policy. On both back ends the tracer agrees with the kernel on every probe (on nftables it reads
 * Docker's docker-bridges tables from `nft -j list ruleset`), and audit and explain answer. nftables
 * back end: Docker's own accept for the published port is on the path and counted, and still cannot
 * undo dockwall's drop for the stranger, not even when Docker's forward chain runs before dockwall's.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { Docker29Lab, LATE, WEB, type FirewallBackend } from "./docker29.js";
import { dockwallOk, mismatches, probeMatrix } from "./checks.js";
import { disagreements } from "./tracer-agreement.js";
import { ADMINS_LIST, type ClientName, type Target } from "./expectations.js";
import { HOST_ADDR } from "./lab.js";
import { engineGet } from "../../src/facts/engine-api.js";

/** The lab policy (expectations.ts) adapted to the scenario: web's 80 is published as 8080, the late container's as 8081. */
const POLICY = `# dockwall lab policy, Docker 29 stand-in
groups:
  office: [198.18.0.8/29, "2001:db8:ff::10/124"]
  admins: { file: admins.list }
trusted: [office]
host:
  - port: 22            # "ssh" from anyone
  - port: 9100          # metrics, admins only
    from: [admins]
containers:
  - port: 8080          # web (8080 -> 80), by host port: admins only
    from: [admins]
  - port: 8081          # late (8081 -> 80): public; the container starts after the first apply
log: { drops: true, rate: 10/minute }
`;

const ALL: ClientName[] = ["trusted", "stranger", "admin"];

const TARGETS: Target[] = [
  { what: "host ssh 22 (public)", proto: "tcp", port: 22, allowed: ALL },
  { what: "host metrics 9100 (admins)", proto: "tcp", port: 9100, allowed: ["trusted", "admin"] },
  { what: "web 8080->80 (admins)", proto: "tcp", port: 8080, allowed: ["trusted", "admin"] },
  { what: "web 80 at its address (direct routing)", proto: "tcp", port: 80, allowed: [], container: "web" },
  { what: "web unpublished 9000 at its address (direct routing)", proto: "tcp", port: 9000, allowed: [], container: "web" },
];

const LATE_TARGETS: Target[] = [
  { what: "late 8081->80 (public, started after apply)", proto: "tcp", port: 8081, allowed: ALL },
  { what: "late 80 at its address (direct routing)", proto: "tcp", port: 80, allowed: [], container: "late" },
];

/** Docker alone: its published port and the host's ports to everyone; direct routing stopped by Docker's own raw drop. */
const DOCKER_ALONE: Target[] = [
  { what: "host metrics 9100", proto: "tcp", port: 9100, allowed: ALL },
  { what: "web 8080->80", proto: "tcp", port: 8080, allowed: ALL },
  { what: "web 80 at its address", proto: "tcp", port: 80, allowed: [], container: "web" },
];

async function writePolicy(dir: string): Promise<string> {
  await writeFile(path.join(dir, "admins.list"), ADMINS_LIST);
  const file = path.join(dir, "dockwall.yaml");
  await writeFile(file, POLICY);
  return file;
}

/** The packet counter of the first rule in `nft list ruleset` output matching `pattern`, in the table `table`. */
function nftCounter(ruleset: string, table: string, pattern: RegExp): number {
  const start = ruleset.indexOf(`table ${table} {`);
  assert.ok(start >= 0, `no table ${table} in the ruleset`);
  const body = ruleset.slice(start, ruleset.indexOf("\n}", start));
  const line = body.split("\n").find((l) => pattern.test(l));
  assert.ok(line, `no rule ${pattern} in table ${table}`);
  return Number(/counter packets (\d+)/.exec(line)?.[1] ?? NaN);
}

for (const backend of ["iptables", "nftables"] as FirewallBackend[]) {
  test(`Docker 29 stand-in, ${backend} back end: the probe matrix holds under dockwall, a late container included`, async (t) => {
    const lab = await Docker29Lab.build(backend);
    try {
      // The stand-in answers as Docker 29 does, to dockwall's reads and to an old client.
      const endpoint = { socketPath: lab.socket };
      const info = await engineGet<{ ServerVersion: string; FirewallBackend: { Driver: string } }>(endpoint, "/info");
      assert.match(info.ServerVersion, /^29\./);
      assert.equal(info.FirewallBackend.Driver, backend);
      const listed = await engineGet<Record<string, unknown>[]>(endpoint, "/containers/json?all=1");
      assert.equal((listed[0]!.NetworkSettings as Record<string, unknown>).IPAddress, undefined, "API 1.52: no top-level IPAddress");
      await assert.rejects(engineGet(endpoint, "/v1.41/version"), /HTTP 400: .*too old. Minimum supported API version is 1.44/);

      // Docker alone: its rules as loaded let everyone reach the published port, over both families.
      assert.deepEqual(await mismatches(lab, DOCKER_ALONE), [], "Docker 29's rules alone");
      // The tracer sees what Docker's rules alone decide: its DNAT and its drop of direct routing (on nftables, in docker-bridges only).
      const alone = await disagreements(lab, DOCKER_ALONE);
      assert.deepEqual(alone.wrong, [], `the tracer and the kernel, Docker's rules alone, over ${alone.compared} probes`);
      t.diagnostic(`Docker alone: tracer agreed with the kernel on ${alone.compared} probes`);

      const policy = await writePolicy(lab.workDir);
      assert.match(await dockwallOk(lab, ["apply", "-c", policy]), /applied/);
      assert.deepEqual(await mismatches(lab, TARGETS), [], `dockwall beside Docker 29 (${backend})`);
      t.diagnostic(`probe matrix: ${(await probeMatrix(lab, TARGETS)).length} probes matched the policy`);

      const agreement = await disagreements(lab, TARGETS);
      assert.deepEqual(agreement.wrong, [], `the tracer and the kernel, over ${agreement.compared} probes`);
      t.diagnostic(`tracer agreed with the kernel on ${agreement.compared} probes`);

      // audit and explain answer on either back end: the published port is the admins' (not unknown, exit 4).
      const audited = await lab.dockwall(["audit", "--json", "-c", policy]);
      assert.notEqual(audited.code, 4, `audit could not tell (${backend}):\n${audited.stdout}\n${audited.stderr}`);
      const rows = (JSON.parse(audited.stdout) as { rows: { target: { kind: string; port: number }; reach: { who: string } }[] }).rows;
      const published = rows.filter((r) => r.target.kind === "container");
      assert.ok(published.length > 0 && published.every((r) => r.reach.who === "some"), `the published port is the admins' (${backend}): ${JSON.stringify(published)}`);
      for (const [client, code] of [[lab.clients.stranger, 3], [lab.clients.admin, 0]] as const) {
        for (const family of ["ipv4", "ipv6"] as const) {
          const r = await lab.dockwall(["explain", client[family], "tcp/8080", "--dst", HOST_ADDR[family], "--in", "eth0"]);
          assert.equal(r.code, code, `explain ${client[family]} tcp/8080 (${backend}):\n${r.stdout}\n${r.stderr}`);
          if (backend === "nftables" && code === 0) assert.match(r.stdout, /docker-bridges filter-forward-in__bridge1/);
        }
      }

      if (backend === "nftables") {
        // Docker's own accept for the published port is on the path (admin counted through it), and the
        // stranger's connection never reaches it: dockwall's drop is final.
        const dockerAccept = new RegExp(`ip daddr ${WEB.ipv4.replace(/\./g, "\\.")} tcp dport 80 counter packets`);
        const before = nftCounter(await lab.nftRuleset(), "ip docker-bridges", dockerAccept);
        assert.equal(await lab.probe(lab.clients.admin, "ipv4", "tcp", 8080), true);
        const afterAdmin = nftCounter(await lab.nftRuleset(), "ip docker-bridges", dockerAccept);
        assert.ok(afterAdmin > before, `Docker's accept counted the admin's connection (${before} -> ${afterAdmin})`);
        assert.equal(await lab.probe(lab.clients.stranger, "ipv4", "tcp", 8080), false);
        assert.equal(nftCounter(await lab.nftRuleset(), "ip docker-bridges", dockerAccept), afterAdmin, "the stranger's SYN never reached Docker's accept");

        // Whatever the priorities: Docker's forward chain moved before dockwall's (mangle, -150); its
        // accept then runs first and still cannot undo dockwall's drop.
        await lab.reloadDockerTable((t) => t.replace("type filter hook forward priority filter;", "type filter hook forward priority -200;"));
        const early = nftCounter(await lab.nftRuleset(), "ip docker-bridges", dockerAccept);
        assert.equal(await lab.probe(lab.clients.stranger, "ipv4", "tcp", 8080), false, "stranger after Docker's accept, IPv4");
        assert.equal(await lab.probe(lab.clients.stranger, "ipv6", "tcp", 8080), false, "stranger after Docker's accept, IPv6");
        assert.ok(nftCounter(await lab.nftRuleset(), "ip docker-bridges", dockerAccept) > early, "Docker's accept saw the stranger's SYN first");
        assert.equal(await lab.probe(lab.clients.admin, "ipv6", "tcp", 8080), true, "the admin still gets through");
        t.diagnostic(`Docker's accept counter: ${before} -> ${afterAdmin} (admin) -> ${afterAdmin} (stranger, dockwall first) -> ${early} -> ${nftCounter(await lab.nftRuleset(), "ip docker-bridges", dockerAccept)} (stranger, Docker first)`);
        await lab.reloadDockerTable((t) => t);
      }

      // A container started after the apply, as Docker 29 starts one; dockwall applies again.
      await lab.startLateContainer(LATE);
      await dockwallOk(lab, ["apply", "-c", policy]);
      assert.deepEqual(await mismatches(lab, [...TARGETS, ...LATE_TARGETS]), [], `after the late container (${backend})`);
      const after = await disagreements(lab, [...TARGETS, ...LATE_TARGETS]);
      assert.deepEqual(after.wrong, [], `the tracer and the kernel after the late container, over ${after.compared} probes`);
      t.diagnostic(`after the late container: tracer agreed with the kernel on ${after.compared} probes`);
    } finally {
      const left = await lab.destroy();
      assert.deepEqual(left, [], "every process the stand-in lab started was ended by pid");
    }
  });
}
