/**
 * End-to-end: `dockwall watch` against a real dockerd, 20.10 and 28 (Docker's own ip6tables rules, ip_forward
 * on before dockerd: the most open of the four modes). The daemon must keep the policy true by itself:
 * containers recreated with new ports, group files edited, other tools flushing rules, SIGHUP with a
 * good and a bad policy, dockerd restarts; and leave the rules in place when it stops. Every outcome is
 * asserted with real connections. Waits are bounded polls (the figures belong in bench/), never sleeps
 * that assume a speed.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { appendFile, mkdir, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { Lab, type DockwallProcess } from "./lab.js";
import { ENGINES_UNDER_TEST } from "./engines.js";
import { mismatches } from "./checks.js";
import { DAEMON_NODE_FLAGS } from "../../src/daemon/systemd.js";
import { ADMINS_LIST, LAB_POLICY, POLICY_TARGETS, writeLabPolicy, type Target } from "./expectations.js";

/** How long the daemon may take to react before a test fails (generous: CI machines are slow). */
const REACT_MS = 15_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until the probe matrix matches, or returns the last mismatches after `ms`. */
async function eventually(lab: Lab, targets: Target[], ms = REACT_MS): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const wrong = await mismatches(lab, targets);
    if (wrong.length === 0 || Date.now() > deadline) return wrong;
    await sleep(200);
  }
}

/** dockwall's own part of the live rules, without counters: what a repair must bring back exactly. */
async function dockwallRules(lab: Lab): Promise<string> {
  const parts: string[] = [];
  for (const family of ["ipv4", "ipv6"] as const) {
    const text = await lab.hostIptablesSave(family);
    parts.push(...text.split("\n").filter((l) => l.includes("DOCKWALL")).map((l) => `${family} ${l.replace(/\[\d+:\d+\]/, "")}`));
  }
  return parts.sort().join("\n");
}

