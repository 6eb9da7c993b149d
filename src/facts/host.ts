/**
 * The host as dockwall sees it: interfaces with their addresses, and which iptables back end holds
 * Docker's rules. Read-only.
 */
import { accessSync, constants, readFileSync } from "node:fs";
import path from "node:path";
import { readFile } from "node:fs/promises";
import os from "node:os";
import type { Runner } from "../exec/runner.js";
import type { HostFacts, HostInterface, IptablesVariant } from "./types.js";

export async function readHostFacts(runner: Runner, onPath: (command: string) => boolean = commandOnPath): Promise<{ host: HostFacts; warnings: string[] }> {
  const iptables = await detectIptablesVariant(runner);
  const missing = !onPath(`iptables-${iptables}-restore`);
  return { host: { interfaces: readInterfaces(), iptables, ...(missing ? { iptablesMissing: true } : {}) }, warnings: [] };
}

/** Whether PATH holds an executable of that name: looked up on disk, no process started (apply's speed). */
export function commandOnPath(command: string, searchPath: string = process.env.PATH ?? ""): boolean {
  return searchPath
    .split(":")
    .filter((dir) => dir !== "")
    .some((dir) => {
      try {
        accessSync(path.join(dir, command), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

/** The sources of the interface list; injectable for tests. */
export interface InterfaceSources {
  /** getifaddrs(3): the addresses, by interface (or address label). */
  addresses: () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;
  /** /proc/net/dev: every interface of the namespace, with an address or not. */
  devices: () => string;
}

const SYSTEM_SOURCES: InterfaceSources = {
  addresses: os.networkInterfaces,
  // /proc/net is the reading process's network namespace (under nsenter as under `ip netns exec`),
  // unlike /sys/class/net, which shows the namespace of whoever mounted /sys. One read, no `ip` process.
  devices: () => {
    try {
      return readFileSync("/proc/net/dev", "utf8");
    } catch (e) {
      throw new Error(`cannot list this host's network interfaces: /proc/net/dev: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  },
};

/**
 * Every interface of this process's network namespace with its addresses. getifaddrs alone lists only
 * interfaces that have an address, so a WireGuard or VLAN interface not configured yet would look
 * missing; /proc/net/dev lists them all. An IPv4 address label (eth0:1) is its interface's address:
 * packets come in on eth0. Throws when the device list cannot be read: an interface would look missing.
 */
export function readInterfaces(sources: InterfaceSources = SYSTEM_SOURCES): HostInterface[] {
  const byName = new Map<string, string[]>();
  for (const name of parseProcNetDev(sources.devices())) byName.set(name, []);
  for (const [label, infos] of Object.entries(sources.addresses())) {
    const name = label.split(":")[0]!;
    const addresses = byName.get(name) ?? [];
    byName.set(name, [...addresses, ...(infos ?? []).map((i) => i.cidr ?? `${i.address}/${i.family === "IPv4" ? 32 : 128}`)]);
  }
  return [...byName]
    .map(([name, addresses]) => ({ name, addresses }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The interface names in /proc/net/dev: two header lines, then "  NAME: counters" per interface. */
export function parseProcNetDev(text: string): string[] {
  return text
    .split("\n")
    .slice(2)
    .flatMap((line) => {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).trim();
      return colon > 0 && name !== "" ? [name] : [];
    });
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
