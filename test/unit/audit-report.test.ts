/**
 * audit's answer: with Docker unreachable its published ports are unknown and the answer is "cannot
 * tell" (exit 4), never all clear; a hole found is still exit 3. Listening sockets show the process
 * that holds them, from a /proc read as hostile input (processes vanish mid-read, names are any bytes,
 * the scan is bounded and stops once every socket has its owner).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { auditBridges, auditExitCode, auditFindings, auditJson, auditTargets, humanAudit, meshPorts, AUDIT_EXIT } from "../../src/trace/audit-report.js";
import { parseSave } from "../../src/backends/iptables/save-parser.js";
import { DOCKER_20_10_SAVE, DOCKER_28_SAVE } from "./docker-layout.js";
import type { AuditRow } from "../../src/trace/audit.js";
import { socketOwners, SCAN_LIMITS, type ProcSource } from "../../src/facts/socket-owners.js";
import { readListeningSockets } from "../../src/facts/sockets.js";
import type { DockerFacts } from "../../src/facts/types.js";
import { policy } from "./fixtures.js";

const DOCKER_DOWN: DockerFacts = { reachable: false, error: "cannot reach the Docker Engine at unix:///var/run/docker.sock: ENOENT", containers: [], networks: [] };
const DOCKER_UP: DockerFacts = { reachable: true, containers: [], networks: [] };

const ssh: AuditRow = { target: { kind: "host", proto: "tcp", port: 22, family: "ipv4", bind: "0.0.0.0", what: "host socket", process: { pid: 812, name: "sshd" } }, reach: { who: "anyone" } };
const metrics: AuditRow = { target: { kind: "host", proto: "tcp", port: 9100, family: "ipv4", bind: "0.0.0.0", what: "host socket" }, reach: { who: "nobody" } };

test("Docker unreachable: published ports are unknown, the answer is 'cannot tell' (exit 4), not all clear", () => {
  // The fixture policy declares 22/tcp public: nothing listed is a hole.
  const f = auditFindings([ssh, metrics], policy(), "/etc/dockwall/dockwall.yaml", DOCKER_DOWN, { sockets: [] });
  assert.equal(auditExitCode(f), AUDIT_EXIT.cannotTell);
  assert.equal(AUDIT_EXIT.cannotTell, 4);
  const text = humanAudit(f);
  assert.ok(text.includes(`published ports: UNKNOWN, Docker is not reachable: ${DOCKER_DOWN.error}`), text.join("\n"));
  assert.equal(text.at(-1), "cannot tell: Docker's published ports are unknown; of the rest, nothing open to anyone beyond what /etc/dockwall/dockwall.yaml declares public");
  assert.ok(!text.some((l) => l.startsWith("nothing open to anyone")), "never the all-clear line");
  const json = auditJson(f) as Record<string, unknown>;
  assert.equal(json.publishedPorts, "unknown");
  assert.equal(json.docker, false);
  assert.equal(json.dockerError, DOCKER_DOWN.error);
  // Docker reachable, the same rows: all clear.
  const up = auditFindings([ssh, metrics], policy(), "/etc/dockwall/dockwall.yaml", DOCKER_UP, { sockets: [] });
  assert.equal(auditExitCode(up), AUDIT_EXIT.clear);
  assert.equal(humanAudit(up).at(-1), "nothing open to anyone beyond what /etc/dockwall/dockwall.yaml declares public");
  assert.equal((auditJson(up) as Record<string, unknown>).publishedPorts, "listed");
});

test("Docker unreachable and a hole found: the hole is the answer (exit 3), and the unknown ports are still said", () => {
  const f = auditFindings([ssh], policy({ host: [] }), "dockwall.yaml", DOCKER_DOWN, { sockets: [] });
  assert.equal(auditExitCode(f), AUDIT_EXIT.holes);
  const text = humanAudit(f).join("\n");
  assert.match(text, /^1 open to anyone that \/.*\/dockwall\.yaml does not declare public$/m, "the policy path is absolute");
  assert.match(text, /^published ports: UNKNOWN/m);
});

test("a host socket shows its process, its name escaped; the WHAT column widens to fit", () => {
  const evil: AuditRow = { target: { ...metrics.target, process: { pid: 4242, name: "x\u001b[2J\nok" } }, reach: { who: "nobody" } };
  const text = humanAudit(auditFindings([ssh, evil], policy(), undefined, DOCKER_UP, { sockets: [] }));
  assert.match(text[1]!, /^22\/tcp    IPv4   host socket: sshd \(pid 812\)\s+anyone$/);
  assert.ok(text.some((l) => l.includes("host socket: x\\u001b[2J\\nok (pid 4242)")), text.join("\n"));
  assert.ok(text.every((l) => !/[\u0000-\u001f]/.test(l)), "no control character reaches the terminal");
  const whoColumn = text[0]!.indexOf("WHO CAN CONNECT");
  assert.equal(text[1]!.indexOf("anyone"), whoColumn);
});

test("a [::] socket counted for IPv4 too keeps its process", () => {
  const t = auditTargets([], [{ proto: "tcp", family: "ipv6", address: "::", port: 22, inode: 5, process: { pid: 812, name: "sshd" } }]);
  assert.deepEqual(t.map((x) => [x.family, x.process?.name]), [["ipv4", "sshd"], ["ipv6", "sshd"]]);
});

/** A /proc whose processes are given as { pid: { name, fds: { fd: link } } }; "gone" ones vanish mid-read. */
function fakeProc(processes: Record<string, { name?: string; fds?: Record<string, string>; gone?: "fd" | "link" | "comm" | "denied" }>, extra: string[] = []): ProcSource & { reads: string[] } {
  const reads: string[] = [];
  const enoent = () => Object.assign(new Error("ENOENT"), { code: "ENOENT" });
  return {
    reads,
    list: async (dir) => {
      reads.push(dir);
      if (dir === "/proc") return [...Object.keys(processes), ...extra];
      const pid = dir.split("/")[2]!;
      const p = processes[pid];
      if (p?.gone === "denied") throw Object.assign(new Error("EACCES"), { code: "EACCES" });
      if (p === undefined || p.gone === "fd") throw enoent();
      return Object.keys(p.fds ?? {});
    },
    link: async (file) => {
      reads.push(file);
      const [, , pid, , fd] = file.split("/");
      const p = processes[pid!];
      if (p === undefined || p.gone === "link") throw enoent();
      const l = p.fds?.[fd!];
      if (l === undefined) throw enoent();
      return l;
    },
    read: async (file, maxBytes) => {
      reads.push(file);
      const p = processes[file.split("/")[2]!];
      if (p === undefined || p.gone === "comm" || p.name === undefined) throw enoent();
      return p.name.slice(0, maxBytes);
    },
  };
}

