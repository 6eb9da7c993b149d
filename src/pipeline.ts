/**
 * policy -> facts -> compile -> render: everything up to the kernel, with no change made.
 * The commands share it so `check`, `plan` and `apply` can never disagree.
 */
import type { Runner } from "./exec/runner.js";
import { loadPolicy, type ReadText } from "./policy/load.js";
import { formatPolicyError, sortPolicyErrors, type PolicyError } from "./policy/errors.js";
import type { Policy } from "./policy/types.js";
import { gatherFacts, type GatheredFacts } from "./facts/index.js";
import { endpointFromEnv } from "./facts/engine-api.js";
import type { Facts, HostInterface } from "./facts/types.js";
import { compile } from "./compile/index.js";
import { RefusedOnThisHost, checkInterfaces } from "./compile/interfaces.js";
import { readInterfaces } from "./facts/host.js";
import { render, type DesiredState } from "./backends/rendered.js";
import { Netfilter } from "./backends/netfilter.js";
import { codeIdentity, digest, factsDigest, RecordingReader, reread, type CompileInputs, type CompileOrigin, type Reread } from "./inputs.js";
import { parseGroupFile } from "./policy/group-file.js";
import { setName } from "./compile/names.js";
import { policySets, toIpsetMembers } from "./compile/sets.js";
import type { IpSetSpec, Ruleset } from "./ruleset/types.js";
import { VERSION } from "./version.js";

/** A policy file that does not validate: every error, already formatted as FILE:LINE:COL: message. */
export class PolicyInvalid extends Error {
  constructor(readonly errors: string[]) {
    super(errors.join("\n"));
  }
}

/** A setup dockwall must not write rules for (it would apply something wrong). */
export class UnsupportedHost extends Error {}

export async function readPolicy(file: string, readText?: ReadText): Promise<{ policy: Policy; warnings: string[] }> {
  const result = await loadPolicy(file, readText);
  if (!result.ok) throw new PolicyInvalid(result.errors.map(formatPolicyError));
  return { policy: result.policy, warnings: result.warnings.map(formatPolicyError) };
}

/**
 * `check`'s look at the interfaces the policy names, against the machine it runs on. A policy is often
 * checked on a workstation or in CI for another host, so an interface missing here is a warning, not
 * an error: plan, apply and watch, which compile with the target host's facts, refuse it there (an
 * error with its line, nothing applied). What no host could filter as written (lo, one of Docker's
 * bridges by Docker's naming, a wildcard that covers them) is an error here too. Returns the warnings.
 */
export function checkInterfacesHere(policy: Policy, interfaces: () => HostInterface[] = readInterfaces): string[] {
  let here: HostInterface[];
  try {
    here = interfaces();
  } catch (e) {
    return [`${(e as Error).message}: the interfaces the policy names were not compared with this host's`];
  }
  const found = checkInterfaces(policy, { interfaces: here, namedBridges: [] }, false);
  if (found.errors.length > 0) throw new PolicyInvalid(sortPolicyErrors(found.errors, policy.file).map(formatPolicyError));
  return sortPolicyErrors(found.warnings, policy.file).map(formatPolicyError);
}

export interface Compiled {
  facts: Facts;
  desired: DesiredState;
  netfilter: Netfilter;
  /** Every warning: the policy's, the compile's and the facts'. */
  warnings: string[];
  /** What the desired state was compiled from: recorded with it, so an unchanged re-apply can skip compiling. */
  origin: CompileOrigin;
}

/** A state compiled earlier, with its origin. */
export interface CompiledBefore extends CompileOrigin {
  desired: DesiredState;
}

/** Facts, and the iptables variant dockwall writes to: known long before the policy is compiled. */
export function readFacts(runner: Runner): { facts: Promise<GatheredFacts>; netfilter: Promise<Netfilter> } {
  // A DOCKER_HOST dockwall cannot use throws here, before the lock is taken or anything read.
  const facts = gatherFacts(runner, endpointFromEnv());
  const netfilter = facts.then(({ facts: f }) => new Netfilter(runner, f.host.iptables));
  // Both are awaited later (after the lock); until then a failure must not count as unhandled.
  netfilter.catch(() => undefined);
  return { facts, netfilter };
}

/**
 * `onSets` is called with the desired state's sets (the very objects) as soon as the policy and its
 * group files have validated, before the facts are awaited and the rules compiled; not called when
 * the recorded state is reused (nothing is parsed then).
 */
export async function compilePolicy(
  file: string,
  runner: Runner,
  before?: CompiledBefore,
  factsRead: Promise<GatheredFacts> = gatherFacts(runner),
  onSets?: (sets: IpSetSpec[]) => void,
): Promise<Compiled> {
  // Awaited below, after other reads; until then a failure (DOCKER_HOST unusable) must not count as unhandled.
  factsRead.catch(() => undefined);
  // Independent reads (a 100,000-line group file; Docker, ip and iptables-save): done side by side.
  const again = before ? await reread(before.inputs, file) : undefined;
  const load = () =>
    loadWithInputs(file).then((loaded) => {
      const sets = policySets(loaded.policy);
      onSets?.(sets);
      return { ...loaded, sets };
    });
  const loading = again ? undefined : load();
  // Awaited below; until then a failure must not count as unhandled.
  loading?.catch(() => undefined);
  const { facts, warnings: factWarnings } = await factsRead;
  refuseUnsupported(facts);
  const netfilter = new Netfilter(runner, facts.host.iptables);
  const compiled = (desired: DesiredState, origin: CompileOrigin): Compiled => ({
    facts,
    desired,
    netfilter,
    warnings: [...origin.warnings, ...origin.inputs.groupFiles.flatMap((g) => g.warnings), ...factWarnings],
    origin,
  });
  if (before && again && factsDigest(facts) === before.inputs.facts) {
    const updated = withGroupFiles(before, again);
    return compiled(updated.desired, updated.origin);
  }
  const { policy, policyWarnings, inputs, sets } = await (loading ?? load());
  const ruleset = compileOnThisHost(policy, facts, sets);
  return compiled(render(ruleset), { inputs: { ...inputs, facts: factsDigest(facts) }, warnings: [...policyWarnings, ...ruleset.warnings] });
}

