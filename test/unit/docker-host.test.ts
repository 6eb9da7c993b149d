/**
 * DOCKER_HOST and what answers there: a value dockwall cannot use is a clear error before anything is
 * read or changed (never an unhandled rejection with a stack trace); something at DOCKER_HOST that is
 * not Docker (a regular file, garbage, silence, a trickle, a huge answer, JSON of another shape) makes
 * Docker "not reachable" with a clear reason, in bounded time and memory.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { DockerHostInvalid, endpointFromEnv, engineGet } from "../../src/facts/engine-api.js";
import { readDockerFacts } from "../../src/facts/docker.js";
import { applyPolicy } from "../../src/apply-policy.js";
import { compilePolicy } from "../../src/pipeline.js";
import { MemoryLock } from "../../src/apply/lock.js";
import { StateStore } from "../../src/apply/state-store.js";
import { FakeNetfilter } from "./fake-netfilter.js";

test("DOCKER_HOST: unsupported schemes, garbage, unix:// without a path and bad tcp ports are refused, saying why", () => {
  const cases: [string, RegExp][] = [
    ["ssh://me@host", /^DOCKER_HOST="ssh:\/\/me@host": ssh:\/\/ is not supported \(dockwall runs on the Docker host itself\); only unix:\/\/ and tcp:\/\/ are/],
    ["npipe:////./pipe/docker_engine", /"npipe:\/\/\/\/.\/pipe\/docker_engine": npipe:\/\/ is not supported; only unix:\/\/ and tcp:\/\/ are supported/],
    ["fd://", /fd:\/\/ is not supported/],
    ["garbage", /"garbage": not a URL; only unix:\/\/ and tcp:\/\/ are supported/],
    ["/var/run/docker.sock", /not a URL/],
    ["unix://", /unix:\/\/ needs the socket's absolute path, such as unix:\/\/\/var\/run\/docker.sock/],
    ["unix://docker.sock", /unix:\/\/ needs the socket's absolute path/],
    ["tcp://", /tcp:\/\/ needs a host and an optional port 1-65535/],
    ["tcp://10.0.0.5:0", /tcp:\/\/ needs a host/],
    ["tcp://10.0.0.5:65536", /tcp:\/\/ needs a host/],
    ["tcp://10.0.0.5:2375/v1.41", /tcp:\/\/ needs a host/],
    ["tcp://a b:2375", /tcp:\/\/ needs a host/],
    ["unix\n://x", /"unix\\n:\/\/x": not a URL/],
  ];
  for (const [value, why] of cases) {
    assert.throws(() => endpointFromEnv(value), (e: unknown) => e instanceof DockerHostInvalid && why.test(e.message), value);
  }
  assert.deepEqual(endpointFromEnv(""), { socketPath: "/var/run/docker.sock" });
  assert.deepEqual(endpointFromEnv("tcp://10.0.0.5:65535/"), { host: "10.0.0.5", port: 65535 });
});

/** Catches unhandled rejections while `body` runs and a few turns of the event loop after it. */
async function unhandledDuring(body: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const record = (e: unknown) => seen.push(e);
  process.on("unhandledRejection", record);
  try {
    await body();
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 10));
  } finally {
    process.off("unhandledRejection", record);
  }
  return seen;
}

