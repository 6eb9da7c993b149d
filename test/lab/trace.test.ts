/**
 * The tracer against the kernel: for each rule set the lab's whole probe matrix (every client,
 * target, port, protocol and family) is run twice, once as real connections and once through the
 * tracer over the live `iptables-save`/`ipset save` of the Docker host, and the two must agree.
 * Rule sets: Docker alone, dockwall's, the write-ups' ipset + DOCKER-USER + INPUT rules, and a
 * ufw-docker-style DOCKER-USER block. Then `explain` and `audit` as a user runs them.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { Lab, HOST_ADDR } from "./lab.js";
import { ENGINES_UNDER_TEST } from "./engines.js";
import { strangerVersusAudit, dockwallOk } from "./checks.js";
import { TRACED_TARGETS as TARGETS, disagreements } from "./tracer-agreement.js";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { LAB_POLICY, writeLabPolicy } from "./expectations.js";
import { UFW_DOCKER_RULES, WRITE_UPS_RULES, WRITE_UPS_SET } from "./foreign-rules.js";

/**
 * What dockwall wrote for `interfaces: [nonexistent0]` before it refused such a name, by hand: the
 * guard is jumped to only for packets that come in on an interface the host does not have, so
 * everything arriving on eth0 passes it. Loaded directly, so the case stays whatever apply refuses.
 */
const ONLY_NONEXISTENT0 = `*filter
:GUARD-OUTSIDE - [0:0]
-I INPUT 1 -i nonexistent0 -j GUARD-OUTSIDE
-I FORWARD 1 -i nonexistent0 -j GUARD-OUTSIDE
-A GUARD-OUTSIDE -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
-A GUARD-OUTSIDE -p tcp -m tcp --dport 22 -j RETURN
-A GUARD-OUTSIDE -j DROP
COMMIT
`;

