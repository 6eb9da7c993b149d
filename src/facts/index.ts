/** Facts: what Docker and the host look like now. Read-only; gathered in parallel. */
import type { Runner } from "../exec/runner.js";
import { readDockerFacts } from "./docker.js";
import { readHostFacts } from "./host.js";
import { endpointFromEnv, type EngineEndpoint } from "./engine-api.js";
import type { Facts } from "./types.js";

export interface GatheredFacts {
  facts: Facts;
  warnings: string[];
}

/** `endpoint`: where DOCKER_HOST points (endpointFromEnv throws DockerHostInvalid for one dockwall cannot use). */
export async function gatherFacts(runner: Runner, endpoint: EngineEndpoint = endpointFromEnv()): Promise<GatheredFacts> {
  const [docker, { host, warnings }] = await Promise.all([readDockerFacts(endpoint), readHostFacts(runner)]);
  if (!docker.reachable) {
    warnings.push(`Docker is not reachable (${docker.error}); host and published-port rules apply, rules naming a container stay closed`);
  }
  return { facts: { docker, host }, warnings };
}
