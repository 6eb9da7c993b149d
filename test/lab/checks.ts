/** Assertions the lab test files share: the probe matrix against expectations, and dockwall that must succeed. */
import assert from "node:assert/strict";
import type { Client, Lab } from "./lab.js";
import type { Target } from "./expectations.js";

const FAMILIES = ["ipv4", "ipv6"] as const;

/** Probes every (target, client, family) and returns the ones whose outcome differs from `allowed`. */
export async function mismatches(lab: Lab, targets: Target[]): Promise<string[]> {
  const specs: { client: Client; family: "ipv4" | "ipv6"; proto: "tcp" | "udp"; port: number; dst?: string; label: string; expect: boolean }[] = [];
  for (const t of targets) {
    for (const family of FAMILIES) {
      let dst: string | undefined;
      if (t.container !== undefined) {
        dst = await lab.containerAddress(t.container, family);
        if (dst === undefined) continue; // no IPv6 container addresses in proxy mode: nothing to route to
      }
      for (const client of Object.values(lab.clients)) {
        specs.push({
          client,
          family,
          proto: t.proto,
          port: t.port,
          dst,
          label: `${client.name} ${family} -> ${t.what}`,
          expect: t.allowed.includes(client.name),
        });
      }
    }
  }
  const results = await lab.probeMany(specs.map(({ client, family, proto, port, dst }) => ({ client, family, proto, port, dst })));
  return specs.flatMap((s, i) => (results[i] === s.expect ? [] : [`${s.label}: expected ${s.expect ? "open" : "closed"}, was ${results[i] ? "open" : "closed"}`]));
}

export async function dockwallOk(lab: Lab, args: string[]): Promise<string> {
  const r = await lab.dockwall(args);
  assert.equal(r.code, 0, `dockwall ${args.join(" ")} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