for (const docker of ENGINES_UNDER_TEST) {
  describe(`see, explain and change safely on Docker ${docker} (ip6tables DNAT): the tracer against the kernel, audit, explain, lock-out guard, confirm`, () => {
    let lab: Lab;
    let policy: string;
    let dockerOnly: string;

    before(async () => {
      lab = await Lab.create({ docker, ipv6Mode: "ip6tables", ipForwardBeforeDocker: false });
      policy = await writeLabPolicy(lab.workDir);
      dockerOnly = await lab.hostIptablesSave("ipv4");
    });
    after(async () => {
      await lab?.destroy();
    });

    /** Loads a foreign rule set beside Docker's, checks agreement, and puts Docker's own rules back. */
    async function agreesWith(rules: string, sets: [string, string[]][] = []): Promise<void> {
      for (const [name, members] of sets) {
        const created = await lab.exec(lab.hostNs, "ipset", ["restore"], `create ${name} hash:net family inet\n${members.map((m) => `add ${name} ${m}\n`).join("")}`);
        assert.equal(created.code, 0, created.stderr);
      }
      const loaded = await lab.exec(lab.hostNs, "iptables-restore", ["--noflush"], rules);
      assert.equal(loaded.code, 0, loaded.stderr);
      try {
        const { wrong, compared, open } = await disagreements(lab);
        assert.deepEqual(wrong, []);
        assert.ok(open > 0 && open < compared, `the rule set both lets in and keeps out (${open} of ${compared} open)`);
      } finally {
        const back = await lab.exec(lab.hostNs, "iptables-restore", [], dockerOnly);
        assert.equal(back.code, 0, back.stderr);
        for (const [name] of sets) await lab.exec(lab.hostNs, "ipset", ["destroy", name]);
      }
    }

    it("Docker alone (no firewall): every probe's verdict is the real outcome", async () => {
      const { wrong, compared, open } = await disagreements(lab);
      assert.deepEqual(wrong, []);
      assert.ok(open > compared / 2, `most of the matrix is open without a firewall (${open} of ${compared})`);
    });

    it("the write-ups' ipset + DOCKER-USER + INPUT rules: the tracer sees the IPv6 hole the kernel has", async () => {
      await agreesWith(WRITE_UPS_RULES, [[WRITE_UPS_SET, ["198.18.0.10", "198.18.0.30"]]]);
    });

    it("a ufw-docker-style DOCKER-USER block: the tracer agrees", async () => {
      await agreesWith(UFW_DOCKER_RULES);
    });

    it("rules that guard only an interface the host lacks (interfaces: [nonexistent0]): audit calls open what a stranger really reaches", async () => {
      const file = path.join(lab.workDir, "nonexistent0.yaml");
      await writeFile(file, `interfaces: [nonexistent0]\n${LAB_POLICY}`);
      const saved = { ipv4: await lab.hostIptablesSave("ipv4"), ipv6: await lab.hostIptablesSave("ipv6") };
      const restore = (family: "ipv4" | "ipv6") => (family === "ipv4" ? "iptables-restore" : "ip6tables-restore");
      try {
        for (const family of ["ipv4", "ipv6"] as const) {
          const loaded = await lab.exec(lab.hostNs, restore(family), ["--noflush"], ONLY_NONEXISTENT0);
          assert.equal(loaded.code, 0, loaded.stderr);
        }
        const { wrong } = await disagreements(lab);
        assert.deepEqual(wrong, [], "the tracer agrees with the kernel probe by probe");
        const r = await lab.dockwall(["audit", "-c", file, "--json"]);
        // Every port at the host's address, from the stranger: audit says "anyone" exactly where a real connection gets in.
        const { real, wrong: wrongAudit } = await strangerVersusAudit(lab, r.stdout, TARGETS);
        assert.deepEqual(wrongAudit, []);
        assert.ok(real.filter(Boolean).length > real.length / 2, `most ports are open to the stranger on eth0 (${real.filter(Boolean).length} of ${real.length})`);
        // The database is open to anyone and the policy does not declare it public: a hole, exit 3.
        assert.equal(r.code, 3, r.stdout + r.stderr);
        const human = await lab.dockwall(["audit", "-c", file]);
        assert.match(human.stdout, /^5432\/tcp\s+IPv4\s+container db 5432\/tcp\s+anyone\s+<- open to anyone, not in the policy$/m);
      } finally {
        for (const family of ["ipv4", "ipv6"] as const) {
          const back = await lab.exec(lab.hostNs, restore(family), [], saved[family]);
          assert.equal(back.code, 0, back.stderr);
        }
      }
    });

    it("dockwall's rules: every probe's verdict is the real outcome", async () => {
      await dockwallOk(lab, ["apply", "-c", policy]);
      const { wrong, compared, open } = await disagreements(lab);
      assert.deepEqual(wrong, []);
      assert.ok(open > 0 && open < compared);
    });

    it("explain shows the verdict and the rule that decided it, as the kernel decides", async () => {
      const stranger = await lab.dockwall(["explain", lab.clients.stranger.ipv4, "tcp/5432"]);
      assert.equal(stranger.code, 3, stranger.stdout + stranger.stderr);
      assert.match(stranger.stdout, /DNAT to 172\.17\.0\.\d+ port 5432/);
      assert.match(stranger.stdout, /-A DOCKWALL-FORWARD-OUTSIDE .*default drop.*=> DROP/);
      assert.match(stranger.stdout, /^verdict: DROP$/m);
    // The policy line behind the deciding rule: the lab policy leaves `default:` unwritten; SSH is its line 7, trusted its line 5.
    assert.ok(stranger.stdout.includes(`\ndockwall: refused by "default:", which ${policy} leaves to its default (default drop)\n`), stranger.stdout);
      assert.equal(await lab.probe(lab.clients.stranger, "ipv4", "tcp", 5432), false);
    const ssh = await lab.dockwall(["explain", lab.clients.stranger.ipv4, "tcp/22"]);
    assert.equal(ssh.code, 0, ssh.stdout + ssh.stderr);
    assert.ok(ssh.stdout.includes(`\ndockwall: allowed by ${policy}:7 (host 22/tcp)\n`), ssh.stdout);
      const trusted = await lab.dockwall(["explain", lab.clients.trusted.ipv6, "tcp/5432", "--json"]);
      assert.equal(trusted.code, 0, trusted.stdout + trusted.stderr);
      assert.equal(JSON.parse(trusted.stdout).verdict, "accept");
    assert.deepEqual(JSON.parse(trusted.stdout).dockwall, { outcome: "allowed", step: JSON.parse(trusted.stdout).dockwall?.step, description: "", entry: { kind: "policy", id: "trusted", file: policy, line: 5, col: 1 } });
      assert.equal(await lab.probe(lab.clients.trusted, "ipv6", "tcp", 5432), true);
      const bad = await lab.dockwall(["explain", "not-an-address", "tcp/99999"]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /not an IPv4 or IPv6 address/);
    });

    it("audit lists every published port and host socket with who can reach it, and exits 3 on a hole", async () => {
      const ok = await lab.dockwall(["audit", "-c", policy, "--json"]);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      const rows = JSON.parse(ok.stdout).rows as { target: { port: number; proto: string; family: string; what: string }; reach: { who: string; sources?: string[] } }[];
      const who = (port: number, family: string) => rows.find((r) => r.target.port === port && r.target.family === family)?.reach;
      assert.equal(who(8080, "ipv4")?.who, "anyone");
      assert.equal(who(22, "ipv6")?.who, "anyone");
      assert.deepEqual(who(5432, "ipv4"), { who: "some", sources: ["group office"] });
      assert.ok(who(9100, "ipv4")?.sources?.includes("group admins"), JSON.stringify(who(9100, "ipv4")));
      assert.equal(who(9090, "ipv4")?.who, "local only");
      // Without dockwall the database is open to anyone: audit says so and exits 3.
      await dockwallOk(lab, ["remove"]);
      const holes = await lab.dockwall(["audit", "-c", policy]);
      assert.equal(holes.code, 3, holes.stdout + holes.stderr);
      assert.match(holes.stdout, /^5432\/tcp\s+IPv4\s+container db 5432\/tcp\s+anyone\s+<- open to anyone, not in the policy$/m);
      assert.equal(await lab.probe(lab.clients.stranger, "ipv4", "tcp", 5432), true);
    });

    it("apply from an SSH session refuses a policy that would lock that session out, unless --force", async () => {
      await dockwallOk(lab, ["apply", "-c", policy]);
      const noSsh = path.join(lab.workDir, "no-ssh.yaml");
      await writeFile(noSsh, LAB_POLICY.replace('  - port: 22            # "ssh" from anyone\n', ""));
      assert.notEqual(await readFile(noSsh, "utf8"), LAB_POLICY, "the policy without SSH differs");
      const fromStranger = { SSH_CONNECTION: `${lab.clients.stranger.ipv4} 50022 ${HOST_ADDR.ipv4} 22` };
      const refused = await lab.dockwall(["apply", "-c", noSsh], undefined, fromStranger);
      assert.equal(refused.code, 2, refused.stdout + refused.stderr);
      assert.match(refused.stderr, /refusing to apply: the SSH session this runs from \(198\.18\.0\.20 to 198\.18\.0\.1 port 22, in on eth0\) could not reconnect/);
      assert.doesNotMatch(refused.stderr, /\n\s+at /);
      assert.equal(await lab.probe(lab.clients.stranger, "ipv4", "tcp", 22), true, "nothing was applied: SSH still open");
      // From a trusted address the same policy keeps the session: applied without --force.
      const fromTrusted = { SSH_CONNECTION: `${lab.clients.trusted.ipv6} 50022 ${HOST_ADDR.ipv6} 22` };
      const kept = await lab.dockwall(["apply", "-c", noSsh], undefined, fromTrusted);
      assert.equal(kept.code, 0, kept.stderr);
      assert.equal(await lab.probe(lab.clients.stranger, "ipv4", "tcp", 22), false);
      assert.equal(await lab.probe(lab.clients.trusted, "ipv6", "tcp", 22), true);
      await dockwallOk(lab, ["apply", "-c", policy]);
      const forced = await lab.dockwall(["apply", "-c", noSsh, "--force"], undefined, fromStranger);
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal(await lab.probe(lab.clients.stranger, "ipv4", "tcp", 22), false);
      await dockwallOk(lab, ["apply", "-c", policy]);
    });

    /** LAB_POLICY without the office's IPv4 range: the trusted client's new IPv4 connections are refused. */
    async function narrowedPolicy(): Promise<string> {
      const file = path.join(lab.workDir, "narrowed.yaml");
      await writeFile(file, LAB_POLICY.replace("office: [198.18.0.8/29, ", "office: ["));
      return file;
    }

    async function trustedDbOpenWithin(ms: number): Promise<boolean> {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        if (await lab.probe(lab.clients.trusted, "ipv4", "tcp", 5432)) return true;
        await new Promise((r) => setTimeout(r, 300));
      }
      return false;
    }

    it("apply --confirm not confirmed: the previous rules come back by themselves, and an established session is kept", async () => {
      await dockwallOk(lab, ["apply", "-c", policy]);
      const conn = lab.openConnection(lab.clients.trusted, "ipv4", 5432);
      try {
        assert.equal(await conn.exchange("one"), "one");
        const r = await lab.dockwall(["apply", "-c", await narrowedPolicy(), "--confirm", "4"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /run `dockwall confirm` by .* \(4 s\) or the previous rules come back/);
        assert.equal(await lab.probe(lab.clients.trusted, "ipv4", "tcp", 5432), false, "the change is in");
        assert.equal(await conn.exchange("two"), "two");
        // Nobody confirms: after the deadline the keeper rolls back.
        assert.equal(await trustedDbOpenWithin(20_000), true, "rolled back after the window");
        assert.equal(await conn.exchange("three"), "three", "the established session survived both changes");
        const status = JSON.parse((await lab.dockwall(["status", "--json"])).stdout) as { source: string; inSync: boolean };
        assert.match(status.source, /^not confirmed, rollback to /);
        assert.equal(status.inSync, true);
        const late = await lab.dockwall(["confirm"]);
        assert.equal(late.code, 1);
        assert.match(late.stderr, /nothing to confirm/);
      } finally {
        conn.close();
      }
    });

    it("apply --confirm then dockwall confirm in time: the new rules stay past the deadline", async () => {
      await dockwallOk(lab, ["apply", "-c", policy]);
      const r = await lab.dockwall(["apply", "-c", await narrowedPolicy(), "--confirm", "3"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(await dockwallOk(lab, ["confirm"]), /^confirmed/);
      await new Promise((res) => setTimeout(res, 5000));
      assert.equal(await lab.probe(lab.clients.trusted, "ipv4", "tcp", 5432), false, "still the confirmed rules");
      assert.equal(await lab.probe(lab.clients.trusted, "ipv6", "tcp", 5432), true);
      await dockwallOk(lab, ["apply", "-c", policy]);
    });

    it("apply --confirm on a terminal asks: any answer but yes rolls back at once; yes keeps the rules", async () => {
      await dockwallOk(lab, ["apply", "-c", policy]);
      const no = await lab.dockwallOnTerminal(["apply", "-c", await narrowedPolicy(), "--confirm", "20"], "no\n");
      assert.equal(no.code, 3, no.stdout + no.stderr);
      assert.match(no.stdout, /keep these rules\? type "yes" within \d+ s/);
      assert.match(no.stdout, /rolled back to the state of/);
      assert.equal(await lab.probe(lab.clients.trusted, "ipv4", "tcp", 5432), true);
      const yes = await lab.dockwallOnTerminal(["apply", "-c", await narrowedPolicy(), "--confirm", "20"], "yes\n");
      assert.equal(yes.code, 0, yes.stdout + yes.stderr);
      assert.match(yes.stdout, /confirmed: the new rules stay/);
      assert.equal(await lab.probe(lab.clients.trusted, "ipv4", "tcp", 5432), false);
      await dockwallOk(lab, ["apply", "-c", policy]);
    });
  });
}
