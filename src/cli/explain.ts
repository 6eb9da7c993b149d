import type { Command } from "commander";
import ipaddr from "ipaddr.js";
import { Exit, makeContext, netfilterFor, print, type GlobalOptions } from "./common.js";
import { readLiveRules, readTraceHost } from "../trace/live.js";
import { route } from "../trace/trace.js";
import { traceResolving } from "../trace/sets.js";
import { familyAddresses, outsideInterfaces } from "../trace/audit.js";
import type { Probe, TraceProto } from "../trace/packet.js";
import type { Family } from "../policy/types.js";
import { appliedEntries } from "../trace/applied-entries.js";
import { untracedVerdict } from "../trace/untraced-backend.js";
import { readEngineInfo } from "../facts/docker.js";
import { escapeControls } from "../policy/quote.js";
import { decisionLine, dockwallDecision, stepOrigin } from "../trace/provenance.js";

interface ExplainOptions {
  dst?: string;
  in?: string;
  json?: boolean;
}

/** `tcp/5432`, `udp/53`, `icmp`, `icmpv6` */
export function parseService(text: string, family: Family): { proto: TraceProto; port?: number } | string {
  const m = /^(tcp|udp)\/(\d{1,5})$/.exec(text);
  if (m) {
    const port = Number(m[2]);
    return port >= 1 && port <= 65535 ? { proto: m[1] as TraceProto, port } : `port ${m[2]} is outside 1-65535`;
  }
  if (text === "icmp" || text === "icmpv6" || text === "ping") return { proto: family === "ipv4" ? "icmp" : "icmpv6" };
  return `"${text}" is not PROTO/PORT (tcp/5432, udp/53) or icmp`;
}

export function registerExplain(program: Command): void {
  program
    .command("explain")
    .description("trace a new connection through the live rules: the verdict and every rule that decided it")
    .argument("<source>", "the client's address (IPv4 or IPv6)")
    .argument("<service>", "tcp/PORT, udp/PORT or icmp")
    .option("--dst <address>", "the address connected to (default: the host's address on the interface the source comes in by, else one on another interface)")
    .option("--in <interface>", "the interface it comes in by (default: the one whose subnet holds the source, else the first outside one with an address)")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      "\nReads the kernel's rules (every table, both families) and sets; changes nothing. When a dockwall rule decided, names the policy line it comes from (FILE:LINE, from the applied record).\nExit code: 0 accepted, 3 dropped or rejected, 4 unknown (a rule the tracer does not understand), 1 bad arguments.\n\nExamples:\n  dockwall explain 198.51.100.7 tcp/5432\n  dockwall explain 2001:db8::7 tcp/443 --dst 2001:db8::1 --in eth0\n",
    )
    .action(async (source: string, service: string, opts: ExplainOptions, cmd: Command) => {
      const fail = (message: string): never => {
        process.stderr.write(`dockwall explain: ${message}\n`);
        throw new Exit(1);
      };
      if (!ipaddr.isValid(source)) fail(`"${source}" is not an IPv4 or IPv6 address`);
      const family: Family = ipaddr.parse(source).kind() === "ipv4" ? "ipv4" : "ipv6";
      const svc = parseService(service, family);
      if (typeof svc === "string") return fail(svc);
      if (opts.dst !== undefined && (!ipaddr.isValid(opts.dst) || (ipaddr.parse(opts.dst).kind() === "ipv4") !== (family === "ipv4"))) {
        fail(`--dst ${opts.dst} is not an ${family} address like the source`);
      }
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const [nf, host, applied, engine] = await Promise.all([netfilterFor(ctx), readTraceHost(ctx.runner), appliedEntries(ctx.store), readEngineInfo()]);
      const live = await readLiveRules(nf, host);
      const outside = outsideInterfaces(live.host, []).filter((i) => familyAddresses(i, family).length > 0);
      const inIface = opts.in ?? route(live.host, source) ?? outside[0]?.name ?? fail(`no interface with an ${family} address; give --in`);
      const iface = live.host.interfaces.find((i) => i.name === inIface);
      if (opts.in !== undefined && iface === undefined) fail(`no interface ${opts.in} on this host`);
      // An interface without an address of its own still takes connections to the host's other addresses.
      const dst = opts.dst ?? (iface && familyAddresses(iface, family)[0]) ?? outside.flatMap((i) => familyAddresses(i, family))[0] ?? fail(`no ${family} address on this host; give --dst`);
      const probe: Probe = { family, proto: svc.proto, src: source, dst, inIface, ...(svc.port !== undefined ? { dport: svc.port } : {}) };
      const result = untracedVerdict(await traceResolving(live.walkers[family], probe), engine.firewallBackend, live.nft);
      const decision = dockwallDecision(result.steps, applied.entries);
      if (opts.json) {
        const steps = result.steps.map((s) => {
          const origin = stepOrigin(s, applied.entries);
          return origin ? { ...s, entry: origin } : s;
        });
        const dockwall = decision && { outcome: decision.outcome, step: decision.step, description: decision.description, entry: decision.origin };
        print([JSON.stringify({ probe, ...result, steps, ...(dockwall ? { dockwall } : {}), ...(applied.note ? { entriesNote: applied.note } : {}) }, null, 2)]);
      } else {
        const to = svc.port !== undefined ? `${family === "ipv6" ? `[${dst}]` : dst}:${svc.port}` : dst;
        const lines = [`${svc.proto} from ${source} to ${to}, in on ${inIface}`];
        let chain = "";
        for (const s of result.steps) {
          const here = `${s.table} ${s.chain}`;
          if (here !== chain) lines.push(`  ${here}`);
          chain = here;
          lines.push(`    ${s.index === 0 ? "policy" : `#${s.index}`.padEnd(4)} ${s.rule}${s.action.startsWith("policy") ? "" : `  => ${s.action}`}`);
        }
        if (result.dnat) lines.push(`  (DNAT to ${result.dnat.dst}${result.dnat.dport !== undefined ? ` port ${result.dnat.dport}` : ""}; decided on the ${result.path} path)`);
        // The description is a kernel comment and the file and note come from the state directory: escaped.
        if (decision) lines.push(`dockwall: ${escapeControls(decisionLine(decision, applied.policyFile))}`);
        if (decision && applied.note) lines.push(`  (${escapeControls(applied.note)})`);
        lines.push(`verdict: ${result.verdict.toUpperCase()}${result.reason ? ` (${result.reason})` : ""}`);
        print(lines);
      }
      if (result.verdict === "unknown") throw new Exit(4);
      if (result.verdict !== "accept") throw new Exit(3);
    });
}
