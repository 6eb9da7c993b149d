import { compile } from "../src/compile/index.js";
import { render } from "../src/backends/rendered.js";
import { Netfilter } from "../src/backends/netfilter.js";
import { apply, readLive, makePlan, planIsEmpty, describePlan } from "../src/apply/apply.js";
import { ProcessRunner } from "../src/exec/runner.js";
import type { Policy } from "../src/policy/types.js";
import type { Facts } from "../src/facts/types.js";
const loc = { file: "p.yaml", line: 1, col: 1 };
const big: string[] = []; for (let i = 0; i < Number(process.argv[2] ?? 10); i++) big.push(`198.18.${(i >> 8) & 255}.${i & 255}/32`);
const policy: Policy = {
  file: "p.yaml", groups: [{ name: "office", ipv4: ["203.0.113.0/24", "198.18.0.5/32", ...big], ipv6: ["2001:db8:1::/48", "2001:db8::5/128"] }],
  trusted: [{ kind: "group", name: "office" }],
  host: [{ ports: [{ from: 22, to: 22 }], protos: ["tcp"], from: [{ kind: "any" }], loc }, { ports: [{ from: 53, to: 53 }], protos: ["udp", "tcp"], from: [{ kind: "cidr", cidr: { family: "ipv6", cidr: "2001:db8:9::/64" } }, {kind:"cidr", cidr:{family:"ipv4", cidr:"192.0.2.1/32"}}], loc }],
  containers: [{ ports: [{ from: 80, to: 80 }, { from: 8000, to: 8010 }], protos: ["tcp"], from: [{ kind: "any" }], loc }, { container: "django", ports: [{ from: 8000, to: 8000 }], protos: ["tcp"], from: [{ kind: "group", name: "office" }], loc }],
  routes: [{ in: "wg0", out: "eth1" }], swarm: { peers: [{ kind: "group", name: "office" }] },
  icmp: "allow", default: (process.argv[3] as "drop") ?? "reject", log: { drops: true, rate: "10/min" },
};
const facts: Facts = { docker: { reachable: true, containers: [{ id: "x", name: "django", running: true, addresses: [], networks: [], published: [{ hostIp: "198.51.100.1", hostPort: 8001, containerPort: 8000, proto: "tcp" }, { hostIp: "0.0.0.0", hostPort: 8002, containerPort: 8000, proto: "tcp" }] }], networks: [{ id: "n", name: "appnet", driver: "bridge", bridge: "dw-app", subnets: [] }] }, host: { interfaces: [], iptables: "nft" } };
const desired = render(compile(policy, facts));
const nf = new Netfilter(new ProcessRunner(), "nft");
const t = performance.now();
const r = await apply(nf, desired);
console.log("changed", r.changed, (performance.now() - t).toFixed(0), "ms");
console.log(r.summary.slice(0, 8).join("\n"));
const plan = makePlan(desired, await readLive(nf));
console.log("after: empty plan?", planIsEmpty(plan), describePlan(plan).slice(0, 10));
