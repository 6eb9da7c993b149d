/** Where the tracer cannot see Docker's rules (its nftables back end, nft not readable), audit and explain say "cannot tell", never "nobody". */
import { test } from "node:test";
import assert from "node:assert/strict";
import { untracedPublishedPorts, untracedVerdict, UNTRACED_NFTABLES } from "../../src/trace/untraced-backend.js";
import { auditExitCode, auditFindings, AUDIT_EXIT, humanAudit } from "../../src/trace/audit-report.js";
import { readListeningSockets } from "../../src/facts/sockets.js";
import type { AuditRow } from "../../src/trace/audit.js";

const container: AuditRow = { target: { kind: "container", proto: "tcp", port: 8080, family: "ipv4", bind: "0.0.0.0", what: "container web 80/tcp" }, reach: { who: "nobody" } };
const loopback: AuditRow = { target: { ...container.target, port: 9090, bind: "127.0.0.1" }, reach: { who: "local only" } };
const hostSocket: AuditRow = { target: { kind: "host", proto: "tcp", port: 22, family: "ipv4", bind: "0.0.0.0", what: "host socket" }, reach: { who: "anyone" } };
const DOCKER_UP = { reachable: true, containers: [], networks: [] };
const NO_NFT = { unreadable: "nft: command not found (is it installed and on PATH?)" };
const NFT_READ = {};
const WHY = `${UNTRACED_NFTABLES} (${NO_NFT.unreadable})`;

test("nftables back end with nft unreadable: a published port's 'nobody' becomes unknown (exit 4), host sockets and loopback stay as traced", () => {
  const rows = untracedPublishedPorts([container, loopback, hostSocket], "nftables", NO_NFT);
  assert.deepEqual(rows.map((r) => r.reach), [{ who: "unknown", reason: WHY }, { who: "local only" }, { who: "anyone" }]);
  const f = auditFindings(rows.slice(0, 2), undefined, undefined, DOCKER_UP, { sockets: [] });
  assert.equal(auditExitCode(f), AUDIT_EXIT.cannotTell);
  // The iptables back end (and a Docker that does not say): traced as before.
  assert.deepEqual(untracedPublishedPorts([container], "iptables", NO_NFT), [container]);
  assert.deepEqual(untracedPublishedPorts([container], undefined, NO_NFT), [container]);
  // nft read: Docker's tables were traced with the rest, the verdict stands.
  assert.deepEqual(untracedPublishedPorts([container], "nftables", NFT_READ), [container]);
});

test("explain on the nftables back end with nft unreadable gives no verdict, only the rules walked", () => {
  const traced = { verdict: "drop" as const, steps: [], path: "input" as const };
  assert.deepEqual(untracedVerdict(traced as never, "nftables", NO_NFT), { ...traced, verdict: "unknown", reason: WHY });
  assert.equal(untracedVerdict(traced as never, "iptables", NO_NFT), traced);
  assert.equal(untracedVerdict(traced as never, "nftables", NFT_READ), traced);
});

test("a /proc/net file that cannot be read is said, and audit cannot tell; a missing tcp6 is a host without IPv6", async () => {
  const denied = Object.assign(new Error("EACCES"), { code: "EACCES" });
  const missing = Object.assign(new Error("ENOENT"), { code: "ENOENT" });
  const read = async (f: string) => {
    if (f === "/proc/net/tcp") throw denied;
    if (f.endsWith("6")) throw missing;
    return "  sl  local_address rem_address   st\n";
  };
  const noProcesses = { list: async () => [], link: async () => "", read: async () => "" };
  const sockets = await readListeningSockets(read, noProcesses);
  assert.deepEqual(sockets.unreadable, ["/proc/net/tcp: EACCES"]);
  const f = auditFindings([], undefined, undefined, DOCKER_UP, sockets);
  assert.equal(auditExitCode(f), AUDIT_EXIT.cannotTell);
  assert.match(humanAudit(f).join("\n"), /^cannot tell: some host sockets cannot be read/m);
});
