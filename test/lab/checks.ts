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

/**
 * How many more times a probe that came back closed where open was expected is asked again: a
 * probe is one attempt (lab.ts probeMany), so an open path gets four tries to answer.
 */
const CLOSED_RECHECKS = 3;

/**
 * The matrix's real outcomes, with every "closed" that contradicts `expectOpen` asked again before
 * it is believed: a datagram lost in a starved 2-core machine, or a connect that timed out behind a
 * burst of forks, makes an open path look closed (seen on Docker 28's UDP probes while the machine
 * was loaded: a stranger's datagram unanswered three times in a row, answered every time alone).
 * Noise never makes a closed path answer, so an "open" is final and a closed port that should be
 * closed costs nothing more; a path that really is closed stays closed however often it is asked.
 */
export async function probeOutcomes(lab: Lab, specs: ProbeSpec[], expectOpen: (i: number) => boolean): Promise<boolean[]> {
  const results = await lab.probeMany(specs);
  for (let round = 0; round < CLOSED_RECHECKS; round++) {
    const doubtful = results.flatMap((open, i) => (!open && expectOpen(i) ? [i] : []));
    if (doubtful.length === 0) break;
    const again = await lab.probeMany(doubtful.map((i) => specs[i]!));
    doubtful.forEach((i, k) => (results[i] = again[k]!));
  }
  return results;
}

/** Probes every (target, client, family) and returns the ones whose outcome differs from `allowed`. */
export async function mismatches(lab: Lab, targets: Target[]): Promise<string[]> {
  const specs = await probeMatrix(lab, targets);
  const results = await probeOutcomes(lab, specs, (i) => specs[i]!.target.allowed.includes(specs[i]!.client.name));
  return specs.flatMap((s, i) => {
    const expect = s.target.allowed.includes(s.client.name);
    return results[i] === expect ? [] : [`${s.label}: expected ${expect ? "open" : "closed"}, was ${results[i] ? "open" : "closed"}`];
  });
}

/**
 * Every target at the host's address, probed from the stranger, against `dockwall audit --json`:
 * audit must say "anyone" exactly where a real connection gets in. Returns the real outcomes and
 * the disagreements.
 */
export async function strangerVersusAudit(lab: Lab, auditJson: string, targets: Target[]): Promise<{ real: boolean[]; wrong: string[] }> {
  const rows = JSON.parse(auditJson).rows as { target: { port: number; proto: string; family: string }; reach: { who: string } }[];
  const says = (s: ProbeSpec) => rows.find((row) => row.target.port === s.port && row.target.proto === s.proto && row.target.family === s.family)?.reach.who ?? "no row";
  const specs = (await probeMatrix(lab, targets.filter((t) => t.container === undefined))).filter((s) => s.client === lab.clients.stranger);
  // A closed probe where audit says "anyone" is asked again before it counts against audit.
  const real = await probeOutcomes(lab, specs, (i) => says(specs[i]!) === "anyone");
  const wrong = specs.flatMap((s, i) => ((says(s) === "anyone") === real[i] ? [] : [`${s.label}: real ${real[i] ? "open" : "closed"}, audit says ${says(s)}`]));
  return { real, wrong };
}

export async function dockwallOk(lab: Lab, args: string[]): Promise<string> {
  const r = await lab.dockwall(args);
  assert.equal(r.code, 0, `dockwall ${args.join(" ")} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

