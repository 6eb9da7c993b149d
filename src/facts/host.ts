/**
 * The host as dockwall sees it: interfaces with their addresses, and which iptables back end holds
 * Docker's rules. Read-only.
 */
import type { Runner } from "../exec/runner.js";
import type { HostFacts, HostInterface, IptablesVariant } from "./types.js";

export async function readHostFacts(runner: Runner): Promise<{ host: HostFacts; warnings: string[] }> {
  const warnings: string[] = [];
  const [interfaces, iptables] = await Promise.all([readInterfaces(runner, warnings), detectIptablesVariant(runner)]);
  return { host: { interfaces, iptables }, warnings };
}

interface IpAddrJson {
  ifname: string;
  addr_info?: { local: string; prefixlen: number }[];
}

async function readInterfaces(runner: Runner, warnings: string[]): Promise<HostInterface[]> {
  const r = await runner.run("ip", ["-j", "addr", "show"]).catch(() => undefined);
  if (!r || r.code !== 0) {
    warnings.push(`could not list the host's interfaces (ip -j addr): ${r?.stderr.trim() ?? "ip not found"}`);
    return [];
  }
  const parsed = JSON.parse(r.stdout || "[]") as IpAddrJson[];
  return parsed.map((i) => ({
    name: i.ifname,
    addresses: (i.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`),
  }));
}

/**
 * Docker writes to whichever back end its `iptables` binary uses; rules in the other one would also
 * apply and nobody could read the result. So: the variant that already holds Docker's chains wins;
 * with no Docker chains anywhere, the one `iptables --version` reports (what Docker will use).
 * Only the IPv4 save is read: Docker writes both families through the same binary family.
 */
export async function detectIptablesVariant(runner: Runner): Promise<IptablesVariant> {
  const [nft, legacy] = await Promise.all([
    hasDockerChains(runner, "iptables-nft-save"),
    hasDockerChains(runner, "iptables-legacy-save"),
  ]);
  if (nft !== legacy) return nft ? "nft" : "legacy";
  const v = await runner.run("iptables", ["--version"]).catch(() => undefined);
  if (v && v.code === 0 && /legacy/.test(v.stdout)) return "legacy";
  return "nft";
}

async function hasDockerChains(runner: Runner, saveCommand: string): Promise<boolean> {
  const r = await runner.run(saveCommand, ["-t", "filter"]).catch(() => undefined);
  return !!r && r.code === 0 && /^:DOCKER(-USER)? /m.test(r.stdout);
}
