/**
 * Docker's event stream (GET /events, one JSON object per line), kept open for as long as the daemon
 * runs: when Docker goes away the stream is opened again with backoff, and meanwhile the rules stay
 * as they are. Only the events that can change what the policy compiles to are passed on.
 */
import http from "node:http";
import { describeEndpoint, type EngineEndpoint } from "../facts/engine-api.js";
import { lineSplitter } from "../exec/lines.js";

export interface DockerEvent {
  Type: string;
  Action: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

export interface DockerEventHandlers {
  /** The stream is open: Docker is up (again); what it holds may have changed meanwhile. */
  connected(): void;
  /** A container or network changed in a way that can change the rules. */
  event(e: DockerEvent): void;
  /** The stream ended or could not be opened; it is retried after `retryMs`. */
  disconnected(reason: string, retryMs: number): void;
}

/** Container and network actions that change published ports, addresses or bridges. */
const RELEVANT: Record<string, string[]> = {
  container: ["start", "die", "destroy", "rename", "update"],
  network: ["create", "connect", "disconnect", "destroy"],
};

const FILTERS = encodeURIComponent(JSON.stringify({ type: Object.keys(RELEVANT) }));
const BACKOFF_MS = { first: 250, max: 10_000 };

export function isRelevant(e: DockerEvent): boolean {
  return RELEVANT[e.Type]?.includes(e.Action) ?? false;
}

/** Follows the stream until stop() (its inverse: start() again). */
export class DockerEventStream {
  private request?: http.ClientRequest;
  private timer?: NodeJS.Timeout;
  private stopped = true;
  private backoff = BACKOFF_MS.first;

  constructor(
    private readonly endpoint: EngineEndpoint,
    private readonly on: DockerEventHandlers,
  ) {}

  start(): void {
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.request?.destroy();
  }

  private open(): void {
    let ended = false;
    const end = (reason: string) => {
      if (ended || this.stopped) return;
      ended = true;
      const retry = this.backoff;
      this.backoff = Math.min(this.backoff * 2, BACKOFF_MS.max);
      this.on.disconnected(reason, retry);
      this.timer = setTimeout(() => this.open(), retry);
    };
    const req = http.request({ ...this.endpoint, path: `/events?filters=${FILTERS}`, method: "GET", headers: { Host: "docker" } }, (res) => {
      if ((res.statusCode ?? 500) >= 300) {
        res.resume();
        end(`GET /events: HTTP ${res.statusCode}`);
        return;
      }
      this.backoff = BACKOFF_MS.first;
      this.on.connected();
      res.setEncoding("utf8");
      res.on(
        "data",
        lineSplitter((line) => {
          if (line.trim() === "") return;
          try {
            const e = JSON.parse(line) as DockerEvent;
            if (isRelevant(e)) this.on.event(e);
          } catch {
            // A line that is not JSON is not an event; the stream goes on.
          }
        }),
      );
      res.on("end", () => end("Docker closed the event stream"));
      res.on("error", (e) => end(e.message));
    });
    req.on("error", (e: NodeJS.ErrnoException) => end(`cannot reach the Docker Engine at ${describeEndpoint(this.endpoint)}: ${e.code ?? e.message}`));
    req.end();
    this.request = req;
  }
}
