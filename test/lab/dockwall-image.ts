/**
 * The dockwall container image of the lab, built from files as the lab's own image is (lab.ts
 * importImage): no registry, no base image. What deploy/swarm/Dockerfile installs from Debian
 * packages, copied from this machine instead: the single executable (scripts/build-sea.mjs, as the
 * Dockerfile takes it from `npm run build:sea`), iptables and
 * ip6tables in the host's variant (iptables-nft: xtables-nft-multi under the names dockwall calls,
 * with its xtables modules), ipset, nft, flock (the apply lock), stdbuf (the ruleset monitor), a
 * busybox shell, and every library they load (ldd). Built once per test process, imported into
 * every node's dockerd.
 */
import { chmod, copyFile, mkdir, mkdtemp, readdir, rm, symlink } from "node:fs/promises";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ProcessRunner } from "../../src/exec/runner.js";
import { seaExecutable } from "../unit/sea-executable.js";

const runner = new ProcessRunner();

export const DOCKWALL_IMAGE = "dockwall:lab";

const XTABLES_MODULES = "/usr/lib/x86_64-linux-gnu/xtables";
const STDBUF_LIBRARY = "/usr/libexec/coreutils/libstdbuf.so";
/** The names dockwall runs (backends/netfilter.ts, facts/host.ts): all of them xtables-nft-multi. */
const XTABLES_NAMES = ["iptables", "ip6tables", ...["iptables", "ip6tables"].flatMap((t) => ["save", "restore"].flatMap((tool) => [`${t}-nft-${tool}`, `${t}-${tool}`])), "iptables-nft", "ip6tables-nft"];
const BUSYBOX_APPLETS = ["sh", "cat", "echo", "sleep", "ls", "mkdir", "rm", "env"];

let rootfs: Promise<string> | undefined;

/** The image's root folder (built on first use; the caller's lab folders stay its own). */
export function dockwallRootfs(): Promise<string> {
  rootfs ??= buildRootfs();
  return rootfs;
}

async function buildRootfs(): Promise<string> {
  const root = path.join(await mkdtemp(path.join(os.tmpdir(), "dockwall-image-")), "rootfs");
  const put = async (from: string, to = from) => {
    await mkdir(path.join(root, path.dirname(to)), { recursive: true });
    await copyFile(from, path.join(root, to));
  };
  const executable = await seaExecutable();
  await put(executable, "/usr/local/bin/dockwall");
  await chmod(path.join(root, "usr/local/bin/dockwall"), 0o755);
  const binaries = ["/usr/sbin/xtables-nft-multi", "/usr/sbin/ipset", "/usr/sbin/nft", "/usr/bin/flock", "/usr/bin/stdbuf", "/bin/busybox"];
  const modules = (await readdir(XTABLES_MODULES)).filter((f) => f.endsWith(".so")).map((f) => path.join(XTABLES_MODULES, f));
  for (const file of [...binaries, ...modules, STDBUF_LIBRARY]) await put(file);
  const libraries = new Set<string>();
  for (const file of [executable, ...binaries, ...modules, STDBUF_LIBRARY]) {
    const r = await runner.run("ldd", [file]);
    // A static binary: "not a dynamic executable" (exit 1), nothing to copy.
    for (const lib of r.stdout.match(/\/\S+\.so[.\d]*/g) ?? []) libraries.add(lib);
  }
  for (const lib of libraries) await put(lib);
  for (const name of XTABLES_NAMES) await symlink("xtables-nft-multi", path.join(root, "usr/sbin", name));
  for (const applet of BUSYBOX_APPLETS) await symlink("busybox", path.join(root, "bin", applet));
  for (const file of ["/etc/protocols", "/etc/services", "/etc/ethertypes"]) if (existsSync(file)) await put(file);
  for (const dir of ["tmp", "run", "etc/dockwall", "var/lib/dockwall"]) await mkdir(path.join(root, dir), { recursive: true });
  return root;
}

/** Imports the image into the dockerd at `socket` (a swarm node's), with dockwall as its entry point. */
export async function importDockwallImage(socket: string): Promise<void> {
  const root = await dockwallRootfs();
  const changes = ['ENTRYPOINT ["/usr/local/bin/dockwall"]', "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin"].flatMap((c) => ["--change", c]);
  const q = (w: string) => `'${w.replace(/'/g, "'\\''")}'`;
  const r = await runner.run("sh", ["-c", `tar -C ${q(root)} -c . | docker import ${changes.map(q).join(" ")} - ${DOCKWALL_IMAGE}`], { env: { DOCKER_HOST: `unix://${socket}` } });
  if (r.code !== 0) throw new Error(`docker import of ${DOCKWALL_IMAGE} failed: ${r.stderr.trim()}`);
}

/** The image's folder, once every node has imported it. */
export async function removeDockwallRootfs(): Promise<void> {
  const built = rootfs;
  rootfs = undefined;
  const root = await built?.catch(() => undefined);
  if (root) await rm(path.dirname(root), { recursive: true, force: true });
}
