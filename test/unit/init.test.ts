/**
 * `dockwall init`: the starter policy from several fake hosts goes through the real loader and
 * compiler, as written and with every commented entry uncommented; it opens only the session's SSH
 * port (to the session's source), lists every other port it found, and says what it could not see.
 * The session is read from SSH_CONNECTION or a parent's; the file is never overwritten without
 * --force and never through a link.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { lstat, mkdtemp, readFile, readdir, rm, symlink, writeFile, chmod } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadPolicyText } from "../../src/policy/load.js";
import { formatPolicyError } from "../../src/policy/errors.js";
import { compile } from "../../src/compile/index.js";
import { render } from "../../src/backends/rendered.js";
import type { ContainerFacts, Facts } from "../../src/facts/types.js";
import type { Policy } from "../../src/policy/types.js";
import type { ListeningSocket } from "../../src/facts/sockets.js";
import { starterPolicy, type InitFacts } from "../../src/init/starter-policy.js";
import { findSshSession, parseSshConnection, type SshSession } from "../../src/init/session.js";
import { PolicyExists, FileRefused, writePolicyFile } from "../../src/init/write-policy.js";

const FILE = "/etc/dockwall/dockwall.yaml";

const container = (name: string, published: ContainerFacts["published"]): ContainerFacts => ({
  id: `${name}0123456789abcdef`,
  name,
  running: true,
  published,
  addresses: ["172.17.0.2"],
  networks: ["bridge"],
});
const tcp = (hostPort: number, containerPort: number, hostIp = "0.0.0.0") => ({ hostIp, hostPort, containerPort, proto: "tcp" as const });
const socket = (proto: "tcp" | "udp", address: string, port: number): ListeningSocket => ({ proto, family: address.includes(":") ? "ipv6" : "ipv4", address, port, inode: port });
const session = (line: string): SshSession => {
  const p = parseSshConnection(line, "SSH_CONNECTION");
  assert.ok(p.ok);
  return p.session;
};

/** The lab's host, roughly: containers published on every address, one on loopback, UDP, docker-proxy's sockets, host services. */
const BUSY: InitFacts = {
  docker: {
    reachable: true,
    version: "20.10.24",
    containers: [
      container("web", [tcp(8080, 80), tcp(8080, 80, "::")]),
      container("db", [tcp(5432, 5432)]),
      container("local", [tcp(9090, 80, "127.0.0.1")]),
      container("dns", [{ hostIp: "0.0.0.0", hostPort: 5353, containerPort: 5353, proto: "udp" }]),
      { ...container("stopped", [tcp(7000, 7000)]), running: false },
    ],
  },
  sockets: {
    ok: true,
    list: [
      socket("tcp", "0.0.0.0", 22),
      socket("tcp", "::", 22),
      socket("tcp", "0.0.0.0", 9100),
      socket("udp", "0.0.0.0", 53),
      socket("tcp", "127.0.0.1", 631),
      socket("tcp", "0.0.0.0", 2375),
      // docker-proxy, for the published ports
      socket("tcp", "::", 8080),
      socket("tcp", "0.0.0.0", 5432),
    ],
  },
  session: session("198.18.0.30 50022 198.18.0.1 22"),
  hostname: "lab",
  writtenAt: "2026-12-01T12:00:00Z",
};

const CASES: Record<string, InitFacts> = {
  "a busy host, in an SSH session": BUSY,
  "no session, Docker unreachable, sockets unreadable": {
    docker: { reachable: false, error: "connect ENOENT /var/run/docker.sock", containers: [] },
    sockets: { ok: false, error: "/proc/net/tcp: EACCES" },
    session: undefined,
  },
  "an IPv6 session on port 2222, nothing else": {
    docker: { reachable: true, containers: [] },
    sockets: { ok: true, list: [] },
    session: session("2001:db8:ff::30 40000 2001:db8:ff::1 2222"),
  },
  "a session from loopback (ssh localhost), only loopback listeners": {
    docker: { reachable: true, containers: [container("local", [tcp(9090, 80, "127.0.0.1")])] },
    sockets: { ok: true, list: [socket("tcp", "127.0.0.1", 22), socket("tcp", "::1", 25)] },
    session: session("127.0.0.1 40000 127.0.0.1 22"),
  },
  "hostile names: a container name and a host name that carry YAML lines": {
    docker: { reachable: false, error: "bad\nhost: [{port: 1}]", containers: [container("x\nhost: [{port: 1}]\n", [tcp(8080, 80)])] },
    sockets: { ok: true, list: [] },
    session: session("198.18.0.30 50022 198.18.0.1 22"),
    hostname: "h\ntrusted: [any]",
  },
};

