import type { Command } from "commander";
import { existsSync } from "node:fs";
import { Exit, DEFAULT_POLICY, makeContext, netfilterFor, print, type GlobalOptions } from "./common.js";
import { readLiveRules, readTraceHost } from "../trace/live.js";
import { audit } from "../trace/audit.js";
import { auditBridges, auditExitCode, auditFindings, auditJson, auditTargets, humanAudit, meshPorts } from "../trace/audit-report.js";
import { untracedPublishedPorts } from "../trace/untraced-backend.js";
import { readDockerFacts } from "../facts/docker.js";
import { readListeningSockets } from "../facts/sockets.js";
import { readFirewallReport } from "../facts/firewall-report.js";
import { readPolicy } from "../pipeline.js";

export { auditTargets, declaredPublic } from "../trace/audit-report.js";

export function registerAudit(program: Command): void {
  program
    .command("audit")
    .description("who can open a connection to every published port and listening socket, from the live rules")
    .option("-c, --config <file>", `policy file, to tell intended public ports from holes (default ${DEFAULT_POLICY} when it exists)`)
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      "\nWorks on any host's rules, dockwall's or hand-written; changes nothing. For each port and family it\ntraces a stranger's address, a member of every set and every -s address the rules name, to every\naddress of the host, on every interface but lo and Docker's (whatever the policy's interfaces: says).\nA host socket shows the process that holds it (from /proc; all of them as root).\nExit code: 0 nothing unintended open to anyone, 3 something reachable by anyone that the policy does\nnot declare public (with no policy: anything reachable by anyone), 4 cannot tell: a verdict is unknown,\nor Docker is not reachable, so its published ports are unknown.\n\nExample:\n  dockwall audit --json\n",
    )
    .action(async (opts: { config?: string; json?: boolean }, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const file = opts.config ?? (existsSync(DEFAULT_POLICY) ? DEFAULT_POLICY : undefined);
      const nf = await netfilterFor(ctx);
      const [live, docker, sockets, loaded] = await Promise.all([
        readTraceHost(ctx.runner).then((host) => readLiveRules(nf, host)),
        readDockerFacts(),
        readListeningSockets(),
        file === undefined ? Promise.resolve(undefined) : readPolicy(file),
      ]);
      const bridges = auditBridges(docker, [live.walkers.ipv4.tables, live.walkers.ipv6.tables]);
      const mesh = meshPorts([live.walkers.ipv4.tables]);
      const rows = await audit(auditTargets(docker.containers, sockets.sockets, docker.reachable, mesh), live.walkers, live.host, bridges);
      const firewall = await readFirewallReport(ctx.runner, docker, nf.variant);
      const findings = { ...auditFindings(untracedPublishedPorts(rows, firewall.backend, live.nft), loaded?.policy, file, docker, sockets), firewall };
      print(opts.json ? [JSON.stringify(auditJson(findings), null, 2)] : humanAudit(findings));
      const code = auditExitCode(findings);
      if (code !== 0) throw new Exit(code);
    });
}