test("socket owners: processes that vanish mid-read are skipped, odd /proc entries ignored, the lowest pid wins, the scan stops once all are found", async () => {
  const proc = fakeProc(
    {
      "30": { name: "nginx\n", fds: { "0": "/dev/null", "6": "socket:[100]" } },
      "31": { name: "nginx\n", fds: { "6": "socket:[100]" } },
      "7": { gone: "fd" },
      "8": { gone: "link", fds: { "3": "socket:[200]" } },
      "9": { gone: "comm", fds: { "3": "socket:[200]" } },
      "12": { name: "sshd\n", fds: { "3": "socket:[200]", "4": "socket:[200]junk", "5": "pipe:[200]" } },
      "900": { name: "late\n", fds: { "1": "socket:[300]" } },
    },
    ["self", "thread-self", "..", "0", "01", "1/../2"],
  );
  const r = await socketOwners([100, 200], proc, { ...SCAN_LIMITS, parallel: 2 });
  assert.deepEqual(Object.fromEntries(r.owners), { 100: { pid: 30, name: "nginx" }, 200: { pid: 12, name: "sshd" } });
  assert.equal(r.incomplete, undefined);
  assert.ok(!proc.reads.some((f) => f.startsWith("/proc/900")), "stopped once every socket had its owner");
  assert.ok(!proc.reads.some((f) => /\/proc\/(self|thread-self|\.\.|0|01)\b/.test(f)), proc.reads.join("\n"));
});

test("socket owners: bounded (processes, descriptors), and a process whose descriptors cannot be read says why owners may be missing", async () => {
  const many = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [String(i + 1), { name: "p\n", fds: Object.fromEntries(Array.from({ length: 10 }, (_, j) => [String(j), "anon_inode:[eventfd]"])) }]));
  const cut = await socketOwners([1], fakeProc(many), { processes: 10, descriptorsPerProcess: 4, descriptors: 1_000_000, parallel: 4 });
  assert.match(cut.incomplete ?? "", /only the first 10 of 50 processes were looked at/);
  assert.match(cut.incomplete ?? "", /only the first 4 descriptors of a process were looked at/);
  const proc = fakeProc(many);
  const budget = await socketOwners([1], proc, { processes: 1000, descriptorsPerProcess: 1000, descriptors: 25, parallel: 1 });
  assert.match(budget.incomplete ?? "", /stopped after 25 descriptors/);
  assert.ok(proc.reads.filter((f) => f.includes("/fd/")).length <= 30, "no more descriptors read than the budget and one process");
  const denied = await socketOwners([1], fakeProc({ "5": { gone: "denied" } }));
  assert.match(denied.incomplete ?? "", /not readable \(run as root to see every owner\)/);
  const unlistable = await socketOwners([1], { ...fakeProc({}), list: async () => Promise.reject(Object.assign(new Error("x"), { code: "EACCES" })) });
  assert.deepEqual(unlistable, { owners: new Map(), incomplete: "/proc cannot be listed: EACCES" });
});

