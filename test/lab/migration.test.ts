/**
 * docs/MIGRATING.md on the lab: each guide starts from the foreign rules it replaces
 * (foreign-rules.ts), and this runs it as written: `dockwall audit` with the guide's policy shows
 * the holes the old rules leave, the guide's policy is applied, the old rules are removed with the
 * guide's own commands, and audit then shows none, agreeing with real connections. Every audit
 * output the guide quotes must be what the lab printed, so the guide cannot go stale.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Lab } from "./lab.js";
import { mismatches, strangerVersusAudit } from "./checks.js";
import { ADMINS_LIST, POLICY_TARGETS, type ClientName, type Target } from "./expectations.js";
import { UFW_DOCKER_RULES, WRITE_UPS_RULES, WRITE_UPS_SET, ufwInputRules } from "./foreign-rules.js";

const DOCS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../docs");
/** The policy path the guide writes; the lab's own path is put back to it before comparing. */
const GUIDE_POLICY_PATH = "/etc/dockwall/dockwall.yaml";

/** The fenced block right after `<!-- lab:NAME -->` in a doc. */
function docBlock(doc: { file: string; text: string }, name: string): string {
  const m = new RegExp(`<!-- lab:${name} -->\\n\`\`\`[\\w-]*\\n([\\s\\S]*?)\\n\`\`\`\\n`).exec(doc.text);
  assert.ok(m, `docs/${doc.file} has a fenced block after <!-- lab:${name} -->`);
  return m[1]!;
}

/**
 * What may differ between two runs of the same lab: a socket's process id, and so the width of
 * audit's WHAT column.
 */
function normalised(text: string): string {
  return text.replace(/\(pid \d+\)/g, "(pid N)").replace(/ {2,}/g, "  ");
}

/** [] if the block after `<!-- lab:NAME -->` is `printed` (normalised), else what to paste there. */
function quoted(doc: { file: string; text: string }, name: string, printed: string): string[] {
  return normalised(docBlock(doc, name)) === normalised(printed) ? [] : [`docs/${doc.file} <!-- lab:${name} --> should quote what the lab printed:\n${printed}`];
}

/** The commands of a sh block, one a line, comments and blank lines left out. */
function commands(block: string): string[] {
  return block.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
}

/** Who reaches what under a guide's policy, from the lab's targets (the loopback-published port has no listener outside). */
function targetsAllowing(allowed: (t: Target) => ClientName[]): Target[] {
  return POLICY_TARGETS.filter((t) => t.port !== 9090).map((t) => ({ ...t, allowed: allowed(t) }));
}

