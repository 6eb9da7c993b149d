#!/usr/bin/env node
// Builds dockwall as one file per processor, for hosts without Node.js: Node's single executable
// applications (SEA), the bundle dist/dockwall.cjs injected into a copy of the node binary.
//
//   npm run build:sea                                     # dist/release/dockwall-linux-{x64,arm64} + SHA256SUMS, licences
//   node scripts/build-sea.mjs --arch x64 --out DIR       # one processor, another folder (the tests)
//
// The base is the node binary of the version that runs this script (the blob must be made by the
// same version it runs in): this node itself for its own processor when it is an official build (it
// carries the SEA fuse; Debian's own nodejs does not), else the official binary of that version from
// the npm registry's node-linux-<arch> package, kept in a cache folder. Each executable is checked
// before it is kept: `--version` must print the bundle's version (arm64 under qemu-aarch64, from
// Debian's qemu-user and the arm64 cross libraries, where they are installed; said when not).
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const BUNDLE = path.join(ROOT, "dist", "dockwall.cjs");
// Node's own sentinel (src/node_sea.cc); `:0` until a blob is injected.
const FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";
const ARCHES = ["x64", "arm64"];
// How to run an executable for another processor: qemu's user mode, with the cross libraries as root.
const EMULATORS = { arm64: ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"], x64: ["qemu-x86_64", "-L", "/usr/x86_64-linux-gnu"] };

class BuildError extends Error {}

function fail(message) {
  throw new BuildError(message);
}

function parseArgs(argv) {
  const opts = { arches: ARCHES, out: path.join(ROOT, "dist", "release") };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    if (argv[i] === "--arch" && value) opts.arches = value.split(",");
    else if (argv[i] === "--out" && value) opts.out = path.resolve(value);
    else fail(`unknown argument ${argv[i]} (usage: build-sea.mjs [--arch x64,arm64] [--out DIR])`);
    i++;
  }
  for (const a of opts.arches) if (!ARCHES.includes(a)) fail(`no such processor ${a} (one of ${ARCHES.join(", ")})`);
  return opts;
}

const sha256 = (file) => createHash("sha256").update(readFileSync(file)).digest("hex");
const hasFuse = (file) => readFileSync(file).includes(`${FUSE}:0`);

/** The official node binary of this version for `arch`, from the npm registry (cached by version). */
function registryNode(arch) {
  const version = process.versions.node;
  const cache = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "dockwall-sea", `node-${version}-linux-${arch}`);
  const binary = path.join(cache, "package", "bin", "node");
  if (!existsSync(binary)) {
    mkdirSync(cache, { recursive: true });
    const spec = `node-linux-${arch}@${version}`;
    // npm checks the tarball against the registry's integrity; --json names the file it wrote.
    const packed = JSON.parse(execFileSync("npm", ["pack", spec, "--json", "--pack-destination", cache], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }));
    const tarball = path.join(cache, packed[0].filename);
    execFileSync("tar", ["-xzf", tarball, "-C", cache, "package/bin/node", "package/LICENSE"], { stdio: "inherit" });
    rmSync(tarball);
  }
  return { binary, license: [path.join(cache, "package", "LICENSE")], source: `npm node-linux-${arch}@${version}` };
}

function baseNode(arch) {
  if (arch === process.arch && process.platform === "linux" && hasFuse(process.execPath)) {
    // Node's LICENSE (its own and its dependencies') where the official tarball and NodeSource's package put it.
    const license = [path.join(path.dirname(process.execPath), "..", "share", "doc", "node", "LICENSE"), "/usr/share/doc/nodejs/LICENSE"];
    return { binary: process.execPath, license, source: process.execPath };
  }
  const base = registryNode(arch);
  if (!hasFuse(base.binary)) fail(`${base.source} has no SEA fuse ${FUSE}: it cannot hold a single executable`);
  return base;
}

function emulator(arch) {
  if (arch === process.arch) return [];
  const [cmd, ...args] = EMULATORS[arch];
  const found = spawnSync(cmd, ["--version"], { stdio: "ignore" }).status === 0;
  return found && existsSync(args[1]) ? [cmd, ...args] : undefined;
}

