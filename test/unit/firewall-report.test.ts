/** firewallReport: the back end from Docker's word, its version, or the live tables, never a guess. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { describeFirewall, firewallReport, readLiveDockerTables } from "../../src/facts/firewall-report.js";
import type { DockerFacts, HostFacts } from "../../src/facts/types.js";
import type { CommandResult, Runner } from "../../src/exec/runner.js";

const host: HostFacts = { interfaces: [], iptables: "nft" };
const reachable = (extra: Partial<DockerFacts>): DockerFacts => ({ reachable: true, containers: [], networks: [], ...extra });
const unreachable: DockerFacts = { reachable: false, error: "ECONNREFUSED", containers: [], networks: [] };

test("Docker 28.1+ says its back end; the report repeats it", () => {
  const r = firewallReport(reachable({ version: "29.0.1", firewallBackend: "nftables" }), host);
  assert.deepEqual(r, { dockerVersion: "29.0.1", backend: "nftables", backendFrom: "docker", iptables: "nft" });
  assert.equal(describeFirewall(r), "Docker 29.0.1, firewall back end nftables (Docker says so); dockwall writes iptables-nft");
});

test("a Docker that answers without a back end is older than 28.1: iptables, said so from its version", () => {
  const r = firewallReport(reachable({ version: "20.10.24+dfsg1" }), { ...host, iptables: "legacy" });
  assert.equal(r.backend, "iptables");
  assert.equal(r.backendFrom, "docker version");
  assert.match(describeFirewall(r), /^Docker 20\.10\.24\+dfsg1, firewall back end iptables \(Docker before 28\.1 has no other\); dockwall writes iptables-legacy$/);
});

test("a back-end name no Docker would send is not repeated", () => {
  const r = firewallReport(reachable({ version: "28.5.2", firewallBackend: "iptables\n-j ACCEPT" }), host);
  assert.equal(r.backend, "unknown");
});

test("Docker unreachable: the live tables tell, nftables first; with nothing, unknown", () => {
  assert.equal(firewallReport(unreachable, host, { nftablesBackend: true, iptablesChains: true }).backend, "nftables");
  const ipt = firewallReport(unreachable, host, { nftablesBackend: false, iptablesChains: true });
  assert.deepEqual([ipt.backend, ipt.backendFrom, ipt.dockerVersion], ["iptables", "live tables", undefined]);
  const none = firewallReport(unreachable, host, { nftablesBackend: false, iptablesChains: false });
  assert.deepEqual([none.backend, none.backendFrom], ["unknown", "none"]);
  assert.match(describeFirewall(none), /^Docker not reachable, firewall back end unknown/);
});

/** A runner that answers `nft list tables` and `iptables-*-save` from fixed text. */
function runnerWith(nft: string, save: string, calls: string[] = []): Runner {
  const ok = (stdout: string): CommandResult => ({ code: 0, stdout, stderr: "" });
  return {
    async run(cmd: string, args: readonly string[]) {
      calls.push([cmd, ...args].join(" "));
      if (cmd === "nft") return ok(nft);
      if (/^iptables-(nft|legacy)-save$/.test(cmd)) return ok(save);
      return { code: 127, stdout: "", stderr: "not found" };
    },
  } as Runner;
}

test("readLiveDockerTables: Docker 29's docker-bridges table, Docker's iptables chains, in the variant asked", async () => {
  const calls: string[] = [];
  const nft29 = await readLiveDockerTables(runnerWith("table ip filter\ntable ip docker-bridges\ntable ip6 docker-bridges\n", "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", calls), "legacy");
  assert.deepEqual(nft29, { nftablesBackend: true, iptablesChains: false });
  assert.ok(calls.includes("iptables-legacy-save -t filter"), calls.join("; "));
  const ipt = await readLiveDockerTables(runnerWith("table ip filter\ntable ip nat\n", "*filter\n:DOCKER - [0:0]\n:DOCKER-USER - [0:0]\nCOMMIT\n"), "nft");
  assert.deepEqual(ipt, { nftablesBackend: false, iptablesChains: true });
  // A table merely named like Docker's, in another family or with a suffix, is not Docker's.
  const lookalike = await readLiveDockerTables(runnerWith("table inet docker-bridges\ntable ip docker-bridges-old\n", ""), "nft");
  assert.equal(lookalike.nftablesBackend, false);
});
