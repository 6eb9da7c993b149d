/**
 * A minimal Docker Engine API client: GET a path, parse JSON.
 *
 * node:http rather than undici or dockerode: it speaks HTTP over a unix socket just as well, and
 * loading undici costs 0.1-0.3 s on the target machines, most of the 0.25 s budget of a no-op apply.
 */
import http from "node:http";

export interface EngineEndpoint {
  socketPath?: string;
  host?: string;
  port?: number;
}

/** DOCKER_HOST as the docker CLI reads it: unix:///path, tcp://host:port; default the local socket. */
export function endpointFromEnv(dockerHost = process.env.DOCKER_HOST): EngineEndpoint {
  if (!dockerHost) return { socketPath: "/var/run/docker.sock" };
  if (dockerHost.startsWith("unix://")) return { socketPath: dockerHost.slice("unix://".length) };
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(dockerHost);
  if (m) return { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2] ?? 2375) };
  throw new Error(`DOCKER_HOST=${dockerHost}: only unix:// and tcp:// are supported`);
}

export function describeEndpoint(e: EngineEndpoint): string {
  return e.socketPath ? `unix://${e.socketPath}` : `tcp://${e.host}:${e.port}`;
}

export class EngineApiError extends Error {}

const TIMEOUT_MS = 5000;

export function engineGet<T>(endpoint: EngineEndpoint, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { ...endpoint, path, method: "GET", headers: { Host: "docker" }, timeout: TIMEOUT_MS },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          if ((res.statusCode ?? 500) >= 300) {
            reject(new EngineApiError(`GET ${path}: HTTP ${res.statusCode}: ${body.trim()}`));
            return;
          }
          try {
            resolve(JSON.parse(body) as T);
          } catch {
            reject(new EngineApiError(`GET ${path}: the answer is not JSON`));
          }
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new EngineApiError(`GET ${path}: no answer in ${TIMEOUT_MS} ms`)));
    req.on("error", (e: NodeJS.ErrnoException) =>
      reject(new EngineApiError(`cannot reach the Docker Engine at ${describeEndpoint(endpoint)}: ${e.code ?? e.message}`)),
    );
    req.end();
  });
}
