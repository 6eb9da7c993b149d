/**
 * The single executable the tests run: built by scripts/build-sea.mjs, as `npm run build:sea` builds
 * the release, for this processor only, into dist/sea-test/ (not the release folder). Built once per
 * bundle: kept while it is newer than dist/dockwall.cjs, so the lab test reuses the unit test's.
 */
import { execFile } from "node:child_process";
import { stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const BUNDLE = path.join(DIST, "dockwall.cjs");
const SCRIPT = path.join(DIST, "..", "scripts", "build-sea.mjs");
const OUT = path.join(DIST, "sea-test");
export const SEA_NAME = `dockwall-linux-${process.arch}`;

const mtime = (file: string) => stat(file).then((s) => s.mtimeMs, () => undefined);

export async function seaExecutable(): Promise<string> {
  const exe = path.join(OUT, SEA_NAME);
  const [built, bundle] = [await mtime(exe), await mtime(BUNDLE)];
  if (bundle === undefined) throw new Error(`no ${BUNDLE}: run npm run build`);
  if (built === undefined || built < bundle) {
    await promisify(execFile)(process.execPath, [SCRIPT, "--arch", process.arch, "--out", OUT], { maxBuffer: 1 << 20 });
  }
  return exe;
}