test("the real /proc: a socket this process listens on shows this process", async () => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const port = (server.address() as net.AddressInfo).port;
    const { sockets } = await readListeningSockets();
    const mine = sockets.find((s) => s.proto === "tcp" && s.family === "ipv4" && s.address === "127.0.0.1" && s.port === port);
    assert.ok(mine, `127.0.0.1:${port} is listed`);
    assert.equal(mine.process?.pid, process.pid);
    assert.equal(typeof mine.process?.name, "string");
  } finally {
    server.close();
  }
});

test("Docker unreachable: its bridges are read from its own rules (20.10 and 28), so a bridge with its own name is not taken for an outside interface", () => {
  const named = DOCKER_20_10_SAVE.replace("-A DOCKER -i docker0 -j RETURN", "-A DOCKER -i docker0 -j RETURN\n-A DOCKER -i dw-app -j RETURN");
  assert.deepEqual(auditBridges(DOCKER_DOWN, [parseSave(named)]), ["docker0", "dw-app"]);
  assert.deepEqual(auditBridges(DOCKER_DOWN, [parseSave(DOCKER_28_SAVE)]), ["bridge1", "docker0"]);
  // Docker reachable: its own list, whatever the rules say.
  assert.deepEqual(auditBridges({ ...DOCKER_UP, networks: [{ id: "n", name: "appnet", driver: "bridge", bridge: "dw-app", subnets: [] }] }, [parseSave(named)]), ["dw-app"]);
});

test("Docker unreachable: docker-proxy's socket is a published port, which a by-port containers: entry declares public", () => {
  const proxy = { proto: "tcp" as const, family: "ipv4" as const, address: "0.0.0.0", port: 8080, inode: 9, process: { pid: 300, name: "docker-proxy" } };
  const t = auditTargets([], [proxy], false);
  assert.deepEqual(t.map((x) => [x.kind, x.what]), [["container", "published port"]]);
  // With Docker answering, its list is the published ports: a process that calls itself docker-proxy
  // on a port Docker did not publish is a host socket (a by-port containers: entry cannot make it intended).
  assert.deepEqual(auditTargets([], [proxy], true).map((x) => [x.kind, x.what]), [["host", "host socket"]]);
  const row: AuditRow = { target: t[0]!, reach: { who: "anyone" } };
  // The fixture policy opens published port 8080 to anyone (containers:, by port).
  const f = auditFindings([row], policy(), "/etc/dockwall/dockwall.yaml", DOCKER_DOWN, { sockets: [] });
  assert.deepEqual(f.holes, []);
  assert.equal(auditExitCode(f), AUDIT_EXIT.cannotTell);
  assert.match(humanAudit(f)[1]!, /^8080\/tcp\s+IPv4\s+published port: docker-proxy \(pid 300\)\s+anyone$/);
});

/** Docker's rules for a port published through Swarm's routing mesh (moby's swarm-portmap scenario, nat table). */
const MESH_NAT = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-INGRESS - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER-INGRESS
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER-INGRESS -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.2:8080
-A DOCKER-INGRESS -p udp -m udp --dport 5353 -j DNAT --to-destination 172.18.0.2:5353
-A DOCKER-INGRESS -j RETURN
COMMIT
`;

test("a port published through Swarm's routing mesh is a published port, read from Docker's DOCKER-INGRESS rules, even on a node with no replica", () => {
  const mesh = meshPorts([parseSave(MESH_NAT)]);
  assert.deepEqual(mesh, [{ proto: "tcp", port: 8080 }, { proto: "udp", port: 5353 }]);
  assert.deepEqual(meshPorts([parseSave(DOCKER_20_10_SAVE)]), [], "no mesh, no mesh ports");
  // dockerd's socket reserving the port is the mesh's, not a host service; no container lists the port.
  const reservation = { proto: "tcp" as const, family: "ipv6" as const, address: "::", port: 8080, inode: 7, process: { pid: 90, name: "dockerd" } };
  const t = auditTargets([], [reservation], true, mesh);
  assert.deepEqual(t.map((x) => [x.kind, x.proto, x.port, x.family, x.what]), [
    ["container", "udp", 5353, "ipv4", "routing mesh 5353/udp"],
    ["container", "tcp", 8080, "ipv4", "routing mesh 8080/tcp"],
  ]);
  // The fixture policy opens published port 8080 to anyone (containers:, by port): as intended there.
  const open = auditFindings([{ target: t[1]!, reach: { who: "anyone" } }], policy(), "/etc/dockwall/dockwall.yaml", DOCKER_UP, { sockets: [] });
  assert.deepEqual(open.holes, []);
  // 5353/udp it does not open: reachable by anyone, that is a hole.
  const hole = auditFindings([{ target: t[0]!, reach: { who: "anyone" } }], policy(), "/etc/dockwall/dockwall.yaml", DOCKER_UP, { sockets: [] });
  assert.equal(auditExitCode(hole), AUDIT_EXIT.holes);
});
