/**
 * The host as dockwall sees it: interfaces with their addresses, and which iptables back end holds
 * Docker's rules. Read-only.
 */
import { readFile } from "node:fs/promises";
import os from "node:os";
import type { Runner } from "../exec/runner.js";
import type { HostFacts, HostInterface, IptablesVariant } from "./types.js";

export async function readHostFacts(runner: Runner): Promise<{ host: HostFacts; warnings: string[] }> {
  return { host: { interfaces: readInterfaces(), iptables: await detectIptablesVariant(runner) }, warnings: [] };
}

/**
 * getifaddrs(3) through node, in this process's network namespace: no `ip` process to start (each
 * one costs ~5 ms of a no-op apply). Interfaces without an address are not listed, and need not be.
 */
export function readInterfaces(read: () => NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces): HostInterface[] {
  return Object.entries(read())
    .map(([name, infos]) => ({ name, addresses: (infos ?? []).map((i) => i.cidr ?? `${i.address}/${i.family === "IPv4" ? 32 : 128}`) }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Docker writes to whichever back end its `iptables` binary uses; rules in the other one would also
 * apply and nobody could read the result. So: the variant that already holds Docker's chains wins;
 * with no Docker chains anywhere, the one `iptables --version` reports (what Docker will use).
 * Only the IPv4 save is read: Docker writes both families through the same binary family.
 */
export async function detectIptablesVariant(runner: Runner, readTableNames: ReadTableNames = readLegacyTableNames): Promise<IptablesVariant> {
  const [nft, legacy] = await Promise.all([
    hasDockerChains(runner, "iptables-nft-save"),
    legacyTablesExist(readTableNames).then((exist) => exist && hasDockerChains(runner, "iptables-legacy-save")),
  ]);
  if (nft !== legacy) return nft ? "nft" : "legacy";
  const v = await runner.run("iptables", ["--version"]).catch(() => undefined);
  if (v && v.code === 0 && /legacy/.test(v.stdout)) return "legacy";
  return "nft";
}

/** Reads /proc/net/ip_tables_names: the legacy (x_tables) tables of this network namespace. */
export type ReadTableNames = () => Promise<string>;

const readLegacyTableNames: ReadTableNames = () => readFile("/proc/net/ip_tables_names", "utf8");

/**
 * Reading legacy tables with iptables-legacy-save creates the filter table as a side effect (and from
 * then on every iptables-nft command warns "iptables-legacy tables present"). The kernel lists the
 * legacy tables that exist; none (or no ip_tables module, so no file) means legacy holds nothing.
 */
async function legacyTablesExist(read: ReadTableNames): Promise<boolean> {
  try {
    return (await read()).trim() !== "";
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "ENOENT";
  }
}

async function hasDockerChains(runner: Runner, saveCommand: string): Promise<boolean> {
  const r = await runner.run(saveCommand, ["-t", "filter"]).catch(() => undefined);
  return !!r && r.code === 0 && /^:DOCKER(-USER)? /m.test(r.stdout);
}