const HOST_FACTS: Facts["host"] = { interfaces: [{ name: "eth0", addresses: ["198.18.0.1/24", "2001:db8:ff::1/64"] }], iptables: "nft" };

async function load(text: string): Promise<Policy> {
  const r = await loadPolicyText(text, FILE, () => Promise.reject(new Error("no group file expected")));
  if (!r.ok) assert.fail(`${r.errors.map(formatPolicyError).join("\n")}\n---\n${text}`);
  return r.policy;
}

/** Loads and compiles as `check`, `plan` and `apply` do, on the same host's facts. */
async function loadAndCompile(text: string, f: InitFacts): Promise<{ policy: Policy; rules: Record<"ipv4" | "ipv6", string> }> {
  const policy = await load(text);
  const facts: Facts = { docker: { ...f.docker, networks: [] }, host: HOST_FACTS };
  const desired = render(compile(policy, facts));
  const rules = (family: "ipv4" | "ipv6") => desired[family].chains.flatMap((c) => c.rules.map((r) => `${c.name} ${r}`)).join("\n");
  return { policy, rules: { ipv4: rules("ipv4"), ipv6: rules("ipv6") } };
}

/** Every commented entry taken in: `# - port: ...`, `#   proto: ...`, `# containers:` lose their `# `. */
function uncommented(text: string): string {
  return text
    .split("\n")
    .map((l) => l.replace(/^(\s*)# (\s*(?:- )?(?:port|proto|from|container):|containers:)/, "$1$2"))
    .join("\n");
}

/** The comments as sentences: a long one is wrapped over several `# ` lines. */
const flat = (text: string) => text.replace(/\n\s*# (?!-)/g, " ");

const opened = (p: Policy, which: "host" | "containers") => p[which].flatMap((o) => o.protos.flatMap((proto) => o.ports.map((r) => `${r.from}/${proto}`)));

for (const [name, facts] of Object.entries(CASES)) {
  test(`init: ${name}: the starter policy loads and compiles, and so does every commented entry uncommented`, async () => {
    const { text } = starterPolicy(facts);
    const { policy, rules } = await loadAndCompile(text, facts);
    // Everything but the SSH port is closed.
    assert.equal(policy.containers.length, 0);
    assert.equal(policy.trusted.length, 0);
    assert.equal(policy.host.length, 1);
    const ssh = facts.session?.serverPort ?? 22;
    for (const family of ["ipv4", "ipv6"] as const) {
      assert.match(rules[family], new RegExp(`^DOCKWALL-INPUT\\S* .*--dport ${ssh} .*-j RETURN`, "m"), rules[family]);
      assert.equal(rules[family].match(/--dports? \d+/g)?.length, 1, rules[family]);
    }
    await loadAndCompile(uncommented(text), facts);
  });
}

test("init: in a session, only the session's port is open, to the session's source, as the group admins", async () => {
  const policy = await load(starterPolicy(BUSY).text);
  assert.deepEqual(policy.groups, [{ name: "admins", ipv4: ["198.18.0.30"], ipv6: [] }]);
  assert.deepEqual(opened(policy, "host"), ["22/tcp"]);
  assert.deepEqual(policy.host[0]!.from, [{ kind: "group", name: "admins" }]);
  assert.equal(policy.default, "drop");
});

test("init: every published port and listening socket found is listed, closed; loopback-only ones are named but not offered", async () => {
  const { text, closed } = starterPolicy(BUSY);
  const all = await load(uncommented(text));
  assert.deepEqual(opened(all, "containers"), ["5353/udp", "5432/tcp", "8080/tcp"]);
  // docker-proxy's 8080 and 5432 are the published ports, not host services; 22 is the open one.
  assert.deepEqual(opened(all, "host"), ["22/tcp", "53/udp", "2375/tcp", "9100/tcp"]);
  assert.deepEqual(closed, { published: 3, listening: 3 });
  assert.match(text, /- port: 8080 +# container web: its 80\/tcp; published on 0\.0\.0\.0 and ::$/m);
  assert.match(text, /- port: 2375 .*never open it to anyone/);
  assert.match(flat(text), /loopback only.*9090\/tcp \(container local: its 80\/tcp, on 127\.0\.0\.1\)/);
  assert.match(flat(text), /Local only.*631\/tcp on 127\.0\.0\.1/);
  // A stopped container publishes nothing now.
  assert.doesNotMatch(text, /7000/);
});

test("init: Docker unreachable or sockets unreadable: said in the file and as warnings, the policy still closed", () => {
  const starter = starterPolicy(CASES["no session, Docker unreachable, sockets unreadable"]!);
  const { warnings, opens } = starter;
  const text = flat(starter.text);
  assert.match(text, /^# WARNING: Docker was not reachable \(connect ENOENT \/var\/run\/docker\.sock\): its published ports are NOT listed/m);
  assert.match(starter.text, /^# Published container ports: NOT listed, Docker was not reachable/m);
  assert.match(text, /^# WARNING: the host's listening sockets could not be read \(\/proc\/net\/tcp: EACCES\)/m);
  assert.deepEqual(opens, ["22/tcp to anyone"]);
  assert.equal(warnings.length, 3);
  assert.match(warnings.join("\n"), /no SSH session was found.*port 22\/tcp is open to anyone/);
});

test("init: without an outside session the SSH port is open to anyone, with why in the file", async () => {
  const loopback = starterPolicy(CASES["a session from loopback (ssh localhost), only loopback listeners"]!);
  const policy = await load(loopback.text);
  assert.deepEqual(policy.host[0]!.from, [{ kind: "any" }]);
  assert.deepEqual(policy.groups, []);
  assert.match(flat(loopback.text), /comes from loopback \(127\.0\.0\.1\)/);
  assert.match(loopback.warnings.join("\n"), /open to anyone/);
  const v6 = await load(starterPolicy(CASES["an IPv6 session on port 2222, nothing else"]!).text);
  assert.deepEqual(v6.groups, [{ name: "admins", ipv4: [], ipv6: ["2001:db8:ff::30"] }]);
  assert.deepEqual(opened(v6, "host"), ["2222/tcp"]);
});

test("init: text from Docker and the host stays inside its comment", async () => {
  const { text } = starterPolicy(CASES["hostile names: a container name and a host name that carry YAML lines"]!);
  for (const p of [await load(text), await load(uncommented(text))]) {
    assert.deepEqual(p.trusted, []);
    assert.ok(!opened(p, "host").includes("1/tcp"));
  }
  assert.ok(text.split("\n").every((l) => !/^(host|trusted): \[/.test(l)));
});

test("init: SSH_CONNECTION is parsed strictly (as apply's lock-out guard parses it); a mapped IPv4 client is its IPv4, a zone is dropped", () => {
  assert.deepEqual(parseSshConnection("::ffff:198.18.0.30 5 ::ffff:198.18.0.1 22", "SSH_CONNECTION"), {
    ok: true,
    session: { client: "198.18.0.30", clientPort: 5, server: "198.18.0.1", serverPort: 22, foundIn: "SSH_CONNECTION" },
  });
  const zoned = parseSshConnection("fe80::1%eth0 5 fe80::2%eth0 22", "SSH_CONNECTION");
  assert.ok(zoned.ok && zoned.session.client === "fe80::1");
  for (const bad of ["198.18.0.30 5 198.18.0.1", "198.18.0.30 5 198.18.0.1 0", "198.18.0.30/24 5 198.18.0.1 22", "x 5 198.18.0.1 22", "198.18.0.30 5 198.18.0.1 22\nhost: x"]) {
    const r = parseSshConnection(bad, "SSH_CONNECTION");
    assert.equal(r.ok, false, bad);
    assert.ok(!r.ok && !r.message.includes("\n"));
  }
});

test("init: the session is found in a parent's environment (sudo drops SSH_CONNECTION), and a malformed one is an error", async () => {
  const proc: Record<string, string> = {
    "/proc/40/environ": "HOME=/root\0",
    "/proc/40/status": "Name:\tsudo\nPPid:\t30\n",
    "/proc/30/environ": "USER=admin\0SSH_CONNECTION=198.18.0.30 50022 198.18.0.1 22\0",
    "/proc/30/comm": "bash\n",
  };
  const read = async (f: string) => proc[f] ?? Promise.reject(new Error("ENOENT"));
  assert.deepEqual(await findSshSession({}, 40, read), {
    ok: true,
    session: { client: "198.18.0.30", clientPort: 50022, server: "198.18.0.1", serverPort: 22, foundIn: "SSH_CONNECTION of bash (pid 30)" },
  });
  assert.equal(await findSshSession({}, 1, read), undefined);
  const own = await findSshSession({ SSH_CONNECTION: "2001:db8::30 1 2001:db8::1 2222" }, 40, read);
  assert.ok(own?.ok && own.session.serverPort === 2222 && own.session.foundIn === "SSH_CONNECTION");
  const bad = await findSshSession({ SSH_CONNECTION: "garbage" }, 40, read);
  assert.ok(bad !== undefined && !bad.ok);
});

test("init: a new file appears whole; an existing one is kept without --force and replaced (mode kept) with it; a link never", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-init-"));
  try {
    const file = path.join(dir, "etc-dockwall", "dockwall.yaml");
    await writePolicyFile(file, "one\n", { force: false });
    assert.equal(await readFile(file, "utf8"), "one\n");
    assert.equal((await lstat(file)).mode & 0o777, 0o644);
    await assert.rejects(writePolicyFile(file, "two\n", { force: false }), PolicyExists);
    assert.equal(await readFile(file, "utf8"), "one\n");
    await chmod(file, 0o600);
    await writePolicyFile(file, "three\n", { force: true });
    assert.equal(await readFile(file, "utf8"), "three\n");
    assert.equal((await lstat(file)).mode & 0o777, 0o600);
    const target = path.join(dir, "target.yaml");
    const linked = path.join(dir, "linked.yaml");
    await writeFile(target, "theirs\n");
    await symlink(target, linked);
    await assert.rejects(writePolicyFile(linked, "mine\n", { force: false }), PolicyExists);
    await assert.rejects(writePolicyFile(linked, "mine\n", { force: true }), FileRefused);
    assert.equal(await readFile(target, "utf8"), "theirs\n");
    assert.ok((await lstat(linked)).isSymbolicLink());
    // A dangling link is a name that exists: not written through either.
    const dangling = path.join(dir, "dangling.yaml");
    await symlink(path.join(dir, "nowhere.yaml"), dangling);
    await assert.rejects(writePolicyFile(dangling, "mine\n", { force: false }), PolicyExists);
    await assert.rejects(lstat(path.join(dir, "nowhere.yaml")));
    // No temporary file left behind.
    assert.deepEqual((await readdir(path.join(dir, "etc-dockwall"))).sort(), ["dockwall.yaml"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../dockwall.cjs");

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000, env: { PATH: process.env.PATH ?? "", ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test("init, then check, on the command line: the file passes check; a second init keeps it (exit 1); - writes to standard output", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-init-cli-"));
  try {
    const file = path.join(dir, "dockwall.yaml");
    // Docker is not there: the policy is written all the same, and says so.
    const env = { SSH_CONNECTION: "198.18.0.30 50022 198.18.0.1 22", DOCKER_HOST: `unix://${path.join(dir, "no-docker.sock")}` };
    const init = await cli(["init", "-c", file], env);
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /^wrote .*dockwall\.yaml: opens 22\/tcp to admins \(198\.18\.0\.30\)/);
    assert.match(init.stderr, /^warning: Docker was not reachable/m);
    const check = await cli(["check", "-c", file], env);
    assert.equal(check.code, 0, check.stderr);
    const written = await readFile(file, "utf8");
    const again = await cli(["init", "-c", file], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists: not overwritten \(give --force/);
    assert.equal(await readFile(file, "utf8"), written);
    const stdout = await cli(["init", "-c", "-"], { ...env, SSH_CONNECTION: "not a session" });
    assert.equal(stdout.code, 2);
    assert.equal(stdout.stdout, "");
    assert.match(stdout.stderr, /SSH_CONNECTION is "not a session": not what sshd writes \(CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT\); nothing written/);
    const out = await cli(["init", "-c", "-"], env);
    assert.equal(out.code, 0);
    assert.match(out.stdout, /^host:\n/m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
