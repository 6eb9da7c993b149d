/**
 * The tracer against the kernel on the lab's probe matrix: every probe is run twice, once as a real
 * connection and once through the tracer over the live `iptables-save`/`ipset save` and `nft -j list
 * ruleset` (nft's own tables: Docker 29's docker-bridges) of the Docker host, and the two must agree.
 * Shared by the tracer's own suite, the apply suite's every mode and the Docker 29 stand-in's.
 */
import { Lab, HOST_ADDR } from "./lab.js";
import { probeMatrix, probeOutcomes } from "./checks.js";
import { POLICY_TARGETS, type Target } from "./expectations.js";
import { RuleWalker } from "../../src/trace/trace.js";
import { parseSave } from "../../src/backends/iptables/save-parser.js";
import { parseIpsetSave } from "../../src/backends/ipset.js";
import type { TraceHost } from "../../src/trace/packet.js";
import { memberSets } from "../../src/trace/sets.js";
import { emptyNftRuleset, parseNftRuleset } from "../../src/trace/nft/ruleset.js";

/**
 * The probe matrix, less the loopback-published port: nothing listens on the host's outside address
 * there, so a refused connection says nothing about the firewall.
 */
export const TRACED_TARGETS: Target[] = POLICY_TARGETS.filter((t) => t.port !== 9090);

export async function liveWalkers(lab: Lab): Promise<Record<"ipv4" | "ipv6", RuleWalker>> {
  const [v4, v6, sets, addrs, nftJson] = await Promise.all([
    lab.hostIptablesSave("ipv4"),
    lab.hostIptablesSave("ipv6"),
    lab.exec(lab.hostNs, "ipset", ["save"]),
    lab.exec(lab.hostNs, "ip", ["-j", "addr"]),
    lab.exec(lab.hostNs, "nft", ["-j", "list", "ruleset"]),
  ]);
  // The lab's iptables-save is iptables-nft's (Debian 12): its tables are read from it, not from nft.
  const nft = nftJson.code === 0 ? parseNftRuleset(nftJson.stdout, { iptablesNft: !/\(legacy\)/.test(v4) }) : emptyNftRuleset(nftJson.stderr);
  const links = JSON.parse(addrs.stdout) as { ifname: string; addr_info: { local: string; prefixlen: number }[] }[];
  const host: TraceHost = { interfaces: links.map((l) => ({ name: l.ifname, addresses: l.addr_info.map((a) => `${a.local}/${a.prefixlen}`) })) };
  const all = parseIpsetSave(sets.stdout, () => true);
  // Members as `ipset save` prints them (the CLI asks the kernel with `ipset test` instead: both are checked).
  const members = memberSets(all);
  const walker = (family: "ipv4" | "ipv6", save: string) => new RuleWalker(parseSave(save), members, host, undefined, nft.families[family]);
  return { ipv4: walker("ipv4", v4), ipv6: walker("ipv6", v6) };
}

/** Every probe where the tracer's verdict and the real connection differ, and how many were compared. */
export async function disagreements(lab: Lab, targets: Target[] = TRACED_TARGETS): Promise<{ wrong: string[]; compared: number; open: number }> {
  const specs = await probeMatrix(lab, targets);
  const walkers = await liveWalkers(lab);
  const traced = specs.map((s) =>
    walkers[s.family].trace({
      family: s.family,
      proto: s.proto,
      src: s.client[s.family],
      dst: s.dst ?? HOST_ADDR[s.family],
      dport: s.port,
      inIface: "eth0",
    }),
  );
  const real = await probeOutcomes(lab, specs, (i) => traced[i]!.verdict === "accept");
  const wrong: string[] = [];
  specs.forEach((s, i) => {
    const r = traced[i]!;
    if ((r.verdict === "accept") !== real[i]) {
      wrong.push(`${s.label}: real ${real[i] ? "open" : "closed"}, tracer ${r.verdict}${r.reason ? ` (${r.reason})` : ""}; last rule ${r.steps.at(-1)?.rule ?? "none"}`);
    }
  });
  return { wrong, compared: specs.length, open: real.filter(Boolean).length };
}

