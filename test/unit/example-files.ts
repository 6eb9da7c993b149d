/** The policy files of examples/, for the tests that check them. */
import { readdirSync } from "node:fs";
import path from "node:path";

export const EXAMPLES = path.resolve("examples");

/** What issue 14 asks the examples to show, by file: a file added or removed must be added here too. */
export const EXAMPLE_FILES = [
  "large-group-file/dockwall.yaml",
  "office-and-web.yaml",
  "one-address-one-port.yaml",
  "router.yaml",
  "swarm.yaml",
];

/** Every policy file under examples/ (group files are .list). */
export function examplePolicies(dir = EXAMPLES, prefix = ""): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? examplePolicies(path.join(dir, e.name), `${prefix}${e.name}/`) : /\.ya?ml$/.test(e.name) ? [`${prefix}${e.name}`] : []))
    .sort();
}