async function withDockerHost(value: string, body: () => Promise<void>): Promise<void> {
  const before = process.env.DOCKER_HOST;
  process.env.DOCKER_HOST = value;
  try {
    await body();
  } finally {
    if (before === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = before;
  }
}

test("DOCKER_HOST=ssh://...: apply and plan refuse before anything is read or changed, with no unhandled rejection (no stack trace)", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-dockerhost-"));
  try {
    const file = path.join(dir, "dockwall.yaml");
    await writeFile(file, "host:\n  - port: 22\n");
    const fake = new FakeNetfilter();
    const store = new StateStore(path.join(dir, "state"));
    await withDockerHost("ssh://me@docker.example", async () => {
      const unhandled = await unhandledDuring(async () => {
        await assert.rejects(applyPolicy(file, { runner: fake, store, lock: new MemoryLock() }), DockerHostInvalid);
        // plan with a recorded state: the facts are awaited only after the recorded files are read again.
        await assert.rejects(
          compilePolicy(file, fake, { inputs: { code: "x", policy: { path: file, digest: "" }, groupFiles: [], facts: "" }, warnings: [], desired: { ipv4: { chains: [], jumps: [] }, ipv6: { chains: [], jumps: [] }, sets: [] } } as never),
          DockerHostInvalid,
        );
        await assert.rejects(readDockerFacts(), DockerHostInvalid);
      });
      assert.deepEqual(unhandled, []);
    });
    assert.deepEqual(fake.calls, [], "no command ran");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** A unix socket served by `onConnection`, for one test. */
async function withSocket(onConnection: (s: net.Socket) => void, body: (socketPath: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-engine-"));
  const socketPath = path.join(dir, "docker.sock");
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => undefined);
    onConnection(s);
  });
  try {
    await new Promise<void>((r) => server.listen(socketPath, r));
    await body(socketPath);
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const SMALL = { timeoutMs: 300, maxBytes: 1024 * 1024 };

test("something at DOCKER_HOST that is not Docker: a regular file, garbage, silence, a trickle, a huge answer: a clear error, bounded", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-engine-"));
  try {
    const file = path.join(dir, "regular");
    await writeFile(file, "not a socket\n");
    await assert.rejects(engineGet({ socketPath: file }, "/info", SMALL), /cannot reach the Docker Engine at unix:\/\/.*regular: ECONNREFUSED \(nothing listens there, or it is not a socket\)/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await withSocket(
    (s) => s.end("SSH-2.0-OpenSSH_9.6\r\ngarbage\r\n\r\n"),
    (socketPath) => assert.rejects(engineGet({ socketPath }, "/info", SMALL), /does not speak HTTP \(HPE_[A-Z_]+\); is it the Docker Engine\?/),
  );
  await withSocket(
    () => undefined,
    (socketPath) => assert.rejects(engineGet({ socketPath }, "/info", SMALL), /GET \/info: no complete answer from unix:\/\/.* in 300 ms/),
  );
  // A byte every 20 ms: never idle for long, but never done either.
  await withSocket(
    (s) => {
      s.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
      const t = setInterval(() => (s.writable ? s.write("1\r\n \r\n") : clearInterval(t)), 20);
      s.on("close", () => clearInterval(t));
    },
    (socketPath) => assert.rejects(engineGet({ socketPath }, "/info", SMALL), /no complete answer .* in 300 ms/),
  );
  await withSocket(
    (s) => {
      s.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[");
      const block = Buffer.alloc(64 * 1024, "1,");
      const pump = () => {
        while (s.writable && s.write(block));
      };
      s.on("drain", pump);
      pump();
    },
    (socketPath) => assert.rejects(engineGet({ socketPath }, "/info", { timeoutMs: 5000, maxBytes: 1024 * 1024 }), /GET \/info at unix:\/\/.*: the answer is larger than 1 MiB \(is it the Docker Engine\?\)/),
  );
});

test("an answer of another shape than Docker's makes Docker not reachable, naming what is wrong; nothing from it reaches a rule", async () => {
  const answers: Record<string, unknown>[] = [
    { "/containers/json?all=1": {}, expect: /GET \/containers\/json: the answer is not what the Docker Engine sends \(not a list\)/ },
    { "/containers/json?all=1": [{ Id: "a1", Ports: [{ Type: "tcp", PrivatePort: 80, PublicPort: "80 -j ACCEPT" }] }], expect: /item 0: Ports are not ports/ },
    { "/containers/json?all=1": [{ Id: "a1", NetworkSettings: { Networks: { bridge: { IPAddress: "1.2.3.4 -j ACCEPT" } } } }], expect: /item 0: NetworkSettings.Networks is not a mapping of networks with addresses/ },
    { "/networks": [{ Id: "n1", Name: "x", Driver: "bridge", Options: { "com.docker.network.bridge.name": "eth0 -j ACCEPT" } }], expect: /GET \/networks: .*item 0: bridge name "eth0 -j ACCEPT" is not an interface name/ },
    { "/networks": [{ Id: "n1 -j ACCEPT", Name: "x", Driver: "bridge" }], expect: /item 0: Id is not a Docker id/ },
    { "/info": [], expect: /GET \/info: the answer is not what the Docker Engine sends \(not an object\)/ },
  ];
  for (const answer of answers) {
    const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-engine-"));
    const socketPath = path.join(dir, "docker.sock");
    const server = http.createServer((req, res) => {
      const body = answer[req.url ?? ""] ?? (req.url === "/info" ? { ServerVersion: "20.10.24" } : []);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    });
    try {
      await new Promise<void>((r) => server.listen(socketPath, r));
      const facts = await readDockerFacts({ socketPath });
      assert.equal(facts.reachable, false);
      assert.match(facts.error ?? "", answer.expect as RegExp);
      assert.deepEqual([facts.containers, facts.networks], [[], []]);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  }
});
