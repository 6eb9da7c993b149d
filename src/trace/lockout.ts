/**
 * The lock-out guard: would the SSH session `apply` runs from be able to reconnect under the rules
 * about to be applied? The kernel's rules as they will be (the live tables with dockwall's part
 * replaced: what apply's restore does) are traced for a new connection from the session's client to
 * its server address and port. Pure.
 */
import ipaddr from "ipaddr.js";
import type { Family } from "../policy/types.js";
import type { DesiredState } from "../backends/rendered.js";
import type { RenderedFamily } from "../backends/iptables/render.js";
import type { SavedState } from "../backends/iptables/save-parser.js";
import { ruleTarget } from "../backends/iptables/save-parser.js";
import { memberSets, traceResolving, type TraceSets } from "./sets.js";
import { isDockwallChain, isDockwallSet } from "../compile/names.js";
import { RuleWalker, route, type TraceResult } from "./trace.js";
import type { LiveTables } from "./live.js";

export interface SshSession {
  client: string;
  server: string;
  port: number;
  family: Family;
}

/** SSH_CONNECTION is set but is not what sshd writes: the guard cannot know which session to keep. */
export class SshConnectionUnreadable extends Error {}

/**
 * `SSH_CONNECTION` is "CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT", as sshd writes it (found by
 * facts/ssh-connection.ts, a parent's under sudo; `foundIn` says where, for the message). Unset (or
 * empty): not run from SSH, undefined. Set but not readable: throws SshConnectionUnreadable, since
 * skipping the guard then could cut off the very session apply runs from (fail closed; --force).
 */
export function sshSession(value: string | undefined, foundIn = "SSH_CONNECTION"): SshSession | undefined {
  if (value === undefined || value === "") return undefined;
  const problem = (why: string) =>
    new SshConnectionUnreadable(
      `refusing to apply: ${foundIn} is set but cannot be read (${JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}...` : value)}: ${why}), ` +
        `so the lock-out guard cannot check that this SSH session could reconnect under the new rules; nothing was applied\n` +
        `fix or unset SSH_CONNECTION (SSH_CONNECTION= says "not from SSH"), or run with --force to apply without the check`,
    );
  const f = value.trim().split(/\s+/);
  const count = f[0] === "" ? 0 : f.length;
  if (count !== 4) return fail(problem(`${count} field${count === 1 ? "" : "s"}, expected 4: CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT`));
  const [clientText, clientPort, serverText, serverPort] = f as [string, string, string, string];
  for (const [text, what] of [[clientText, "client"], [serverText, "server"]] as const) {
    if (!isAddress(text)) return fail(problem(`the ${what} address ${JSON.stringify(text)} is not an IPv4 or IPv6 address`));
  }
  for (const [text, what] of [[clientPort, "client"], [serverPort, "server"]] as const) {
    if (!isPort(text)) return fail(problem(`the ${what} port ${JSON.stringify(text)} is not a port (1-65535)`));
  }
  const unmapped = (a: string) => ipaddr.process(a).toString();
  const client = unmapped(clientText);
  return { client, server: unmapped(serverText), port: Number(serverPort), family: client.includes(":") ? "ipv6" : "ipv4" };
}

function fail(e: Error): never {
  throw e;
}

/** Dotted-quad IPv4 or IPv6, as sshd prints them (ipaddr.isValid alone also takes "127.1" and "2130706433"). */
function isAddress(text: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(text) || (text.includes(":") && ipaddr.IPv6.isValid(text));
}

function isPort(text: string): boolean {
  return /^[1-9]\d{0,4}$/.test(text) && Number(text) <= 65535;
}

/** The tables after apply: every dockwall chain and jump taken out, the desired ones put in. */
export function withDockwallPart(state: SavedState, desired: RenderedFamily): SavedState {
  const out: SavedState = new Map();
  for (const [name, table] of state) {
    const chains = new Map();
    for (const [cname, chain] of table.chains) {
      if (isDockwallChain(cname)) continue;
      const rules = chain.rules.filter((spec) => !isDockwallChain(ruleTarget(spec) ?? ""));
      chains.set(cname, { ...chain, rules });
    }
    out.set(name, { name, chains });
  }
  const table = (name: string) => {
    let t = out.get(name);
    if (t === undefined) out.set(name, (t = { name, chains: new Map() }));
    return t;
  };
  for (const c of desired.chains) table(c.table).chains.set(c.name, { name: c.name, rules: [...c.rules] });
  // Jumps go in at the top, in order (apply inserts them at 1, 2, ...).
  const tops = new Map<string, string[]>();
  for (const j of desired.jumps) {
    const k = `${j.table}/${j.from}`;
    tops.set(k, [...(tops.get(k) ?? []), j.spec]);
  }
  for (const [k, specs] of tops) {
    const [t, from] = k.split("/") as [string, string];
    const chains = table(t).chains;
    const chain = chains.get(from) ?? { name: from, policy: "ACCEPT", rules: [] };
    chains.set(from, { ...chain, rules: [...specs, ...chain.rules] });
  }
  return out;
}

/**
 * The sets after apply: dockwall's exactly as the apply loads them (one it no longer has is gone),
 * every other set as the kernel holds it.
 */
function withDesiredSets(live: TraceSets, desired: DesiredState): TraceSets {
  const mine = memberSets(new Map(desired.sets.map((s) => [s.name, { name: s.name, type: "hash:net", family: s.family, members: s.members }])));
  const from = (name: string) => (isDockwallSet(name) ? mine : live);
  return {
    get: (name) => from(name).get(name),
    resolve: (name, address) => from(name).resolve(name, address),
    first: (name) => from(name).first(name),
  };
}

/** The trace of a new connection from the session's client, under the rules about to be applied. */
export async function traceSessionAfter(live: LiveTables, desired: DesiredState, session: SshSession): Promise<TraceResult & { inIface: string }> {
  const tables = withDockwallPart(live.tables[session.family], desired[session.family]);
  const walker = new RuleWalker(tables, withDesiredSets(live.sets, desired), live.host);
  const owner = live.host.interfaces.find((i) => i.addresses.some((a) => a.split("/")[0] === session.server));
  const inIface = route(live.host, session.client) ?? owner?.name ?? "eth0";
  const r = await traceResolving(walker, { family: session.family, proto: "tcp", src: session.client, dst: session.server, dport: session.port, inIface });
  return { ...r, inIface };
}
