/**
 * The Docker Engines the lab runs for real (LAB.md): Debian 12's 20.10 and Debian unstable's 28.5.2
 * unpacked beside it by scripts/docker28.sh. What differs between them, as far as the lab's set-up
 * goes, is here; what differs in the rules they write is what the suites test.
 */
import path from "node:path";

export type EngineVersion = "20.10" | "28";

export interface Engine {
  version: EngineVersion;
  dockerd: string;
  /** Folders put first in dockerd's PATH, so it finds its own containerd, docker-proxy and docker-init. */
  binDirs: string[];
  /** dockerd flags for Docker's own IPv6 DNAT (containers with IPv6 addresses). */
  ip6tablesArgs(prefix: string): string[];
}

const DOCKER28_DIR = process.env.DOCKWALL_DOCKER28_DIR ?? "/opt/docker28";

export const ENGINES: Record<EngineVersion, Engine> = {
  "20.10": {
    version: "20.10",
    dockerd: process.env.DOCKWALL_LAB_DOCKERD ?? "/usr/sbin/dockerd",
    binDirs: [],
    // 20.10 has ip6tables support only behind --experimental, and off by default.
    ip6tablesArgs: (prefix) => ["--experimental", "--ip6tables", "--ipv6", "--fixed-cidr-v6", prefix],
  },
  "28": {
    version: "28",
    dockerd: path.join(DOCKER28_DIR, "usr/sbin/dockerd"),
    binDirs: [path.join(DOCKER28_DIR, "usr/sbin"), path.join(DOCKER28_DIR, "usr/bin")],
    // ip6tables is on by default from 27 on: without --ipv6 the containers have no IPv6 address and
    // IPv6 to a published port goes through docker-proxy, as on 20.10 by default.
    ip6tablesArgs: (prefix) => ["--ipv6", "--fixed-cidr-v6", prefix],
  },
};

/** The version dockerd reports must be the engine's: a stale or swapped binary would test the wrong Docker. */
export function versionMatches(engine: Engine, reported: string): boolean {
  return reported === engine.version || reported.startsWith(`${engine.version}.`);
}

/** Every engine the tracer, watch and apply suites run on. */
export const ENGINES_UNDER_TEST: EngineVersion[] = ["20.10", "28"];