describe("docs/MIGRATING.md on Docker 20.10 (ip6tables DNAT): audit before and after, the guide's own commands", () => {
  let lab: Lab;
  let guide: { file: string; text: string };
  let troubleshooting: { file: string; text: string };
  let dockerOnly: { ipv4: string; ipv6: string };

  before(async () => {
    const doc = async (file: string) => ({ file, text: await readFile(path.join(DOCS, file), "utf8") });
    [guide, troubleshooting] = [await doc("MIGRATING.md"), await doc("TROUBLESHOOTING.md")];
    lab = await Lab.create({ ipv6Mode: "ip6tables", ipForwardBeforeDocker: false });
    await writeFile(path.join(lab.workDir, "admins.list"), ADMINS_LIST);
    dockerOnly = { ipv4: await lab.hostIptablesSave("ipv4"), ipv6: await lab.hostIptablesSave("ipv6") };
  });
  after(async () => {
    await lab?.destroy();
  });

  /** Docker's own rules only, as before each guide: dockwall's removed, both families restored. */
  async function backToDockerOnly(): Promise<void> {
    const removed = await lab.dockwall(["remove"]);
    assert.equal(removed.code, 0, removed.stdout + removed.stderr);
    for (const family of ["ipv4", "ipv6"] as const) {
      const back = await lab.exec(lab.hostNs, family === "ipv4" ? "iptables-restore" : "ip6tables-restore", [], dockerOnly[family]);
      assert.equal(back.code, 0, back.stderr);
    }
  }

  async function load(family: "ipv4" | "ipv6", rules: string): Promise<void> {
    const r = await lab.exec(lab.hostNs, family === "ipv4" ? "iptables-restore" : "ip6tables-restore", ["--noflush"], rules);
    assert.equal(r.code, 0, r.stderr);
  }

  /** `dockwall audit -c POLICY` as the guide shows it: the lab's policy path written as the guide's. */
  async function audit(policy: string): Promise<{ code: number; text: string }> {
    const r = await lab.dockwall(["audit", "-c", policy]);
    assert.equal(r.stderr, "", "audit warns of nothing");
    return { code: r.code, text: r.stdout.replaceAll(policy, GUIDE_POLICY_PATH).trimEnd() };
  }

  /** Every port at the host's address, from the stranger: audit says "anyone" exactly where a real connection gets in. */
  async function auditAgreesWithStranger(policy: string): Promise<void> {
    const r = await lab.dockwall(["audit", "-c", policy, "--json"]);
    const { wrong } = await strangerVersusAudit(lab, r.stdout, POLICY_TARGETS.filter((t) => t.port !== 9090));
    assert.deepEqual(wrong, []);
  }

  /**
   * The guide's steps, checked: `run` does each removal command the lab can (ufw's are simulated by
   * the caller). Returns the quotes of the guide that differ from what the lab printed: asserted
   * last by the caller, so a stale quote shows that every other check passed, and what to paste.
   */
  async function migrate(name: string, opts: { loadOld: () => Promise<void>; holesBefore: RegExp[]; run: (command: string) => Promise<void>; expected: Target[] }): Promise<string[]> {
    const policy = path.join(lab.workDir, `${name}.yaml`);
    await writeFile(policy, `${docBlock(guide, `${name}:policy`)}\n`);
    await opts.loadOld();

    const before = await audit(policy);
    assert.equal(before.code, 3, `audit before exits 3: holes\n${before.text}`);
    for (const hole of opts.holesBefore) assert.match(before.text, hole);
    await auditAgreesWithStranger(policy);

    const applied = await lab.dockwall(["apply", "-c", policy]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    for (const command of commands(docBlock(guide, `${name}:remove`))) await opts.run(command);

    const afterAudit = await audit(policy);
    assert.equal(afterAudit.code, 0, `audit after exits 0: no holes\n${afterAudit.text}`);
    assert.doesNotMatch(afterAudit.text, /open to anyone, not in the policy/);
    await auditAgreesWithStranger(policy);
    assert.deepEqual(await mismatches(lab, opts.expected), [], "the probe matrix is what the guide's policy says");

    return [quoted(guide, `${name}:audit-before`, before.text), quoted(guide, `${name}:audit-after`, afterAudit.text)].flat();
  }

  const sh = async (command: string) => {
    const r = await lab.exec(lab.hostNs, "sh", ["-c", command]);
    assert.equal(r.code, 0, `${command}: ${r.stderr}`);
  };

  it("from the write-ups' DOCKER-USER + ipset scripts: the IPv6 hole before, none after", async () => {
    await backToDockerOnly();
    const trusted: ClientName[] = ["trusted", "admin"];
    const stale = await migrate("write-ups", {
      loadOld: async () => {
        const created = await lab.exec(lab.hostNs, "ipset", ["restore"], `create ${WRITE_UPS_SET} hash:net family inet\nadd ${WRITE_UPS_SET} 198.18.0.10\nadd ${WRITE_UPS_SET} 198.18.0.30\n`);
        assert.equal(created.code, 0, created.stderr);
        await load("ipv4", WRITE_UPS_RULES);
      },
      // IPv4 only: the database and the host's metrics are open to anyone over IPv6.
      holesBefore: [/^5432\/tcp\s+IPv6\s+container db 5432\/tcp\s+anyone\s+<- open to anyone, not in the policy$/m, /^9100\/tcp\s+IPv6\s+host socket: socat \(pid \d+\)\s+anyone\s+<- open/m],
      run: sh,
      expected: targetsAllowing((t) => (t.container !== undefined ? [] : t.port === 22 || t.port === 8080 ? ["trusted", "stranger", "admin"] : trusted)),
    });
    assert.equal((await lab.exec(lab.hostNs, "ipset", ["list", WRITE_UPS_SET])).code, 1, "the old set is gone");
    // docs/TROUBLESHOOTING.md reads an explain of the stranger's connection to the database, under this policy.
    const explained = await lab.dockwall(["explain", lab.clients.stranger.ipv4, "tcp/5432"]);
    assert.equal(explained.code, 3, explained.stdout + explained.stderr);
    const text = explained.stdout.replaceAll(path.join(lab.workDir, "write-ups.yaml"), GUIDE_POLICY_PATH).trimEnd();
    assert.deepEqual([...stale, ...quoted(troubleshooting, "explain-drop", text)], []);
  });

  it("from ufw-docker: the IPv6 hole and the container-port hole before, none after", async () => {
    await backToDockerOnly();
    const stale = await migrate("ufw-docker", {
      loadOld: async () => {
        await load("ipv4", UFW_DOCKER_RULES);
        for (const family of ["ipv4", "ipv6"] as const) await load(family, ufwInputRules(family));
      },
      holesBefore: [/^5432\/tcp\s+IPv6\s+container db 5432\/tcp\s+anyone\s+<- open to anyone, not in the policy$/m, /^8002\/tcp\s+IPv4\s+container api 8000\/tcp\s+.*198\.18\.0\.30$/m],
      run: async (command) => {
        if (command !== "ufw disable") return sh(command);
        // What `ufw disable` does to the lab's stand-in for ufw: its INPUT rules and its route rules go.
        for (const family of ["ipv4", "ipv6"] as const) {
          for (const rule of ufwInputRules(family).split("\n").filter((l) => l.startsWith("-A INPUT "))) {
            const r = await lab.exec(lab.hostNs, family === "ipv4" ? "iptables" : "ip6tables", ["-D", ...rule.slice(3).split(" ")]);
            assert.equal(r.code, 0, `${family} -D ${rule}: ${r.stderr}`);
          }
        }
        await sh("iptables -F ufw-user-forward");
        await sh("iptables -X ufw-user-forward");
      },
      expected: targetsAllowing((t) => (t.container !== undefined ? [] : t.port === 22 ? ["trusted", "stranger", "admin"] : t.port === 8001 ? ["admin"] : [])),
    });
    assert.deepEqual(stale, []);
  });
});
