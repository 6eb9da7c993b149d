/**
 * One nft base chain walked by a packet, as trace.ts walks an iptables built-in chain: rules in
 * order, jump/goto/return within the table, verdict maps, the chain's policy at its end. Its result
 * is the base chain's verdict only: an accept lets the packet on to the hook's next base chain
 * (trace.ts), a drop is final. A rule not understood, reached, makes the verdict unknown.
 */
import type { PacketView } from "../packet.js";
import { UnknownAtRuntime } from "../rule.js";
import type { TraceStep, Verdict } from "../trace.js";
import { escapeControls } from "../../policy/quote.js";
import type { NftChain, NftFamily } from "./ruleset.js";
import type { NftEnv, NftVerdict } from "./expr.js";

/** NF_IP_PRI_CONNTRACK: where conntrack takes the packet on prerouting. */
const CONNTRACK_PRIO = -200;

export function walkNftChain(
  base: NftChain & { base: NonNullable<NftChain["base"]> },
  nft: NftFamily,
  p: PacketView,
  isLocal: (address: string) => boolean,
  steps: TraceStep[],
): { verdict: Verdict; reason?: string } {
  const { hook, prio } = base.base;
  // NAT chains run at the NAT core's place (-100), after conntrack whatever they declare.
  const conntrack = hook !== "prerouting" || base.base.type === "nat" || prio > CONNTRACK_PRIO ? "after" : prio === CONNTRACK_PRIO ? "at" : "before";
  const env: NftEnv = { isLocal, conntrack, set: (name) => nft.set(base.table, name) };
  const table = escapeControls(base.table);
  const stack: { chain: NftChain; next: number }[] = [];
  let current: NftChain = base;
  let i = 0;
  const unknown = (index: number, rule: string, why: string) => {
    steps.push({ table, chain: escapeControls(current.name), index, rule, action: `unknown: ${why}` });
    return { verdict: "unknown" as const, reason: `${table} ${escapeControls(current.name)} rule ${index} (${rule}): ${why}` };
  };
  for (let guard = 0; guard < 100_000; guard++) {
    if (i >= current.rules.length) {
      // The end of a jumped-to chain returns; of the base chain (or one reached by gotos from it), its policy.
      const frame = stack.pop();
      if (frame !== undefined) {
        current = frame.chain;
        i = frame.next;
        continue;
      }
      const policy = base.base.policy;
      if (policy === "drop" || base.rules.length > 0 || base.base.type === "filter") {
        steps.push({ table, chain: escapeControls(base.name), index: 0, rule: `policy ${policy}`, action: `policy ${policy.toUpperCase()}` });
      }
      return { verdict: policy === "drop" ? "drop" : "accept" };
    }
    const rule = current.rules[i]!;
    const index = i + 1;
    i++;
    const shown = escapeControls(rule.text);
    if (rule.unknown !== undefined) return unknown(index, shown, `"${escapeControls(rule.unknown)}" is not understood`);
    let verdict: NftVerdict | undefined;
    let action = "";
    try {
      if (!rule.conditions.every((c) => c(p, env))) continue;
      const a = rule.action;
      if (a === undefined) continue;
      if (a.kind === "vmap") {
        const key = a.key.read(p, env);
        verdict = typeof key === "symbol" ? undefined : a.lookup(key, env);
        if (verdict === undefined) continue;
        action = `vmap: ${verdict.kind === "jump" || verdict.kind === "goto" ? `${verdict.kind} ${escapeControls(verdict.target)}` : verdict.kind}`;
      } else if (a.kind === "dnat") {
        if (base.base.type !== "nat" || base.base.hook !== "prerouting") return unknown(index, shown, `dnat in a ${base.base.type} chain on ${base.base.hook}`);
        if (a.family !== undefined && a.family !== p.family) return unknown(index, shown, "dnat of the other family");
        p.dst = a.addr;
        if (a.port !== undefined) p.dport = a.port;
        p.ct.dnat = true;
        steps.push({ table, chain: escapeControls(current.name), index, rule: shown, action: `DNAT to ${a.port === undefined ? a.addr : a.addr.includes(":") ? `[${a.addr}]:${a.port}` : `${a.addr}:${a.port}`}` });
        // A NAT statement ends the base chain with accept.
        return { verdict: "accept" };
      } else if (a.kind === "snat") {
        if (base.base.type !== "nat" || base.base.hook !== "postrouting") return unknown(index, shown, `source NAT in a ${base.base.type} chain on ${base.base.hook}`);
        steps.push({ table, chain: escapeControls(current.name), index, rule: shown, action: "SNAT" });
        return { verdict: "accept" };
      } else {
        verdict = a;
        action = a.kind === "jump" || a.kind === "goto" ? `${a.kind} ${escapeControls(a.target)}` : a.kind.toUpperCase();
      }
    } catch (e) {
      if (!(e instanceof UnknownAtRuntime)) throw e;
      return unknown(index, shown, e.message);
    }
    steps.push({ table, chain: escapeControls(current.name), index, rule: shown, action });
    switch (verdict.kind) {
      case "accept":
        return { verdict: "accept" };
      case "drop":
        return { verdict: "drop" };
      case "reject":
        return { verdict: "reject" };
      case "continue":
        continue;
      case "return": {
        const frame = stack.pop();
        if (frame === undefined) {
          // return from the base chain (or a chain reached by gotos from it): its policy.
          current = base;
          i = base.rules.length;
        } else {
          current = frame.chain;
          i = frame.next;
        }
        continue;
      }
      case "jump":
      case "goto": {
        const to = nft.chain(base.table, verdict.target);
        if (to === undefined || to.base !== undefined) return unknown(index, shown, `${verdict.kind} to ${escapeControls(verdict.target)}, not a regular chain of the table`);
        if (verdict.kind === "jump") stack.push({ chain: current, next: i });
        current = to;
        i = 0;
      }
    }
  }
  return { verdict: "unknown", reason: `${table} ${escapeControls(base.name)}: a loop in the chains` };
}