/** The policy, its own warnings, and what was read (group files keep their warnings there). */
async function loadWithInputs(file: string): Promise<{ policy: Policy; policyWarnings: string[]; inputs: Omit<CompileInputs, "facts"> }> {
  const reader = new RecordingReader();
  const result = await loadPolicy(file, reader.read);
  if (!result.ok) throw new PolicyInvalid(result.errors.map(formatPolicyError));
  const warningsOf = (path: string) => result.warnings.filter((w) => w.file === path).map(formatPolicyError);
  const groupFiles = result.policy.groups.flatMap((g) =>
    g.file === undefined ? [] : [{ group: g.name, path: g.file, digest: digest(reader.texts.get(g.file) ?? ""), warnings: warningsOf(g.file) }],
  );
  return {
    policy: result.policy,
    policyWarnings: warningsOf(file),
    inputs: { code: await codeIdentity(), policy: { path: file, digest: digest(reader.texts.get(file) ?? "") }, groupFiles },
  };
}

/**
 * The recorded state with the changed group files parsed again: a group file only decides its group's
 * set members, so nothing else can differ from a full compile (a unit test holds them equal).
 */
function withGroupFiles(before: CompiledBefore, again: Reread): { desired: DesiredState; origin: CompileOrigin } {
  if (again.changed.length === 0) return { desired: before.desired, origin: { inputs: before.inputs, warnings: before.warnings } };
  const errors: PolicyError[] = [];
  const members = new Map<string, string[]>();
  const groupFiles = new Map(before.inputs.groupFiles.map((g) => [g.path + "\0" + g.group, g]));
  for (const { input, text } of again.changed) {
    const parsed = parseGroupFile(text, input.path);
    errors.push(...parsed.errors);
    members.set(setName(input.group, "ipv4"), toIpsetMembers(parsed.ipv4, "ipv4"));
    members.set(setName(input.group, "ipv6"), toIpsetMembers(parsed.ipv6, "ipv6"));
    groupFiles.set(input.path + "\0" + input.group, { ...input, digest: digest(text), warnings: parsed.warnings.map(formatPolicyError) });
  }
  if (errors.length > 0) throw new PolicyInvalid(sortPolicyErrors(errors).map(formatPolicyError));
  const sets = before.desired.sets.map((s) => (members.has(s.name) ? { ...s, members: members.get(s.name)! } : s));
  return {
    desired: { ...before.desired, sets },
    origin: { inputs: { ...before.inputs, groupFiles: [...groupFiles.values()] }, warnings: before.warnings },
  };
}

/** compile, with a refusal for this host (an interface it lacks) reported like any policy error: exit 1, nothing applied. */
function compileOnThisHost(policy: Policy, facts: Facts, sets: IpSetSpec[]): Ruleset {
  try {
    return compile(policy, facts, sets);
  } catch (e) {
    if (e instanceof RefusedOnThisHost) throw new PolicyInvalid(sortPolicyErrors(e.errors, policy.file).map(formatPolicyError));
    throw e;
  }
}

/**
 * Docker's nftables back end (29) keeps its rules in its own `docker-bridges` tables, with no
 * DOCKER-USER. dockwall's rules still hold beside them when they go through iptables-nft: every
 * nf_tables base chain on a hook sees the packet, and a drop in any of them is final whatever the
 * priorities, so Docker's accept cannot undo dockwall's drop. Through iptables-legacy the rules would
 * sit in x_tables, which `nft list ruleset` (and so Docker's own view, and anyone reading it) never
 * shows: refused. With no iptables at all nothing could be written: refused, saying so.
 */
function refuseUnsupported(facts: Facts): void {
  const backend = facts.docker.firewallBackend ?? "";
  if (!backend.startsWith("nftables")) return;
  if (facts.host.iptablesMissing) {
    throw new UnsupportedHost(
      `Docker uses its nftables firewall back end (${backend}) and this host has no iptables (iptables-nft-restore not found); ` +
        `dockwall ${VERSION} writes its rules through iptables-nft: install iptables (the nf_tables variant). A native nftables back end is a later step.`,
    );
  }
  if (facts.host.iptables === "legacy") {
    throw new UnsupportedHost(
      `Docker uses its nftables firewall back end (${backend}) and this host's iptables is iptables-legacy; ` +
        `dockwall ${VERSION} would write x_tables rules beside Docker's nftables tables, where \`nft list ruleset\` never shows them. ` +
        `Make iptables-nft the host's iptables (update-alternatives --set iptables /usr/sbin/iptables-nft, and the same for ip6tables).`,
    );
  }
}
