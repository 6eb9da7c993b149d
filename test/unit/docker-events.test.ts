/** Docker's event stream against a real HTTP server on a unix socket: filtering, lines split across chunks, reconnects. */
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { DockerEventStream, type DockerEvent } from "../../src/daemon/docker-events.js";

test("relevant events pass, others do not; a closed stream is opened again", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-events-"));
  const socketPath = path.join(dir, "docker.sock");
  let connections = 0;
  const server = http.createServer((req, res) => {
    assert.match(req.url ?? "", /^\/events\?filters=/);
    connections++;
    res.writeHead(200, { "Content-Type": "application/json" });
    const start = JSON.stringify({ Type: "container", Action: "start", Actor: { ID: "abc", Attributes: { name: "web" } } });
    const exec = JSON.stringify({ Type: "container", Action: "exec_start: sh", Actor: { ID: "abc" } });
    const create = JSON.stringify({ Type: "network", Action: "create", Actor: { ID: "n1", Attributes: { name: "backend" } } });
    // One event split across two writes, and two in one.
    res.write(start.slice(0, 10));
    setTimeout(() => {
      res.write(`${start.slice(10)}\n${exec}\n`);
      res.write(`${create}\n`);
      // The first connection ends as a Docker restart would end it; the second stays open.
      if (connections === 1) setTimeout(() => res.end(), 10);
    }, 10);
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  const seen: string[] = [];
  const events: DockerEvent[] = [];
  let stream: DockerEventStream | undefined;
  try {
    await new Promise<void>((resolve) => {
      stream = new DockerEventStream(
        { socketPath },
        {
          connected: () => seen.push("connected"),
          event: (e) => {
            events.push(e);
            if (events.length === 4) resolve();
          },
          disconnected: (reason) => seen.push(`disconnected: ${reason}`),
        },
      );
      stream.start();
    });
    assert.deepEqual(
      events.map((e) => `${e.Type} ${e.Action}`),
      ["container start", "network create", "container start", "network create"],
    );
    assert.deepEqual(seen, ["connected", "disconnected: Docker closed the event stream", "connected"]);
  } finally {
    stream?.stop();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  }
});
