import type { Command } from "commander";
import { existsSync } from "node:fs";
import { Exit, DEFAULT_POLICY, makeContext, netfilterFor, print, type GlobalOptions } from "./common.js";
import { readLiveRules, readTraceHost } from "../trace/live.js";
import { audit, describeReach, type AuditRow, type AuditTarget } from "../trace/audit.js";
import { readDockerFacts } from "../facts/docker.js";
import { readListeningSockets, type ListeningSocket } from "../facts/sockets.js";
import type { ContainerFacts } from "../facts/types.js";
import { readPolicy } from "../pipeline.js";
import type { Opening, Policy } from "../policy/types.js";

/** Docker's published ports and the host's other listening sockets, one target per family. */
export function auditTargets(containers: ContainerFacts[], sockets: ListeningSocket[]): AuditTarget[] {
  const targets: AuditTarget[] = [];
  const published = new Set<string>();
  for (const c of containers.filter((c) => c.running)) {
    for (const p of c.published) {
      const family = p.hostIp.includes(":") ? "ipv6" : "ipv4";
      published.add(`${p.proto} ${p.hostPort}`);
      targets.push({ kind: "container", proto: p.proto, port: p.hostPort, family, bind: p.hostIp || "0.0.0.0", what: `container ${c.name} ${p.containerPort}/${p.proto}` });
    }
  }
  const key = (s: ListeningSocket) => `${s.proto} ${s.port}`;
  // docker-proxy's sockets are the published ports above.
  const own = sockets.filter((s) => !published.has(key(s)));
  const v4 = new Set(own.filter((s) => s.family === "ipv4").map(key));
  for (const s of own) {
    targets.push({ kind: "host", proto: s.proto, port: s.port, family: s.family, bind: s.address, what: "host socket" });
    // A socket on [::] takes IPv4 too unless it is IPV6_ONLY; with no IPv4 socket on the port, count it for both.
    if (s.family === "ipv6" && s.address === "::" && !v4.has(key(s))) {
      targets.push({ kind: "host", proto: s.proto, port: s.port, family: "ipv4", bind: "0.0.0.0", what: "host socket ([::], dual-stack)" });
    }
  }
  const seen = new Set<string>();
  return targets
    .filter((t) => {
      const k = `${t.kind} ${t.proto} ${t.port} ${t.family} ${t.bind} ${t.what}`;
      return !seen.has(k) && (seen.add(k), true);
    })
    .sort((a, b) => a.port - b.port || a.proto.localeCompare(b.proto) || a.family.localeCompare(b.family));
}

/** True if the policy opens this target to anyone: reachable by anyone is then as intended. */
export function declaredPublic(policy: Policy | undefined, t: AuditTarget, containers: ContainerFacts[]): boolean {
  if (policy === undefined) return false;
  const opensToAnyone = (o: Opening, port: number) => o.from.some((f) => f.kind === "any") && o.protos.includes(t.proto) && o.ports.some((r) => port >= r.from && port <= r.to);
  if (t.kind === "host") return policy.host.some((o) => opensToAnyone(o, t.port));
  return policy.containers.some((o) => {
    if (o.container === undefined) return opensToAnyone(o, t.port);
    const c = containers.find((c) => c.name === o.container);
    return c?.published.some((p) => p.hostPort === t.port && p.proto === t.proto && opensToAnyone(o, p.containerPort)) ?? false;
  });
}

export function registerAudit(program: Command): void {
  program
    .command("audit")
    .description("who can open a connection to every published port and listening socket, from the live rules")
    .option("-c, --config <file>", `policy file, to tell intended public ports from holes (default ${DEFAULT_POLICY} when it exists)`)
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      "\nWorks on any host's rules, dockwall's or hand-written; changes nothing. For each port and family it\ntraces a stranger's address, a member of every set and every -s address the rules name, to every\naddress of the host, on every interface but lo and Docker's (whatever the policy's interfaces: says).\nExit code: 0 nothing unintended open to anyone, 3 something reachable by anyone that the policy does\nnot declare public (with no policy: anything reachable by anyone), 4 a verdict is unknown.\n\nExample:\n  dockwall audit --json\n",
    )
    .action(async (opts: { config?: string; json?: boolean }, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const file = opts.config ?? (existsSync(DEFAULT_POLICY) ? DEFAULT_POLICY : undefined);
      const [live, docker, sockets, loaded] = await Promise.all([
        Promise.all([netfilterFor(ctx), readTraceHost(ctx.runner)]).then(([nf, host]) => readLiveRules(nf, host)),
        readDockerFacts(),
        readListeningSockets(),
        file === undefined ? Promise.resolve(undefined) : readPolicy(file),
      ]);
      const policy = loaded?.policy;
      const bridges = docker.networks.flatMap((n) => (n.bridge ? [n.bridge] : []));
      const rows = await audit(auditTargets(docker.containers, sockets), live.walkers, live.host, bridges);
      const holes = rows.filter((r) => r.reach.who === "anyone" && !declaredPublic(policy, r.target, docker.containers));
      if (opts.json) {
        print([JSON.stringify({ policy: file ?? null, docker: docker.reachable, rows: rows.map((r) => ({ ...r, intended: !holes.includes(r) })) }, null, 2)]);
      } else {
        print(humanAudit(rows, holes, file, docker.reachable));
      }
      if (holes.length > 0) throw new Exit(3);
      if (rows.some((r) => r.reach.who === "unknown")) throw new Exit(4);
    });
}

function humanAudit(rows: AuditRow[], holes: AuditRow[], file: string | undefined, dockerUp: boolean): string[] {
  const lines = [`${"PORT".padEnd(10)}${"FAMILY".padEnd(7)}${"WHAT".padEnd(34)}WHO CAN CONNECT`];
  for (const r of rows) {
    const t = r.target;
    const mark = holes.includes(r) ? "   <- open to anyone, not in the policy" : "";
    const who = r.reach.who === "unknown" ? `unknown: ${r.reach.reason}` : describeReach(r.reach);
    lines.push(`${`${t.port}/${t.proto}`.padEnd(10)}${(t.family === "ipv4" ? "IPv4" : "IPv6").padEnd(7)}${t.what.padEnd(34)}${who}${mark}`);
  }
  if (!dockerUp) lines.push("(Docker is not reachable: published ports are not listed)");
  lines.push(holes.length === 0 ? `nothing open to anyone beyond ${file ? `what ${file} declares public` : "nothing"}` : `${holes.length} open to anyone${file ? ` that ${file} does not declare public` : " (no policy file to say it is intended)"}`);
  return lines;
}
