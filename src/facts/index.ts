/** Facts: what Docker and the host look like now. Read-only; gathered in parallel. */
import type { Runner } from "../exec/runner.js";
import { readDockerFacts } from "./docker.js";
import { readHostFacts } from "./host.js";
import { DockerHostInvalid, endpointFromEnv, type EngineEndpoint } from "./engine-api.js";
import type { Facts } from "./types.js";

export interface GatheredFacts {
  facts: Facts;
  warnings: string[];
}

/**
 * Where DOCKER_HOST points, or why dockwall cannot use it. For the daemon, which must hold rules
 * whatever DOCKER_HOST says: to it an unusable DOCKER_HOST is a Docker that cannot be reached.
 */
export function dockerEndpoint(): EngineEndpoint | DockerHostInvalid {
  try {
    return endpointFromEnv();
  } catch (e) {
    if (e instanceof DockerHostInvalid) return e;
    throw e;
  }
}

/**
 * `endpoint`: where DOCKER_HOST points (endpointFromEnv throws DockerHostInvalid for one dockwall
 * cannot use); given that error instead, Docker counts as not reachable, for the reason it says.
 */
export async function gatherFacts(runner: Runner, endpoint: EngineEndpoint | DockerHostInvalid = endpointFromEnv()): Promise<GatheredFacts> {
  const docking =
    endpoint instanceof DockerHostInvalid ? Promise.resolve({ reachable: false, error: endpoint.message, containers: [], networks: [] }) : readDockerFacts(endpoint);
  const [docker, { host, warnings }] = await Promise.all([docking, readHostFacts(runner)]);
  if (!docker.reachable) {
    warnings.push(`Docker is not reachable (${docker.error}); host and published-port rules apply, rules naming a container stay closed`);
  }
  return { facts: { docker, host }, warnings };
}
