/**
 * The Docker 29 Engine API stand-in (docker29.ts starts it: `node docker29-api.js SOCKET STATE`):
 * answers as Docker 29.0 / API 1.52 does for what dockwall and the docker CLI ask, from the lab's
 * state file, read on every request. What 1.52 changed and this must show: no top-level
 * NetworkSettings.IPAddress (addresses only under Networks[]), events with Type/Action/Actor only
 * (no `status`, `id`, `from`), FirewallBackend in /info, and clients older than API 1.44 refused.
 * A container that appears in the state file is announced on every open /events stream (network
 * connect, then container start, Docker's order).
 */
import http from "node:http";
import { readFileSync, rmSync, watchFile } from "node:fs";

const [socket, stateFile] = process.argv.slice(2) as [string, string];
const VERSION = "29.0.1";
const API = "1.52";
const MIN_API = "1.44";

interface State {
  backend: "iptables" | "nftables";
  containers: { name: string; id: string; ipv4: string; ipv6: string; published: { hostPort: number; containerPort: number }[] }[];
  networks: Record<string, { id: string; bridge: string; ipv4: readonly [string, number]; ipv6: readonly [string, number]; subnets: readonly string[] }>;
}

const state = (): State => JSON.parse(readFileSync(stateFile, "utf8")) as State;
const CREATED = "2026-12-01T09:00:00.000000000Z";
const NETWORK = "bridge1"; // the scenario's containers are all on bridge1

function containerJson(c: State["containers"][number], s: State) {
  const net = s.networks[NETWORK]!;
  return {
    Id: c.id,
    Names: [`/${c.name}`],
    Image: "dwlab:1",
    ImageID: `sha256:${"e5".repeat(32)}`,
    Command: "sh -c socat",
    Created: 1764579600,
    // Docker lists a published port once per host address family.
    Ports: c.published.flatMap((p) => [
      { IP: "0.0.0.0", PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: "tcp" },
      { IP: "::", PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: "tcp" },
    ]),
    Labels: {},
    State: "running",
    Status: "Up 5 minutes",
    HostConfig: { NetworkMode: NETWORK },
    // API 1.52: no IPAddress, Gateway, MacAddress, ... at this level; only per network.
    NetworkSettings: {
      Networks: {
        [NETWORK]: {
          IPAMConfig: null,
          Links: null,
          Aliases: null,
          MacAddress: "02:42:c6:12:02:02",
          DriverOpts: null,
          GwPriority: 0,
          NetworkID: net.id,
          EndpointID: c.id.split("").reverse().join(""),
          Gateway: net.ipv4[0],
          IPAddress: c.ipv4,
          IPPrefixLen: net.ipv4[1],
          IPv6Gateway: net.ipv6[0],
          GlobalIPv6Address: c.ipv6,
          GlobalIPv6PrefixLen: net.ipv6[1],
          DNSNames: [c.name, c.id.slice(0, 12)],
        },
      },
    },
    Mounts: [],
  };
}

function networkJson(name: string, n: State["networks"][string]) {
  const isDefault = name === "bridge";
  return {
    Name: name,
    Id: n.id,
    Created: CREATED,
    Scope: "local",
    Driver: "bridge",
    EnableIPv4: true,
    EnableIPv6: true,
    IPAM: { Driver: "default", Options: null, Config: [{ Subnet: n.subnets[0], Gateway: n.ipv4[0] }, { Subnet: n.subnets[1], Gateway: n.ipv6[0] }] },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: "" },
    ConfigOnly: false,
    Containers: {},
    Options: isDefault
      ? {
          "com.docker.network.bridge.default_bridge": "true",
          "com.docker.network.bridge.enable_icc": "true",
          "com.docker.network.bridge.enable_ip_masquerade": "true",
          "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
          "com.docker.network.bridge.name": n.bridge,
          "com.docker.network.driver.mtu": "1500",
        }
      : { "com.docker.network.bridge.name": n.bridge },
    Labels: {},
  };
}

