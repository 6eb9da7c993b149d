/**
 * `dockwall init` on a real Docker host, from the admin's SSH session: init, check and apply as a
 * newcomer would, then real connections. The admin's open connection to port 22 keeps working,
 * the admin can open a new one, and a stranger reaches neither SSH nor the published database,
 * which the stranger reached before (so the closing is dockwall's); plan and audit, the rest of a
 * newcomer's walk-through, succeed on the way, and audit shows what init opened. One lab mode: the path of an
 * SSH connection (INPUT, conntrack) does not depend on Docker's IPv6 mode.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { HOST_ADDR, Lab, listenCommand, REPO_DIR } from "./lab.js";
import { ProcessRunner } from "../../src/exec/runner.js";

/** The README's walk-through, from the package as `npm install -g` puts it (packed from this build; no registry needed: nothing to fetch). */
async function installPackage(lab: Lab): Promise<string[]> {
  const run = new ProcessRunner();
  const packed = await run.run("npm", ["pack", REPO_DIR, "--ignore-scripts", "--silent", "--pack-destination", lab.workDir]);
  assert.equal(packed.code, 0, packed.stderr);
  const tarball = path.join(lab.workDir, packed.stdout.trim().split("\n").at(-1)!);
  const prefix = path.join(lab.workDir, "npm-global");
  const installed = await run.run("npm", ["install", "-g", "--prefix", prefix, "--offline", "--no-audit", "--no-fund", tarball]);
  assert.equal(installed.code, 0, installed.stderr);
  return [path.join(prefix, "bin", "dockwall")];
}

describe("dockwall init on Docker 20.10, from the admin's SSH session", () => {
  let lab: Lab;

  before(async () => {
    lab = await Lab.create({ ipv6Mode: "proxy", ipForwardBeforeDocker: false, withServices: false });
    // "sshd": an echo service on 22, so one connection can be used before and after the apply.
    lab.spawnIn(lab.hostNs, "sh", ["-c", listenCommand(22, "ssh", "tcp", true)]);
    await lab.startContainer({ name: "db", args: ["-p", "5432:5432"], command: lab.servicesCommand([[5432, "db", "tcp", true]]) });
  });
  after(async () => {
    await lab?.destroy();
  });

  it("the README's walk-through (npm install -g, init, check, plan, apply --confirm, confirm, audit): the admin's session and new SSH connections keep working, the stranger reaches nothing", async () => {
    const { admin, stranger } = lab.clients;
    const dockwall = await installPackage(lab);
    const dockwallOk = async (args: string[], env: Record<string, string> = {}) => {
      const r = await lab.dockwallFrom(dockwall, args, undefined, env);
      assert.equal(r.code, 0, `dockwall ${args.join(" ")} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    // Without dockwall, everyone reaches both (waited for: the services come up a moment after start).
    for (const [client, port] of [[admin, 22], [stranger, 5432]] as const) {
      let up = false;
      for (let i = 0; i < 40 && !up; i++) up = await lab.probe(client, "ipv4", "tcp", port);
      assert.ok(up, `${client.name} -> ${port} before dockwall`);
    }
    assert.equal(await lab.probe(stranger, "ipv6", "tcp", 5432), true, "stranger -> db over IPv6 before dockwall");

    const session = lab.openConnection(admin, "ipv4", 22);
    try {
      assert.equal(await session.exchange("before"), "before");
      // The session's SSH_CONNECTION, as sshd would set it: the admin's real client port.
      const ss = await lab.exec(admin.ns, "ss", ["-Htn", "state", "established", "dst", `${HOST_ADDR.ipv4}:22`]);
      const clientPort = /198\.18\.0\.30:(\d+)/.exec(ss.stdout)?.[1];
      assert.ok(clientPort, `the admin's connection in ss:\n${ss.stdout}`);
      const file = path.join(lab.workDir, "etc-dockwall", "dockwall.yaml");
      const fromAdmin = { SSH_CONNECTION: `${admin.ipv4} ${clientPort} ${HOST_ADDR.ipv4} 22` };
      const init = await lab.dockwallFrom(dockwall, ["init", "-c", file], undefined, fromAdmin);
      assert.equal(init.code, 0, `init failed:\n${init.stdout}\n${init.stderr}`);
      assert.match(init.stdout, /opens 22\/tcp to admins \(198\.18\.0\.30\)/);
      const text = await readFile(file, "utf8");
      // Docker's published database is listed, closed, with where it was found.
      assert.match(text, /^# {3}- port: 5432 +# container db: its 5432\/tcp/m, text);
      await dockwallOk(["check", "-c", file]);
      assert.match(await dockwallOk(["plan", "-c", file]), /opens 22\/tcp to /);
      // From the admin's session, as the README says: the lock-out guard checks it, the keeper waits for confirm.
      assert.match(await dockwallOk(["apply", "-c", file, "--confirm", "120"], fromAdmin), /run `dockwall confirm` by /);
      assert.match(await dockwallOk(["confirm"], fromAdmin), /^confirmed/);
      // The live rules as audit reads them: SSH for the admins, the database for nobody, nothing open to anyone.
      const audit = await dockwallOk(["audit", "-c", file]);
      assert.match(audit, /^22\/tcp +IPv4 +host socket.* +group admins$/m, audit);
      assert.match(audit, /^5432\/tcp +IPv4 +container db 5432\/tcp +nobody$/m, audit);
      assert.match(audit, /^5432\/tcp +IPv6 +container db 5432\/tcp +nobody$/m, audit);

      assert.equal(await session.exchange("after"), "after", "the admin's open connection after apply");
      const [adminNew, strangerSsh, strangerDb4, strangerDb6, adminDb] = await lab.probeMany([
        { client: admin, family: "ipv4", proto: "tcp", port: 22 },
        { client: stranger, family: "ipv4", proto: "tcp", port: 22 },
        { client: stranger, family: "ipv4", proto: "tcp", port: 5432 },
        { client: stranger, family: "ipv6", proto: "tcp", port: 5432 },
        { client: admin, family: "ipv4", proto: "tcp", port: 5432 },
      ]);
      assert.deepEqual(
        { adminNew, strangerSsh, strangerDb4, strangerDb6, adminDb },
        { adminNew: true, strangerSsh: false, strangerDb4: false, strangerDb6: false, adminDb: false },
      );
    } finally {
      session.close();
    }
  });
});