/** A command in the Docker host's namespace that must succeed (another tool changing the rules). */
async function hostOk(lab: Lab, cmd: string, args: string[]): Promise<void> {
  const r = await lab.exec(lab.hostNs, cmd, args);
  assert.equal(r.code, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
}

/**
 * Probes from the stranger, in several staggered loops, until stop(): every connection that got in.
 * A dropped TCP attempt takes the probe's whole timeout, so parallel loops keep the gaps short.
 */
function probeContinuously(lab: Lab, targets: { family: "ipv4" | "ipv6"; port: number }[], loops = 4): { stop(): Promise<{ at: number; what: string }[]> } {
  let stopped = false;
  const got: { at: number; what: string }[] = [];
  const run = async (offset: number) => {
    await sleep(offset);
    for (let i = 0; !stopped; i++) {
      const t = targets[(i + offset) % targets.length]!;
      const at = Date.now();
      if (await lab.probe(lab.clients.stranger, t.family, "tcp", t.port)) got.push({ at, what: `${t.family} ${t.port}` });
    }
  };
  const running = Array.from({ length: loops }, (_, i) => run(i * 300));
  return {
    async stop() {
      stopped = true;
      await Promise.all(running);
      return got;
    },
  };
}

/**
 * Published container ports the stranger must never reach under LAB_POLICY while Docker comes up.
 * (The host's own services listen all along in the lab, before any firewall, as they would not
 * before the network is up in a real boot: they are not what the boot order protects.)
 */
const CLOSED_TO_STRANGER = [
  { family: "ipv4" as const, port: 5432 },
  { family: "ipv6" as const, port: 5432 },
  { family: "ipv4" as const, port: 8002 },
  { family: "ipv4" as const, port: 8011 },
];

const applied = (l: Record<string, unknown>) => l.event === "applied" || l.event === "unchanged";

for (const docker of ENGINES_UNDER_TEST) {
  describe(`dockwall watch on Docker ${docker} (ip6tables DNAT, ip_forward on before dockerd)`, () => {
    let lab: Lab;
    let policy: string;
    let watch: DockwallProcess;
    let rules: string;

    before(async () => {
      lab = await Lab.create({ docker, ipv6Mode: "ip6tables", ipForwardBeforeDocker: true });
      policy = await writeLabPolicy(lab.workDir);
    });
    after(async () => {
      await lab?.destroy();
    });

    it("applies the policy when it starts", async () => {
      watch = lab.startDockwall(["watch", "-c", policy, "--check-every", "3600", "--metrics", "127.0.0.1:9273"], DAEMON_NODE_FLAGS);
      await watch.waitFor((l) => l.event === "applied", 0, 60_000);
      assert.deepEqual(await mismatches(lab, POLICY_TARGETS), []);
      rules = await dockwallRules(lab);
    });

    it("serves metrics: drops counted on the rule that dropped them, applies, Docker's state", async () => {
      const scrape = async () => {
        const r = await lab.exec(lab.hostNs, "curl", ["-sf", "http://127.0.0.1:9273/metrics"]);
        assert.equal(r.code, 0, `curl /metrics: ${r.stderr}`);
        return r.stdout;
      };
    // Counted by the policy entry the rule comes from: the default drop (the lab policy leaves `default:` to its default).
      const dropped = (text: string) =>
      Number(/^dockwall_rule_packets_total\{entry="default",family="ipv4",table="filter",chain="DOCKWALL-INPUT-OUTSIDE",match="",verdict="DROP"\} (\d+)$/m.exec(text)?.[1] ?? NaN);
      const before = dropped(await scrape());
      assert.ok(Number.isFinite(before), "the default-drop rule has a packet counter");
      assert.equal(await lab.probe(lab.clients.stranger, "ipv4", "tcp", 9100), false);
      const text = await scrape();
      assert.ok(dropped(text) > before, `the stranger's SYNs are counted: ${before} -> ${dropped(text)}`);
      assert.match(text, /dockwall_applies_total\{result="changed"\} [1-9]/);
      assert.match(text, /dockwall_docker_connected 1/);
    assert.match(text, /^# TYPE dockwall_rule_packets_total counter$/m);
    assert.match(text, /^dockwall_drift 0$/m, "the kernel holds what was applied");
    const lastApply = Number(/^dockwall_last_successful_apply_timestamp_seconds (\S+)$/m.exec(text)?.[1]);
    assert.ok(lastApply > Date.now() / 1000 - 3600 && lastApply <= Date.now() / 1000, `the last successful apply was just now: ${lastApply}`);
    // SSH, the lab policy's line 7: its id is made from what it says (22/tcp from anyone), the same on every host.
    assert.ok(text.includes(`dockwall_policy_entry_info{entry="host-c7a38d82",file="${policy}",line="7"} 1`), "where the SSH entry was written");
    assert.match(text, /^dockwall_rule_bytes_total\{entry="host-c7a38d82",family="ipv6",table="filter",chain="DOCKWALL-INPUT-OUTSIDE",match="-p tcp -m tcp --dport 22",verdict="RETURN"\} \d+$/m);
    assert.match(text, /^process_cpu_user_seconds_total \S+$/m);
    });

    it("a container named in the policy follows it when recreated with another published port", async () => {
      const from = watch.lines.length;
      await lab.docker(["rm", "-f", "django"]);
      await lab.startContainer({ name: "django", args: ["-p", "8011:8000"], command: lab.serviceCommand(8000, "django", "tcp") });
      await watch.waitFor((l) => applied(l) && String(l.causes).includes("django"), from, REACT_MS);
      assert.deepEqual(
        await eventually(lab, [
          { what: "django recreated as 8011->8000 (by name, admin)", proto: "tcp", port: 8011, allowed: ["trusted", "admin"] },
          { what: "django's old port 8001", proto: "tcp", port: 8001, allowed: [] },
        ]),
        [],
      );
    });

    it("a jump deleted and a chain flushed by another tool are put back", async () => {
      const from = watch.lines.length;
      await hostOk(lab, "iptables", ["-D", "INPUT", "-m", "comment", "--comment", "dockwall", "-j", "DOCKWALL-INPUT"]);
      await hostOk(lab, "ip6tables", ["-t", "mangle", "-F", "DOCKWALL-FORWARD-OUTSIDE"]);
      await watch.waitFor((l) => l.event === "applied" && String(l.causes).includes("ruleset"), from, REACT_MS);
      assert.equal(await dockwallRules(lab), rules.replace(/8001/g, "8011"));
      assert.deepEqual(await mismatches(lab, POLICY_TARGETS.filter((t) => t.port !== 8001)), []);
    });

    it("a flush of the whole filter table is repaired", async () => {
      const from = watch.lines.length;
      await hostOk(lab, "iptables", ["-F"]);
      // A flush of hundreds of rules can overrun the monitor's socket: it restarts and looks again.
      await watch.waitFor((l) => l.event === "applied" && String(l.causes).includes("ruleset"), from, REACT_MS);
      assert.equal(await dockwallRules(lab), rules.replace(/8001/g, "8011"));
      const { stranger } = lab.clients;
      assert.deepEqual(
        await lab.probeMany([
          { client: stranger, family: "ipv4", proto: "tcp", port: 9100 },
          { client: stranger, family: "ipv4", proto: "tcp", port: 5432 },
          { client: stranger, family: "ipv4", proto: "tcp", port: 22 },
        ]),
        [false, false, true],
      );
      // Docker's own filter rules went with the flush; a restart of dockerd writes them again.
      await lab.restartDockerd();
    });

    it("a set lost with the rules that used it (flush, then ipset destroy) is put back with its members", async () => {
      const from = watch.lines.length;
      await hostOk(lab, "iptables", ["-F"]);
      await hostOk(lab, "iptables", ["-t", "mangle", "-F"]);
      await hostOk(lab, "ipset", ["destroy", "dw4-admins"]);
      await watch.waitFor((l) => l.event === "applied" && String(l.causes).includes("ruleset"), from, REACT_MS);
      const members = await lab.exec(lab.hostNs, "ipset", ["list", "dw4-admins"]);
      assert.match(members.stdout, /^198\.18\.0\.30$/m);
      assert.deepEqual(
        await eventually(lab, [{ what: "host metrics 9100 (admins)", proto: "tcp", port: 9100, allowed: ["trusted", "admin"] }]),
        [],
      );
      await lab.restartDockerd();
    });

    it("an address added to a group file is let in without a rule changing", async () => {
      const from = watch.lines.length;
      const list = path.join(lab.workDir, "admins.list");
      await appendFile(list, `${lab.clients.stranger.ipv4}\n`);
      await watch.waitFor((l) => l.event === "applied" && String(l.causes).includes("admins.list"), from, REACT_MS);
      assert.equal(await lab.probe(lab.clients.stranger, "ipv4", "tcp", 9100), true, "the stranger is an admin now");
      assert.equal(await dockwallRules(lab), rules.replace(/8001/g, "8011"), "set members changed, no rule did");
      await writeFile(list, ADMINS_LIST);
      assert.deepEqual(await eventually(lab, [{ what: "host metrics 9100 (admins)", proto: "tcp", port: 9100, allowed: ["trusted", "admin"] }]), []);
    });

    it("SIGHUP with a policy that does not validate is refused and logged; the rules stay", async () => {
      const from = watch.lines.length;
      await writeFile(policy, LAB_POLICY.replace("trusted: [office]", "trusted: [ofice]"));
      watch.signal("SIGHUP");
      const failed = await watch.waitFor((l) => l.level === "error", from, REACT_MS);
      assert.match(JSON.stringify(failed.errors), /unknown group \\"ofice\\"/);
      assert.equal(await dockwallRules(lab), rules.replace(/8001/g, "8011"));
    });

    it("SIGHUP with a valid policy applies it", async () => {
      const from = watch.lines.length;
      await writeFile(policy, LAB_POLICY.replace("  - port: 8080          # web (8080 -> 80): public", "  - port: [8080, 5432]"));
      watch.signal("SIGHUP");
      await watch.waitFor((l) => l.event === "applied", from, REACT_MS);
      assert.deepEqual(await eventually(lab, [{ what: "db 5432 (now public)", proto: "tcp", port: 5432, allowed: ["trusted", "stranger", "admin"] }]), []);
      await writeFile(policy, LAB_POLICY);
      watch.signal("SIGHUP");
      assert.deepEqual(await eventually(lab, [{ what: "db 5432 (closed again)", proto: "tcp", port: 5432, allowed: ["trusted"] }]), []);
    });

    it("a dockerd restart is followed: the daemon reconnects, and nothing opens meanwhile", async () => {
      const from = watch.lines.length;
      await lab.restartDockerd();
      await watch.waitFor((l) => l.event === "docker connected", from, 60_000);
      assert.deepEqual(await eventually(lab, POLICY_TARGETS.filter((t) => t.port !== 8001)), []);
    });

    it("dockerd restarted 20 times while the stranger probes: not one connection gets in", async () => {
      const probing = probeContinuously(lab, CLOSED_TO_STRANGER);
      for (let i = 0; i < 20; i++) {
        await lab.stopDockerd();
        await lab.startDockerd();
        await sleep(500);
      }
      await lab.waitForServices();
      await sleep(2000);
      assert.deepEqual(await probing.stop(), [], "the stranger got in during the restarts");
      // The services were really there to be reached: the trusted client gets in.
      assert.equal(await lab.probe(lab.clients.trusted, "ipv4", "tcp", 5432), true);
    });

    it("SIGTERM stops the daemon and leaves the rules in place", async () => {
      watch.signal("SIGTERM");
      assert.equal(await watch.exit, 0);
      assert.ok(watch.lines.some((l) => l.event === "stopped"));
      assert.deepEqual(await mismatches(lab, POLICY_TARGETS.filter((t) => t.port !== 8001)), []);
    });

    it("two applies at once are serialised: both succeed and the rules are wholly one policy's", async () => {
      const open = path.join(lab.workDir, "open.yaml");
      await writeFile(open, LAB_POLICY.replace("  - port: 8080          # web (8080 -> 80): public", "  - port: [8080, 5432]"));
      const [a, b] = await Promise.all([lab.dockwall(["apply", "-c", open]), lab.dockwall(["apply", "-c", policy])]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      const status = await lab.dockwall(["status", "--json"]);
      assert.equal(JSON.parse(status.stdout).inSync, true, status.stdout);
      const last = JSON.parse(status.stdout).source as string;
      const strangerDb = await lab.probe(lab.clients.stranger, "ipv4", "tcp", 5432);
      assert.equal(strangerDb, last === open, `the kernel holds ${last}'s rules`);
      await lab.dockwall(["apply", "-c", policy]);
    });

    /**
     * Starts `dockwall apply -c FILE` and SIGKILLs it while its IPv6 restore runs: an
     * `ip6tables-*-restore` first on PATH (a shim) holds the real one back until then. The IPv4 restore
     * and the sets' commit have gone in: the kernel holds a mix, which is what the journal is for.
     */
    async function killMidApply(file: string): Promise<void> {
      const shims = path.join(lab.workDir, "bin-slow-ip6tables-restore");
      const reached = path.join(lab.workDir, "ip6tables-restore-reached");
      await rm(reached, { force: true });
      await mkdir(shims, { recursive: true });
      for (const variant of ["nft", "legacy"]) {
        const name = `ip6tables-${variant}-restore`;
        const real = ["/usr/sbin", "/sbin", "/usr/bin"].map((d) => path.join(d, name)).find((p) => existsSync(p));
        if (real === undefined) continue;
        const shim = `#!/bin/sh\ncase " $* " in *" --test "*) exec ${real} "$@";; esac\necho $$ > ${reached}\nsleep 60\nexec ${real} "$@"\n`;
        await writeFile(path.join(shims, name), shim, { mode: 0o755 });
      }
      const applying = lab.startDockwall(["apply", "-c", file], [], { PATH: `${shims}:${process.env.PATH ?? ""}` });
      const deadline = Date.now() + 60_000;
      while (!existsSync(reached)) {
        assert.ok(Date.now() < deadline, `the IPv6 restore was never reached: ${applying.stderr.join("")}`);
        await sleep(50);
      }
      // Give the IPv4 restore, started beside it, time to finish.
      await sleep(1000);
      applying.signal("SIGKILL");
      assert.equal(await applying.exit, null);
      process.kill(Number((await readFile(reached, "utf8")).trim()), "SIGKILL");
    }

    it("dockwall killed with SIGKILL in the middle of an apply: the next run finishes it or rollback goes back, never a mix left", async () => {
      const open = path.join(lab.workDir, "open.yaml");
      assert.equal((await lab.dockwall(["apply", "-c", policy])).code, 0);
      const rulesOfPolicy = await dockwallRules(lab);
      assert.equal((await lab.dockwall(["apply", "-c", open])).code, 0);
      const rulesOfOpen = await dockwallRules(lab);
      assert.equal((await lab.dockwall(["apply", "-c", policy])).code, 0);

      // Killed going from the policy to open.yaml: IPv4 holds open.yaml's rules, IPv6 the policy's.
      await killMidApply(open);
      const only = (family: string, rules: string) => rules.split("\n").filter((l) => l.startsWith(`${family} `)).join("\n");
      const mixed = await dockwallRules(lab);
      assert.equal(only("ipv4", mixed), only("ipv4", rulesOfOpen));
      assert.equal(only("ipv6", mixed), only("ipv6", rulesOfPolicy));
      const status = await lab.dockwall(["status", "--json"]);
      assert.equal(status.code, 3);
      assert.equal(JSON.parse(status.stdout).interrupted?.source, open, status.stdout);

      // rollback goes back to the state before the killed apply: the policy's, exactly.
      const back = await lab.dockwall(["rollback"]);
      assert.equal(back.code, 0, back.stderr);
      assert.equal(await dockwallRules(lab), rulesOfPolicy);
      assert.deepEqual(await mismatches(lab, POLICY_TARGETS.filter((t) => t.port !== 8001)), []);
      assert.equal(JSON.parse((await lab.dockwall(["status", "--json"])).stdout).inSync, true);

      // Killed again; this time the next apply finishes the job and says what it found.
      await killMidApply(open);
      const next = await lab.dockwall(["apply", "-c", open]);
      assert.equal(next.code, 0, next.stderr);
      assert.match(next.stderr, /was stopped part-way/);
      assert.equal(await dockwallRules(lab), rulesOfOpen);
      for (const family of ["ipv4", "ipv6"] as const) {
        assert.equal(await lab.probe(lab.clients.stranger, family, "tcp", 5432), true, `open.yaml lets the stranger in over ${family}`);
      }
      // And rollback from there is to the policy, not to the half-applied state.
      assert.equal((await lab.dockwall(["rollback"])).code, 0);
      assert.equal(await dockwallRules(lab), rulesOfPolicy);
      assert.deepEqual(await mismatches(lab, POLICY_TARGETS.filter((t) => t.port !== 8001)), []);
    });

    for (const missing of [
      { tool: "ipset", hidden: (name: string) => name === "ipset", said: /^dockwall: ipset: command not found \(is it installed and on PATH\?\)$/m },
      {
        tool: "iptables",
        hidden: (name: string) => /^(ip6?tables|xtables)/.test(name),
        said: /^dockwall: ip6?tables-\w+-\w+: command not found \(is it installed and on PATH\?\)$/m,
      },
    ]) {
      it(`without ${missing.tool} installed, apply says so, exits 2 and changes nothing`, async () => {
        // A PATH with everything this machine has except the tool.
        const bin = path.join(lab.workDir, `bin-without-${missing.tool}`);
        await mkdir(bin);
        for (const dir of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
          for (const name of await readdir(dir).catch(() => [] as string[])) {
            if (!missing.hidden(name) && !existsSync(path.join(bin, name))) await symlink(path.join(dir, name), path.join(bin, name));
          }
        }
        const before = await dockwallRules(lab);
        const open = path.join(lab.workDir, "open.yaml");
        const r = await lab.dockwall(["apply", "-c", open], undefined, { PATH: bin });
        assert.equal(r.code, 2, r.stdout + r.stderr);
        assert.match(r.stderr, missing.said);
        assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
        assert.equal(await dockwallRules(lab), before);
      });
    }

    it("a simulated boot with dockwall first: not one connection from the stranger gets in", async () => {
      await lab.stopDockerd();
      await lab.emptyKernel();
      const probing = probeContinuously(lab, CLOSED_TO_STRANGER);
      watch = lab.startDockwall(["watch", "-c", policy], DAEMON_NODE_FLAGS);
      await watch.waitFor((l) => l.event === "ready", 0, 60_000);
      await lab.startDockerd();
      await lab.waitForServices();
      await sleep(3000);
      const gotIn = await probing.stop();
      assert.deepEqual(gotIn, [], "the stranger got in during the boot");
      // The services were really there to be reached: the trusted client gets in.
      assert.equal(await lab.probe(lab.clients.trusted, "ipv4", "tcp", 5432), true);
      watch.signal("SIGTERM");
      assert.equal(await watch.exit, 0);
    });

    it("a simulated boot with dockerd first: the stranger gets in until dockwall starts (the window is measured)", async (t) => {
      await lab.stopDockerd();
      await lab.emptyKernel();
      const probing = probeContinuously(lab, CLOSED_TO_STRANGER);
      const dockerdStart = Date.now();
      await lab.startDockerd();
      await lab.waitForServices();
      const dockwallStart = Date.now();
      watch = lab.startDockwall(["watch", "-c", policy], DAEMON_NODE_FLAGS);
      await watch.waitFor((l) => l.event === "ready", 0, 60_000);
      const ready = Date.now();
      await sleep(3000);
      const gotIn = await probing.stop();
      // This is what dockwall-first prevents; it also shows the probes can see an exposure at all.
      assert.ok(gotIn.length > 0, "with dockerd first the stranger should have got in before dockwall started");
      const first = Math.min(...gotIn.map((g) => g.at));
      const last = Math.max(...gotIn.map((g) => g.at));
      assert.ok(last <= ready, `a connection got in ${last - ready} ms after dockwall was ready`);
      t.diagnostic(
        `dockerd first: the stranger got in ${gotIn.length} times, from ${first - dockerdStart} ms after dockerd started until ` +
          `${last - dockerdStart} ms (probes every ~0.4 s); dockwall, started ${dockwallStart - dockerdStart} ms after dockerd, ` +
          `was ready ${ready - dockwallStart} ms after its own start`,
      );
      watch.signal("SIGTERM");
      assert.equal(await watch.exit, 0);
    });

    /**
     * A reboot with a policy that does not validate (a typo left in it): dockwall must not exit and let
     * Docker start with every published port open. It holds the last applied rules, or with none the
     * lock-down (SSH only), from the moment it is ready, in both start orders, while the stranger probes
     * all along; then the fixed policy, once written, is applied.
     */
    for (const order of ["dockwall first", "dockerd first"] as const) {
      for (const withState of [true, false]) {
        it(`a boot with a policy that does not validate, ${order}, ${withState ? "with an applied state" : "with no applied state"}: the stranger never gets in once dockwall is ready${withState ? "" : ", SSH stays reachable"}; the fixed policy is applied when written`, async (t) => {
          const boot = path.join(lab.workDir, "boot.yaml");
          await writeFile(boot, LAB_POLICY.replace("trusted: [office]", "trusted: [ofice]"));
          if (withState) {
            const r = await lab.dockwall(["apply", "-c", policy]);
            assert.equal(r.code, 0, r.stderr);
          } else {
            await rm(lab.stateDir, { recursive: true, force: true });
          }
          await lab.stopDockerd();
          await lab.emptyKernel();
          // Closed to the stranger under the applied state and the lock-down alike; 8080 is public only in the state.
          const closed = [
            ...CLOSED_TO_STRANGER,
            { family: "ipv4" as const, port: 8001 },
            { family: "ipv4" as const, port: 9100 },
            { family: "ipv6" as const, port: 9100 },
            ...(withState ? [] : [{ family: "ipv4" as const, port: 8080 }, { family: "ipv6" as const, port: 8080 }]),
          ];
          const probing = probeContinuously(lab, closed);
          let running: DockwallProcess | undefined;
          try {
            if (order === "dockerd first") {
              await lab.startDockerd();
              await lab.waitForServices();
            }
            const watch = lab.startDockwall(["watch", "-c", boot], DAEMON_NODE_FLAGS);
            running = watch;
            void watch.exit.then(() => (running = undefined));
            await watch.waitFor((l) => l.event === "ready", 0, 60_000);
            const ready = Date.now();
            if (order === "dockwall first") {
              await lab.startDockerd();
              await lab.waitForServices();
            }
            await sleep(3000);
            const gotIn = await probing.stop();
            // Before dockwall is ready nothing filters: the lab's host services listen all along, and with
            // dockerd first Docker publishes at once (the unit's ordering prevents that, not the daemon).
            // From ready on, through dockerd's start in the first order, not one probe may get in.
            const afterReady = gotIn.filter((g) => g.at >= ready);
            assert.deepEqual(afterReady, [], "the stranger got in while dockwall held the fallback");
            t.diagnostic(`${order}: ${gotIn.length} stranger connections before dockwall was ready, none after`);

            const holding = withState ? "last-applied" : "lock-down";
            const said = watch.lines.find((l) => l.level === "error" && String(l.event).includes("holding"));
            assert.ok(said, `no error line saying what holds:\n${watch.lines.map((l) => JSON.stringify(l)).join("\n")}`);
            assert.equal(said.holding, holding);
            assert.match(JSON.stringify(said.errors), /unknown group \\"ofice\\"/);
            const { stranger, trusted } = lab.clients;
            assert.deepEqual(
              await lab.probeMany([
                { client: stranger, family: "ipv4", proto: "tcp", port: 22 },
                { client: stranger, family: "ipv6", proto: "tcp", port: 22 },
                { client: stranger, family: "ipv4", proto: "tcp", port: 8080 },
                { client: trusted, family: "ipv4", proto: "tcp", port: 5432 },
              ]),
              // The applied state: SSH and web public, the trusted office in. The lock-down: SSH only, nobody trusted.
              withState ? [true, true, true, true] : [true, true, false, false],
            );
            const status = await lab.dockwall(["status", "--json"]);
            assert.equal(status.code, 3, status.stdout + status.stderr);
            assert.equal(JSON.parse(status.stdout).degraded?.holding, holding, status.stdout);

            const from = watch.lines.length;
            await writeFile(boot, LAB_POLICY);
            // The applied state is LAB_POLICY's, so the kernel already holds it; the lock-down must give way.
            await watch.waitFor((l) => (withState ? applied(l) : l.event === "applied") && String(l.causes).includes("boot.yaml"), from, REACT_MS);
            assert.deepEqual(await eventually(lab, POLICY_TARGETS.filter((p) => p.port !== 8001)), []);
            const fixed = await lab.dockwall(["status", "--json"]);
            assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
            assert.equal(JSON.parse(fixed.stdout).degraded, undefined);
            watch.signal("SIGTERM");
            assert.equal(await watch.exit, 0);
          } finally {
            // A daemon left running by a failure would apply the next test's files too.
            await probing.stop();
            if (running) {
              running.signal("SIGTERM");
              await running.exit;
            }
          }
        });
      }
    }
  });
}