/**
 * The blob Node's SEA reads at start-up: the bundle, without V8's code cache. The cache would save
 * about 15 ms of CPU per start (bench/sea-startup.ts), but in Node 20 a script compiled from it has
 * no dynamic import() (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING): `apply --confirm`'s question on a
 * terminal imports readline so; and it would be this processor's, not arm64's.
 */
function makeBlob(dir) {
  const config = path.join(dir, "sea-config.json");
  const blob = path.join(dir, "dockwall.blob");
  writeFileSync(config, JSON.stringify({ main: BUNDLE, output: blob, disableExperimentalSEAWarning: true, useCodeCache: false, useSnapshot: false }));
  execFileSync(process.execPath, ["--experimental-sea-config", config], { stdio: ["ignore", "ignore", "inherit"] });
  return blob;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (process.platform !== "linux") fail("builds the Linux executables on Linux only");
  if (!existsSync(BUNDLE)) fail(`no ${path.relative(ROOT, BUNDLE)}: run npm run build first`);
  const version = execFileSync(process.execPath, [BUNDLE, "--version"], { encoding: "utf8" }).trim();
  const { inject } = createRequire(import.meta.url)("postject");
  mkdirSync(opts.out, { recursive: true });
  const work = mkdtempSync(path.join(opts.out, ".build-"));
  const built = [];
  try {
    const blob = readFileSync(makeBlob(work));
    for (const arch of opts.arches) {
      const name = `dockwall-linux-${arch}`;
      const base = baseNode(arch);
      const exe = path.join(work, name);
      copyFileSync(base.binary, exe);
      chmodSync(exe, 0o755);
      // postject (LIEF) warns about node's many .note sections on stderr; they are left as they are.
      await inject(exe, "NODE_SEA_BLOB", blob, { sentinelFuse: FUSE });
      const run = emulator(arch);
      if (run === undefined) {
        console.error(`build-sea: ${name} not run: no ${EMULATORS[arch][0]} with ${EMULATORS[arch][2]} here (Debian: qemu-user, libc6-${arch}-cross, libstdc++6-${arch}-cross)`);
      } else {
        const [cmd, ...args] = [...run, exe, "--version"];
        const said = execFileSync(cmd, args, { encoding: "utf8" }).trim();
        if (said !== version) fail(`${name} --version said ${JSON.stringify(said)}, the bundle ${version}`);
      }
      built.push({ name, exe, base, sha: sha256(exe) });
    }
    // The folder holds one build: executables of an older bundle go.
    for (const f of readdirSync(opts.out)) if (f.startsWith("dockwall-linux-")) rmSync(path.join(opts.out, f));
    for (const b of built) renameSync(b.exe, path.join(opts.out, b.name));
    // What is shipped carries its licences: dockwall's, the bundled packages', Node.js's (and its dependencies').
    const nodeLicense = built.flatMap((b) => b.base.license).find((f) => existsSync(f));
    if (nodeLicense === undefined) fail(`no LICENSE of Node.js found beside ${built.map((b) => b.base.source).join(", ")}`);
    copyFileSync(nodeLicense, path.join(opts.out, "NODE-LICENSE"));
    for (const f of ["LICENSE", "THIRD-PARTY-LICENSES"]) copyFileSync(path.join(ROOT, f), path.join(opts.out, f));
    // `sha256sum -c SHA256SUMS` checks them.
    writeFileSync(path.join(opts.out, "SHA256SUMS"), built.map((b) => `${b.sha}  ${b.name}\n`).join(""));
    writeFileSync(
      path.join(opts.out, "BUILD-INFO"),
      [`dockwall ${version}`, `bundle sha256 ${sha256(BUNDLE)}`, ...built.map((b) => `${b.name}: node ${process.versions.node} from ${b.base.source} (sha256 ${sha256(b.base.binary)})`)].join("\n") + "\n",
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  for (const b of built) console.log(`${path.join(opts.out, b.name)}  ${b.sha}`);
}

await main().catch((e) => {
  // Its own refusals as one line; anything else (npm, tar, postject) with its trace.
  console.error(e instanceof BuildError ? `build-sea: ${e.message}` : e);
  process.exit(1);
});
