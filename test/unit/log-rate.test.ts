/** Log rates: the loader takes only those iptables keeps as written (policy/log-rate.ts). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { keptRate } from "../../src/policy/log-rate.js";
import { loadPolicyText } from "../../src/policy/load.js";

// What iptables 1.8.9 read back for each (iptables-restore, then iptables-save, in a namespace; 306
// rates, random and these, all agreed with keptRate).
const MEASURED: [number, "second" | "minute" | "hour" | "day", string][] = [
  [9999, "minute", "166/second"],
  [60, "minute", "1/second"],
  [7000, "second", "10000/second"],
  [9999, "hour", "10000/hour"],
  [10, "minute", "10/minute"],
  [1, "day", "1/day"],
  [5, "second", "5/second"],
];

test("the rate iptables keeps is computed as iptables computes it (libxt_limit), measured", () => {
  for (const [n, unit, back] of MEASURED) {
    const kept = keptRate(n, unit)!;
    assert.equal(`${kept.n}/${kept.unit}`, back, `${n}/${unit}`);
  }
});

test("a log rate iptables would not keep as written passes no check: every apply would fail its read-back", async () => {
  const load = (rate: string) => loadPolicyText(`host:\n  - port: 22\nlog: { drops: true, rate: ${rate} }\n`, "p.yaml", async () => "");
  const refused = await load("9999/minute");
  assert.equal(refused.ok, false);
  assert.match(refused.ok ? "" : refused.errors.map((e) => `${e.line}:${e.col}: ${e.message}`).join("\n"), /^3:27: rate 9999\/minute cannot be kept as written by iptables \(it would read back as 166\/second.*such as 166\/second$/);
  assert.equal((await load("60/minute")).ok, false);
  assert.equal((await load("10/minute")).ok, true);
});
