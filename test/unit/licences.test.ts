/**
 * The package ships the licence of every piece of code in dist/dockwall.cjs: dockwall's own
 * (LICENSE, Apache-2.0 as package.json says) and, in THIRD-PARTY-LICENSES, that of each package
 * esbuild bundled, read from the bundle itself (esbuild marks each module with its path) and from
 * esbuild's metafile, and the file is what scripts/third-party-licenses.mjs writes today.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

interface Licence {
  name: string;
  version: string;
  licence: string;
  text: string;
}
interface Script {
  OUTPUT: string;
  bundledPackageDirs: () => string[];
  packageLicence: (dir: string) => Licence;
  thirdPartyLicences: () => string;
}
const script = (await import(pathToFileURL(path.resolve("scripts/third-party-licenses.mjs")).href)) as Script;
const shipped = readFileSync(script.OUTPUT, "utf8");

/** The package directories the built bundle holds modules of: esbuild writes `// node_modules/NAME/FILE` above each. */
function packagesInBundle(): string[] {
  const bundle = readFileSync(path.resolve("dist/dockwall.cjs"), "utf8");
  const dirs = new Set<string>();
  for (const m of bundle.matchAll(/^\/\/ ((?:.*\/)?node_modules\/(?:@[^/]+\/)?[^/]+)\//gm)) dirs.add(m[1]!);
  return [...dirs].sort();
}

test("every package in the built bundle has its licence text in THIRD-PARTY-LICENSES, under its name, version and licence", () => {
  const dirs = packagesInBundle();
  // The bundle's own markers were found: at least the runtime dependencies package.json names.
  for (const expected of ["node_modules/commander", "node_modules/ipaddr.js", "node_modules/prom-client", "node_modules/yaml"]) assert.ok(dirs.includes(expected), `${expected} in ${dirs.join(", ")}`);
  for (const dir of [...dirs, "node_modules/esbuild"]) {
    const p = script.packageLicence(dir);
    assert.ok(shipped.includes(`\n${p.name}@${p.version}  (${p.licence})`), `${p.name}@${p.version} has no section`);
    assert.ok(shipped.includes(p.text), `${p.name}@${p.version}: its licence text is not in THIRD-PARTY-LICENSES`);
  }
});

test("esbuild's metafile names the same packages as the bundle's markers", () => {
  assert.deepEqual(script.bundledPackageDirs(), packagesInBundle());
});

test("THIRD-PARTY-LICENSES is what scripts/third-party-licenses.mjs writes from node_modules today", () => {
  assert.equal(shipped, script.thirdPartyLicences(), "run node scripts/third-party-licenses.mjs and commit the result");
});

test("LICENSE is the Apache License 2.0 that package.json names, and the package ships both files", () => {
  const pkg = JSON.parse(readFileSync(path.resolve("package.json"), "utf8")) as { license: string; files: string[] };
  assert.equal(pkg.license, "Apache-2.0");
  const licence = readFileSync(path.resolve("LICENSE"), "utf8");
  assert.match(licence, /^\s*Apache License\n\s*Version 2\.0, January 2004\n/);
  assert.match(licence, /END OF TERMS AND CONDITIONS/);
  for (const f of ["LICENSE", "THIRD-PARTY-LICENSES", "dist/dockwall.cjs", "examples", "schema"]) assert.ok(pkg.files.includes(f), f);
});
