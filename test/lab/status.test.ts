/**
 * `status` and `audit` against the real kernel: the jumps status reports are the kernel's whatever
 * the state directory holds (a fresh one while dockwall's rules are in place, a record of `remove`);
 * a rule deleted by hand is missing and the repair hint, run as printed, repairs it; `audit` with
 * Docker unreachable cannot tell (exit 4), and host sockets show their process.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { Lab } from "./lab.js";
import { dockwallOk } from "./checks.js";
import { writeLabPolicy } from "./expectations.js";

interface StatusJson {
  format: number;
  families: Record<"ipv4" | "ipv6", { jumps: { state: string }; jumpsFirst: boolean }>;
  drift: { family: string; table: string; chain: string; rule: string | null; kind: string }[];
  repair?: string;
  unrecorded: boolean;
}

describe("status and audit on Docker 20.10 (docker-proxy): what they say is what the kernel holds", () => {
  let lab: Lab;
  let policy: string;

  before(async () => {
    lab = await Lab.create({ ipv6Mode: "proxy", ipForwardBeforeDocker: false });
    policy = await writeLabPolicy(lab.workDir);
  });
  after(async () => {
    await lab?.destroy();
  });

  async function status(env: Record<string, string> = {}): Promise<{ code: number; json: StatusJson; text: string }> {
    const j = await lab.dockwall(["status", "--json"], undefined, env);
    const t = await lab.dockwall(["status"], undefined, env);
    assert.equal(j.code, t.code, "the same exit code with and without --json");
    return { code: j.code, json: JSON.parse(j.stdout) as StatusJson, text: t.stdout };
  }

  it("jumps from the kernel: in place with a fresh state directory, none after remove", async () => {
    await dockwallOk(lab, ["apply", "-c", policy]);
    const fresh = await status({ DOCKWALL_STATE_DIR: path.join(lab.workDir, "fresh-state") });
    assert.equal(fresh.code, 3, fresh.text);
    assert.equal(fresh.json.format, 1);
    assert.equal(fresh.json.families.ipv4.jumps.state, "first");
    assert.equal(fresh.json.families.ipv6.jumps.state, "first");
    assert.equal(fresh.json.unrecorded, true);
    assert.doesNotMatch(fresh.text, /NOT in place/);
    await dockwallOk(lab, ["remove"]);
    const removed = await status();
    assert.equal(removed.code, 0, removed.text);
    assert.equal(removed.json.families.ipv4.jumps.state, "none");
    assert.equal(removed.json.families.ipv4.jumpsFirst, false);
    assert.doesNotMatch(removed.text, /in place, first/);
    assert.match(removed.text, /^ipv4: no dockwall chains; no jumps into dockwall's chains;/m);
  });

  it("a rule deleted by hand is missing, and the repair hint, run as printed, repairs it", async () => {
    await dockwallOk(lab, ["apply", "-c", policy]);
    const saved = await lab.hostIptablesSave("ipv4");
    const line = saved.split("\n").find((l) => l.startsWith("-A DOCKWALL-INPUT-OUTSIDE") && l.includes("--dport 9100"));
    assert.ok(line, "the policy opens 9100/tcp to admins");
    const deleted = await lab.exec(lab.hostNs, "iptables-restore", ["--noflush"], `*filter\n-D ${line.slice(3)}\nCOMMIT\n`);
    assert.equal(deleted.code, 0, deleted.stderr);
    const drifted = await status();
    assert.equal(drifted.code, 3);
    assert.deepEqual(drifted.json.drift, [{ family: "ipv4", table: "filter", chain: "DOCKWALL-INPUT-OUTSIDE", rule: line.slice("-A DOCKWALL-INPUT-OUTSIDE ".length), kind: "missing" }]);
    assert.match(drifted.text, /^  missing: ipv4 filter DOCKWALL-INPUT-OUTSIDE: .*--dport 9100/m);
    assert.equal(drifted.json.repair, `dockwall apply --full-read -c ${policy}`);
    const repaired = await lab.dockwall(drifted.json.repair!.split(" ").slice(1));
    assert.equal(repaired.code, 0, repaired.stdout + repaired.stderr);
    assert.equal((await status()).code, 0);
  });

  it("audit: Docker unreachable is 'cannot tell' (exit 4), and host sockets show their process (docker-proxy's too, then)", async () => {
    const down = await lab.dockwall(["audit", "-c", policy, "--json"], undefined, { DOCKER_HOST: `unix://${path.join(lab.workDir, "no-docker.sock")}` });
    assert.equal(down.code, 4, down.stdout + down.stderr);
    const report = JSON.parse(down.stdout) as { publishedPorts: string; rows: { target: { port: number; family: string; what: string; process?: { name: string; pid: number } } }[] };
    assert.equal(report.publishedPorts, "unknown");
    const proc = (port: number) => report.rows.find((r) => r.target.port === port && r.target.family === "ipv4")?.target.process?.name;
    assert.equal(proc(9100), "socat");
    // The database's published port, seen only as docker-proxy's socket with Docker unreachable.
    assert.equal(proc(5432), "docker-proxy");
    assert.equal(report.rows.find((r) => r.target.port === 5432)?.target.what, "published port");
    const text = await lab.dockwall(["audit", "-c", policy], undefined, { DOCKER_HOST: `unix://${path.join(lab.workDir, "no-docker.sock")}` });
    assert.match(text.stdout, /^published ports: UNKNOWN, Docker is not reachable/m);
    assert.match(text.stdout, /^cannot tell: Docker's published ports are unknown; /m);
    const up = await lab.dockwall(["audit", "-c", policy]);
    assert.equal(up.code, 0, up.stdout + up.stderr);
    assert.match(up.stdout, /^9100\/tcp\s+IPv4\s+host socket \(\[::\], dual-stack\): socat \(pid \d+\)\s+/m);
  });
});
