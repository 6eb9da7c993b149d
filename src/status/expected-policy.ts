/**
 * `status --expect-policy FILE`: whether the rules in force were compiled from a policy with exactly
 * FILE's content as it is now. The health check of the Swarm service (deploy/swarm): a new policy
 * that does not apply leaves the last applied rules in force, in sync and, once watch has noted it,
 * DEGRADED; but before watch has even tried, plain `status` would call the old rules healthy. Only
 * the content is compared (the digest the applied record keeps), not the path: the policy is the
 * same file inside the container and beside it on the host, at different paths.
 */
import { digest } from "../inputs.js";
import type { AppliedRecord } from "../apply/state-store.js";

/** Why the record does not hold this policy text, or undefined when it does. */
export function expectedPolicyProblem(current: AppliedRecord | undefined, file: string, text: string): string | undefined {
  if (current === undefined) return `${file} is not in force: nothing is applied`;
  if (current.origin?.inputs?.policy?.digest === digest(text)) return undefined;
  return `${file} is not in force: the rules applied at ${current.at} (from ${current.source}) were compiled from another policy`;
}
