/**
 * The metrics Prometheus users expect: rule counters labelled by the policy entry (the same series
 * whatever is added above a rule), the time of the last successful apply, drift, where each entry
 * was written, and prom-client's process_* metrics.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { Metrics, ruleLabels } from "../../src/daemon/metrics.js";
import { Netfilter } from "../../src/backends/netfilter.js";
import { Daemon } from "../../src/daemon/daemon.js";
import type { Runner } from "../../src/exec/runner.js";
import { FakeNetfilter } from "./fake-netfilter.js";
import { legacyHost, withStore } from "./apply-fixtures.js";

const save = (rules: string[]) => `*filter
:DOCKWALL-INPUT-OUTSIDE - [0:0]
${rules.join("\n")}
COMMIT
`;
const SSH = '[7:420] -A DOCKWALL-INPUT-OUTSIDE -p tcp -m tcp --dport 22 -m comment --comment "[host-c7a38d82] host 22/tcp" -j RETURN';
const DROP = '[5:300] -A DOCKWALL-INPUT-OUTSIDE -m comment --comment "[default] default drop" -j DROP';
const WEB = '[1:60] -A DOCKWALL-INPUT-OUTSIDE -p tcp -m tcp --dport 443 -m comment --comment "[host-98cd0c8d] host 443/tcp" -j RETURN';

function kernel(text: () => string): Runner {
  return { run: async (cmd) => ({ code: 0, stdout: cmd.startsWith("iptables") ? text() : "", stderr: "" }) };
}

/** Each series of a counter, without its value: what a dashboard or an alert is keyed on. */
function series(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\}) (\\S+)$`, "gm"))) out.set(m[1]!, Number(m[2]));
  return out;
}

test("a rule's series stays the same when an entry is added above it: labelled by entry and match, not position", async () => {
  let rules = [SSH, DROP];
  const metrics = new Metrics();
  metrics.useNetfilter(new Netfilter(kernel(() => save(rules)), "nft"));
  const before = series(await metrics.registry.metrics(), "dockwall_rule_packets_total");
  await new Promise((r) => setTimeout(r, 1100)); // the kernel read is cached for a second
  rules = [WEB, SSH, DROP];
  const after = series(await metrics.registry.metrics(), "dockwall_rule_packets_total");
  for (const [labels, value] of before) assert.equal(after.get(labels), value, labels);
  assert.equal(after.size, 3);
  assert.doesNotMatch([...after.keys()].join("\n"), /rule="/);
});

test("the labels: the entry from the tag, untagged rules (an older dockwall's) and what they match; rules alike are summed", async () => {
  assert.deepEqual(ruleLabels("ipv6", "mangle", "DOCKWALL-FORWARD-OUTSIDE", '-s 2001:db8::7/128 -p tcp -m conntrack --ctstate DNAT --ctorigdstport 8001 --ctdir ORIGINAL -m comment --comment "[container-b4ceb306] container django 8000/tcp" -j RETURN'), {
    entry: "container-b4ceb306",
    family: "ipv6",
    table: "mangle",
    chain: "DOCKWALL-FORWARD-OUTSIDE",
    match: "-s 2001:db8::7/128 -p tcp -m conntrack --ctstate DNAT --ctorigdstport 8001 --ctdir ORIGINAL",
    verdict: "RETURN",
  });
  assert.equal(ruleLabels("ipv4", "filter", "DOCKWALL-INPUT", "-m comment --comment replies -j RETURN").entry, "untagged");
  assert.deepEqual(ruleLabels("ipv4", "filter", "DOCKWALL-INPUT", '-m limit --limit 10/min -m comment --comment "[log]" -j LOG --log-prefix "dockwall-drop-in: "'), {
    entry: "log", family: "ipv4", table: "filter", chain: "DOCKWALL-INPUT", match: "-m limit --limit 10/min", verdict: "LOG",
  });
  assert.equal(ruleLabels("ipv4", "filter", "DOCKWALL-INPUT", '-m comment --comment "[outside]" -g DOCKWALL-INPUT-OUTSIDE').verdict, "DOCKWALL-INPUT-OUTSIDE");
  const metrics = new Metrics();
  metrics.useNetfilter(new Netfilter(kernel(() => save([SSH, SSH.replace("[7:420]", "[3:180]"), DROP])), "nft"));
  const text = await metrics.registry.metrics();
  assert.match(text, /^dockwall_rule_packets_total\{entry="host-c7a38d82",[^}]*\} 10$/m);
});

test("the last successful apply's time, process_* metrics, and drift as the applied view says", async () => {
  const metrics = new Metrics();
  let holds: () => Promise<boolean> = async () => true;
  metrics.useApplied({
    record: async () => ({ at: "x", source: "/etc/dockwall/dockwall.yaml", variant: "nft", state: { ipv4: { family: "ipv4", chains: [], jumps: [] }, ipv6: { family: "ipv6", chains: [], jumps: [] }, sets: [], entries: [{ id: "host-c7a38d82", file: "/etc/dockwall/dockwall.yaml", line: 7, col: 5 }] } }),
    kernelHoldsRecord: () => holds(),
  });
  metrics.applied("changed", ["start"], 0.2, new Date(1_764_583_200_000));
  metrics.applied("failed", ["SIGHUP"], 0.1, new Date(1_764_583_300_000));
  let text = await metrics.registry.metrics();
  assert.match(text, /^dockwall_last_successful_apply_timestamp_seconds 1764583200$/m, "a failed apply is not a success");
  assert.match(text, /^dockwall_drift 0$/m);
  assert.match(text, /^dockwall_policy_entry_info\{entry="host-c7a38d82",file="\/etc\/dockwall\/dockwall.yaml",line="7"\} 1$/m);
  assert.match(text, /^# TYPE process_cpu_user_seconds_total counter$/m);
  assert.match(text, /^process_start_time_seconds \d+/m);
  holds = async () => false;
  assert.match(await metrics.registry.metrics(), /^dockwall_drift 1$/m);
  holds = async () => {
    throw new Error("iptables-save failed");
  };
  text = await metrics.registry.metrics();
  // prom-client spells it Nan; Prometheus reads NaN in any case.
  assert.match(text, /^dockwall_drift nan$/im, "the kernel cannot be read: neither 0 nor 1");
});

/** A watch daemon on the fake kernel with `policy` applied and metrics on; ended (and its policy file removed) after `body`. */
async function withDaemon(policy: string, body: (d: { fake: FakeNetfilter; file: string; metrics: Metrics; daemon: Daemon }) => Promise<void>): Promise<void> {
  await withStore(async (store, lock) => {
    const fake = new FakeNetfilter();
    const runner = legacyHost(fake);
    const file = path.join(path.dirname(store.dir), `${path.basename(store.dir)}-policy.yaml`);
    await writeFile(file, policy);
    const metrics = new Metrics();
    const daemon = new Daemon({ runner, store, lock }, { policy: file, docker: { socketPath: "/nonexistent/dockwall-test/docker.sock" }, checkEveryMs: 3_600_000, debounceMs: 5, metrics }, () => undefined);
    try {
      await daemon.start();
      await body({ fake, file, metrics, daemon });
    } finally {
      await daemon.stop();
      await rm(file, { force: true });
    }
  });
}

test("the daemon's drift gauge: 0 once applied, 1 when a rule is deleted by hand, 0 again after the repair", async () => {
  await withDaemon("host:\n  - port: 22\n", async ({ fake, file, metrics, daemon }) => {
    let text = await metrics.registry.metrics();
    assert.match(text, /^dockwall_drift 0$/m);
    assert.match(text, new RegExp(`^dockwall_policy_entry_info\\{entry="host-c7a38d82",file="${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}",line="2"\\} 1$`, "m"));
    const ssh = fake.rules("ipv4", "filter", "DOCKWALL-INPUT-OUTSIDE").find((r) => r.includes("--dport 22"))!;
    const deleted = await fake.run("iptables-legacy-restore", ["--noflush"], { input: `*filter\n-D DOCKWALL-INPUT-OUTSIDE ${ssh}\nCOMMIT\n` });
    assert.equal(deleted.code, 0, deleted.stderr);
    text = await metrics.registry.metrics();
    assert.match(text, /^dockwall_drift 1$/m);
    daemon.trigger("SIGHUP");
    await daemon.idle();
    assert.match(await metrics.registry.metrics(), /^dockwall_drift 0$/m);
  });
});

test("a set member swapped for another, the count unchanged: the drift gauge sees it and the periodic check repairs it", async () => {
  await withDaemon("groups:\n  office: [198.18.0.8/29, 198.18.0.32/29]\nhost:\n  - port: 22\n    from: [office]\n", async ({ fake, metrics, daemon }) => {
    assert.match(await metrics.registry.metrics(), /^dockwall_drift 0$/m);
    const saved = (await fake.run("ipset", ["save"], {})).stdout;
    const set = /^add (\S+) 198\.18\.0\.8\/29$/m.exec(saved)?.[1];
    assert.ok(set, `the office set holds 198.18.0.8/29:\n${saved}`);
    const swapped = await fake.run("ipset", ["restore"], { input: `del ${set} 198.18.0.8/29\nadd ${set} 198.18.0.16/29\n` });
    assert.equal(swapped.code, 0, swapped.stderr);
    assert.match(await metrics.registry.metrics(), /^dockwall_drift 1$/m, "a stranger's network in place of the office's is drift");
    // The periodic check reads every member too, and puts the office's network back.
    daemon.trigger("periodic check");
    await daemon.idle();
    const repaired = (await fake.run("ipset", ["save", set], {})).stdout;
    assert.match(repaired, /^add \S+ 198\.18\.0\.8\/29$/m, repaired);
    assert.doesNotMatch(repaired, /198\.18\.0\.16/, "the stranger's network is gone");
    assert.match(await metrics.registry.metrics(), /^dockwall_drift 0$/m);
  });
});