function info(s: State) {
  return {
    ID: "d29-stand-in",
    Containers: s.containers.length,
    ContainersRunning: s.containers.length,
    ContainersPaused: 0,
    ContainersStopped: 0,
    Images: 1,
    Driver: "overlay2",
    OperatingSystem: "dockwall lab (Docker 29 stand-in)",
    OSType: "linux",
    Architecture: "x86_64",
    Name: "dwlab",
    ServerVersion: VERSION,
    FirewallBackend: { Driver: s.backend },
    SecurityOptions: [],
    Warnings: null,
  };
}

function version() {
  return {
    Platform: { Name: "Docker Engine - Community" },
    Components: [{ Name: "Engine", Version: VERSION, Details: { ApiVersion: API, MinAPIVersion: MIN_API, Os: "linux", Arch: "amd64" } }],
    Version: VERSION,
    ApiVersion: API,
    MinAPIVersion: MIN_API,
    GitCommit: "stand-in",
    GoVersion: "go1.25",
    Os: "linux",
    Arch: "amd64",
    KernelVersion: "lab",
    BuildTime: CREATED,
  };
}

const older = (a: string, b: string) => {
  const [am, an] = a.split(".").map(Number) as [number, number];
  const [bm, bn] = b.split(".").map(Number) as [number, number];
  return am < bm || (am === bm && an < bn);
};

const streams = new Set<http.ServerResponse>();

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Api-Version": API, "Docker-Experimental": "false", Ostype: "linux", Server: `Docker/${VERSION} (linux)` });
  res.end(text + "\n");
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://docker");
  const versioned = /^\/v(\d+\.\d+)(\/.*)$/.exec(url.pathname);
  if (versioned && older(versioned[1]!, MIN_API)) {
    return send(res, 400, { message: `client version ${versioned[1]} is too old. Minimum supported API version is ${MIN_API}, please upgrade your client to a newer version` });
  }
  const route = versioned ? versioned[2]! : url.pathname;
  const s = state();
  if (route === "/_ping") {
    res.writeHead(200, { "Api-Version": API, "Docker-Experimental": "false", Ostype: "linux", "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache, no-store, must-revalidate" });
    return res.end(req.method === "HEAD" ? undefined : "OK");
  }
  if (req.method !== "GET") return send(res, 404, { message: "page not found" });
  if (route === "/version") return send(res, 200, version());
  if (route === "/info") return send(res, 200, info(s));
  if (route === "/containers/json") return send(res, 200, s.containers.map((c) => containerJson(c, s)));
  if (route === "/networks") return send(res, 200, Object.entries(s.networks).map(([name, n]) => networkJson(name, n)));
  if (route === "/events") {
    res.writeHead(200, { "Content-Type": "application/json", "Api-Version": API });
    res.flushHeaders();
    streams.add(res);
    res.on("close", () => streams.delete(res));
    return;
  }
  return send(res, 404, { message: "page not found" });
});

/** Announces every container that appeared in the state file since it was last read. */
let known = new Set(state().containers.map((c) => c.id));
watchFile(stateFile, { interval: 100 }, () => {
  let s: State;
  try {
    s = state();
  } catch {
    return; // mid-write (the lab renames a complete file into place, so this is only a race at start)
  }
  for (const c of s.containers.filter((x) => !known.has(x.id))) {
    const now = Date.now();
    const event = (Type: string, Action: string, Actor: { ID: string; Attributes: Record<string, string> }) =>
      JSON.stringify({ Type, Action, Actor, scope: "local", time: Math.floor(now / 1000), timeNano: now * 1e6 }) + "\n";
    for (const res of streams) {
      res.write(event("network", "connect", { ID: s.networks[NETWORK]!.id, Attributes: { container: c.id, name: NETWORK, type: "bridge" } }));
      res.write(event("container", "start", { ID: c.id, Attributes: { image: "dwlab:1", name: c.name } }));
    }
  }
  known = new Set(s.containers.map((c) => c.id));
});

rmSync(socket, { force: true });
server.listen(socket);
const stop = () => {
  for (const res of streams) res.end();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
