/**
 * A minimal Docker Engine API client: GET a path, parse JSON.
 *
 * node:http rather than undici or dockerode: it speaks HTTP over a unix socket just as well, and
 * loading undici costs 0.1-0.3 s on the target machines, most of the 0.25 s budget of a no-op apply.
 * Whatever answers at DOCKER_HOST may not be Docker: every answer is bounded in size and time.
 */
import http from "node:http";

export interface EngineEndpoint {
  socketPath?: string;
  host?: string;
  port?: number;
}

/** DOCKER_HOST names no Engine dockwall can talk to: reported before anything is read or changed. */
export class DockerHostInvalid extends Error {}

export const DEFAULT_SOCKET = "/var/run/docker.sock";

/**
 * DOCKER_HOST as the docker CLI reads it: unix:///path, tcp://host[:port]; unset or empty, the local
 * socket. Throws DockerHostInvalid for anything else (ssh://, a unix:// without a path, a bad port).
 */
export function endpointFromEnv(dockerHost = process.env.DOCKER_HOST): EngineEndpoint {
  if (!dockerHost) return { socketPath: DEFAULT_SOCKET };
  const invalid = (why: string) => new DockerHostInvalid(`DOCKER_HOST=${JSON.stringify(dockerHost.length > 200 ? `${dockerHost.slice(0, 200)}...` : dockerHost)}: ${why}`);
  if (dockerHost.startsWith("unix://")) {
    const socketPath = dockerHost.slice("unix://".length);
    if (!socketPath.startsWith("/")) throw invalid(`unix:// needs the socket's absolute path, such as unix://${DEFAULT_SOCKET}`);
    return { socketPath };
  }
  if (dockerHost.startsWith("tcp://")) {
    const m = /^tcp:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?\/?$/.exec(dockerHost);
    const port = Number(m?.[2] ?? 2375);
    if (!m || port < 1 || port > 65535) throw invalid("tcp:// needs a host and an optional port 1-65535, such as tcp://127.0.0.1:2375");
    return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(dockerHost)?.[1];
  if (scheme === "ssh") throw invalid("ssh:// is not supported (dockwall runs on the Docker host itself); only unix:// and tcp:// are; leave DOCKER_HOST unset for the local socket");
  throw invalid(`${scheme ? `${scheme}:// is not supported` : "not a URL"}; only unix:// and tcp:// are supported; leave DOCKER_HOST unset for the local socket`);
}

export function describeEndpoint(e: EngineEndpoint): string {
  return e.socketPath ? `unix://${e.socketPath}` : `tcp://${e.host?.includes(":") ? `[${e.host}]` : e.host}:${e.port}`;
}

export class EngineApiError extends Error {}

/** The whole exchange, connect to last byte: a peer that trickles bytes must not hold an apply. */
const TIMEOUT_MS = 5000;
/** /containers/json for thousands of containers is a few MiB; anything near this is not Docker. */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

export function engineGet<T>(endpoint: EngineEndpoint, path: string, limits = { timeoutMs: TIMEOUT_MS, maxBytes: MAX_ANSWER_BYTES }): Promise<T> {
  const where = describeEndpoint(endpoint);
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      f();
    };
    const fail = (e: Error) => settle(() => reject(e));
    const req = http.request({ ...endpoint, path, method: "GET", headers: { Host: "docker" } }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > limits.maxBytes) {
          fail(new EngineApiError(`GET ${path} at ${where}: the answer is larger than ${limits.maxBytes / 1024 / 1024} MiB (is it the Docker Engine?)`));
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        if ((res.statusCode ?? 500) >= 300) {
          fail(new EngineApiError(`GET ${path}: HTTP ${res.statusCode}: ${JSON.stringify(body.trim().slice(0, 300))}`));
          return;
        }
        try {
          const parsed = JSON.parse(body) as T;
          settle(() => resolve(parsed));
        } catch {
          fail(new EngineApiError(`GET ${path} at ${where}: the answer is not JSON (is it the Docker Engine?)`));
        }
      });
      res.on("error", (e) => fail(new EngineApiError(`GET ${path} at ${where}: ${e.message}`)));
    });
    const deadline = setTimeout(() => {
      fail(new EngineApiError(`GET ${path}: no complete answer from ${where} in ${limits.timeoutMs} ms`));
      req.destroy();
    }, limits.timeoutMs);
    req.on("error", (e: NodeJS.ErrnoException) => fail(new EngineApiError(`cannot reach the Docker Engine at ${where}: ${errorText(e)}`)));
    req.end();
  });
}

function errorText(e: NodeJS.ErrnoException): string {
  if (e.code?.startsWith("HPE_")) return `what answers does not speak HTTP (${e.code}); is it the Docker Engine?`;
  if (e.code === "ECONNREFUSED") return "ECONNREFUSED (nothing listens there, or it is not a socket)";
  return e.code ?? e.message;
}
