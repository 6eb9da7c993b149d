/** Assertions the lab test files share: the probe matrix against expectations, and dockwall that must succeed. */
import assert from "node:assert/strict";
import type { Lab, ProbeSpec } from "./lab.js";
import type { Target } from "./expectations.js";

const FAMILIES = ["ipv4", "ipv6"] as const;

export interface MatrixProbe extends ProbeSpec {
  label: string;
  target: Target;
}

/** Every (target, client, family) of the lab: the probe matrix. */
export async function probeMatrix(lab: Lab, targets: Target[]): Promise<MatrixProbe[]> {
  const specs: MatrixProbe[] = [];
  for (const t of targets) {
    for (const family of FAMILIES) {
      let dst: string | undefined;
      if (t.container !== undefined) {
        dst = await lab.containerAddress(t.container, family);
        if (dst === undefined) continue; // no IPv6 container addresses in proxy mode: nothing to route to
      }
      for (const client of Object.values(lab.clients)) {
        specs.push({ client, family, proto: t.proto, port: t.port, dst, label: `${client.name} ${family} -> ${t.what}`, target: t });
      }
    }
  }
  return specs;
}

/** Probes every (target, client, family) and returns the ones whose outcome differs from `allowed`. */
export async function mismatches(lab: Lab, targets: Target[]): Promise<string[]> {
  const specs = await probeMatrix(lab, targets);
  const results = await lab.probeMany(specs);
  return specs.flatMap((s, i) => {
    const expect = s.target.allowed.includes(s.client.name);
    return results[i] === expect ? [] : [`${s.label}: expected ${expect ? "open" : "closed"}, was ${results[i] ? "open" : "closed"}`];
  });
}

export async function dockwallOk(lab: Lab, args: string[]): Promise<string> {
  const r = await lab.dockwall(args);
  assert.equal(r.code, 0, `dockwall ${args.join(" ")} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

