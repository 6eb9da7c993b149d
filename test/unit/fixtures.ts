/** The small policy the apply tests share: a trusted office group, SSH and one published port open to anyone. */
import type { Policy } from "../../src/policy/types.js";
import type { GatheredFacts } from "../../src/facts/index.js";
import type { Runner } from "../../src/exec/runner.js";

export const loc = { file: "p.yaml", line: 1, col: 1 };

export function policy(over: Partial<Policy> = {}): Policy {
  return {
    file: "p.yaml",
    groups: [{ name: "office", ipv4: ["203.0.113.0/24", "198.18.0.5"], ipv6: ["2001:db8:1::/48"] }],
    trusted: [{ kind: "group", name: "office" }],
    host: [{ ports: [{ from: 22, to: 22 }], protos: ["tcp"], from: [{ kind: "any" }], loc }],
    containers: [{ ports: [{ from: 8080, to: 8080 }], protos: ["tcp"], from: [{ kind: "any" }], loc }],
    routes: [],
    icmp: "allow",
    default: "drop",
    log: { drops: false, rate: "10/min" },
    ...over,
  };
}

/** Facts of a host with Docker reachable and nothing running: for compiles that must not look further. */
export const reachableNoFacts: GatheredFacts = {
  facts: { docker: { reachable: true, containers: [], networks: [] }, host: { interfaces: [], iptables: "nft" } },
  warnings: [],
};

/** A runner for code that must run no command at all. */
export const noCommands: Runner = {
  run: async (cmd) => {
    throw new Error(`no command expected, got ${cmd}`);
  },
};
