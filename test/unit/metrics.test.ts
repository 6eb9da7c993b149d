/** Metrics: kernel counters per dockwall rule read at scrape time, applies and repairs by cause, the listen address. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Metrics, parseListen, causeKind } from "../../src/daemon/metrics.js";
import { Netfilter } from "../../src/backends/netfilter.js";
import type { Runner } from "../../src/exec/runner.js";

const SAVE_V4 = `*filter
:INPUT ACCEPT [0:0]
:DOCKWALL-INPUT-OUTSIDE - [0:0]
:DOCKER-USER - [0:0]
[12:720] -A INPUT -m comment --comment dockwall -j DOCKWALL-INPUT-OUTSIDE
[7:420] -A DOCKWALL-INPUT-OUTSIDE -p tcp -m tcp --dport 22 -m comment --comment "[host-c7a38d82] host 22/tcp" -j RETURN
[5:300] -A DOCKWALL-INPUT-OUTSIDE -m comment --comment "[default] default drop" -j DROP
[99:9900] -A DOCKER-USER -j RETURN
COMMIT
`;

const runner: Runner = {
  run: async (cmd, args) => {
    assert.deepEqual(args, ["-c"]);
    return { code: 0, stdout: cmd.startsWith("iptables") ? SAVE_V4 : "", stderr: "" };
  },
};

test("rule counters come from the kernel at scrape time, for dockwall's chains only, as counters by policy entry", async () => {
  const metrics = new Metrics();
  metrics.useNetfilter(new Netfilter(runner, "nft"));
  const text = await metrics.registry.metrics();
  assert.match(text, /^# TYPE dockwall_rule_packets_total counter$/m);
  assert.match(text, /^dockwall_rule_packets_total\{entry="default",family="ipv4",table="filter",chain="DOCKWALL-INPUT-OUTSIDE",match="",verdict="DROP"\} 5$/m);
  assert.match(text, /^dockwall_rule_bytes_total\{entry="host-c7a38d82",family="ipv4",table="filter",chain="DOCKWALL-INPUT-OUTSIDE",match="-p tcp -m tcp --dport 22",verdict="RETURN"\} 420$/m);
  assert.doesNotMatch(text, /DOCKER-USER/);
});

test("applies are counted by result, repairs by what caused them", async () => {
  const metrics = new Metrics();
  metrics.applied("changed", ["docker container start web", "ruleset changed", "docker network create x"], 0.25);
  metrics.applied("unchanged", ["periodic check"], 0.05);
  metrics.applied("failed", ["SIGHUP"], 0.01);
  metrics.dockerConnected(true);
  const text = await metrics.registry.metrics();
  assert.match(text, /dockwall_applies_total\{result="changed"\} 1/);
  assert.match(text, /dockwall_applies_total\{result="failed"\} 1/);
  assert.match(text, /dockwall_repairs_total\{cause="docker"\} 1/);
  assert.match(text, /dockwall_repairs_total\{cause="ruleset"\} 1/);
  assert.doesNotMatch(text, /dockwall_repairs_total\{cause="periodic"\}/);
  assert.match(text, /dockwall_last_apply_duration_seconds 0.01/);
  assert.match(text, /dockwall_docker_connected 1/);
  assert.equal(causeKind("file changed: /etc/dockwall/admins.list"), "file");
});

test("the listen address: host and port, IPv6 in brackets, every address when the host is left out", () => {
  assert.deepEqual(parseListen("127.0.0.1:9273"), { host: "127.0.0.1", port: 9273 });
  assert.deepEqual(parseListen("[::1]:9273"), { host: "::1", port: 9273 });
  assert.deepEqual(parseListen(":9273"), { host: "::", port: 9273 });
  assert.throws(() => parseListen("9273"), /expected ADDRESS:PORT/);
  assert.throws(() => parseListen("127.0.0.1:70000"), /expected ADDRESS:PORT/);
});
