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

/** `SSH_CONNECTION` is "CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT". */
export function sshSession(value: string | undefined): SshSession | undefined {
  const f = value?.trim().split(/\s+/);
  if (f?.length !== 4 || !ipaddr.isValid(f[0]!) || !ipaddr.isValid(f[2]!)) return undefined;
  const unmapped = (a: string) => ipaddr.process(a).toString();
  const client = unmapped(f[0]!);
  return { client, server: unmapped(f[2]!), port: Number(f[3]), family: client.includes(":") ? "ipv6" : "ipv4" };
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
