/**
 * policy -> facts -> compile -> render: everything up to the kernel, with no change made.
 * The commands share it so `check`, `plan` and `apply` can never disagree.
 */
import type { Runner } from "./exec/runner.js";
import { loadPolicy } from "./policy/load.js";
import { formatPolicyError } from "./policy/errors.js";
import type { Policy } from "./policy/types.js";
import { gatherFacts } from "./facts/index.js";
import type { Facts } from "./facts/types.js";
import { compile } from "./compile/index.js";
import type { Ruleset } from "./ruleset/types.js";
import { render, type DesiredState } from "./backends/rendered.js";
import { Netfilter } from "./backends/netfilter.js";

/** A policy file that does not validate: every error, already formatted as FILE:LINE:COL: message. */
export class PolicyInvalid extends Error {
  constructor(readonly errors: string[]) {
    super(errors.join("\n"));
  }
}

/** A setup dockwall must not write rules for (it would apply something wrong). */
export class UnsupportedHost extends Error {}

export async function readPolicy(file: string): Promise<{ policy: Policy; warnings: string[] }> {
  const result = await loadPolicy(file);
  if (!result.ok) throw new PolicyInvalid(result.errors.map(formatPolicyError));
  return { policy: result.policy, warnings: result.warnings.map(formatPolicyError) };
}

export interface Compiled {
  policy: Policy;
  facts: Facts;
  ruleset: Ruleset;
  desired: DesiredState;
  netfilter: Netfilter;
  warnings: string[];
}

export async function compilePolicy(file: string, runner: Runner): Promise<Compiled> {
  // Independent reads (a 100,000-line group file; Docker, ip and iptables-save): done side by side.
  const [{ policy, warnings }, { facts, warnings: factWarnings }] = await Promise.all([readPolicy(file), gatherFacts(runner)]);
  const backend = facts.docker.firewallBackend ?? "";
  if (backend.startsWith("nftables")) {
    throw new UnsupportedHost(
      `Docker uses its nftables firewall back end (${backend}); dockwall ${"0.1"} writes iptables rules, ` +
        `which would not be ordered against Docker's. Run dockerd with its iptables back end, or wait for dockwall's nftables support.`,
    );
  }
  const ruleset = compile(policy, facts);
  return {
    policy,
    facts,
    ruleset,
    desired: render(ruleset),
    netfilter: new Netfilter(runner, facts.host.iptables),
    warnings: [...warnings, ...factWarnings, ...ruleset.warnings],
  };
}
