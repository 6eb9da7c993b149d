/**
 * schema/dockwall.schema.json (for editors) against the loader (the authority), so the two cannot
 * drift apart: every example, every golden policy and every policy the unit tests load validates;
 * every policy the loader refuses for its shape (a key, a type, a missing or empty value, a name's
 * form, a value outside its set) is refused by the schema too; the keys of every mapping and the
 * choices of every enum are the loader's own.
 *
 * What the schema sees is YAML's data (as yaml-language-server does), not the text as written: it
 * takes a value when some spelling of it would pass the loader (0x50 and 010 are the number 80 and
 * 10 there; `container: 0x1F` is 31, a name the loader takes as "0x1F"), and leaves to the loader
 * the spelling, addresses, references to groups, reversed ranges, log rates iptables would change,
 * group files, limits and YAML itself (duplicate keys, aliases).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { Ajv, type ValidateFunction } from "ajv";
import { LineCounter, isMap, isPair, isScalar, isSeq, parse, parseDocument, stringify, type Node } from "yaml";
import fc from "fast-check";
import { loadPolicy, loadPolicyText, type LoadResult } from "../../src/policy/load.js";
import { formatPolicyError } from "../../src/policy/errors.js";
import { examplePolicies } from "./example-files.js";

const SCHEMA_FILE = path.resolve("schema/dockwall.schema.json");
const FILE = "/etc/dockwall/p.yaml";

interface JsonSchema {
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  definitions?: Record<string, JsonSchema>;
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  enum?: string[];
  $ref?: string;
}

const schema = JSON.parse(readFileSync(SCHEMA_FILE, "utf8")) as JsonSchema;

/** Strict: an unknown keyword or a type that does not fit its keywords is an error, not ignored. */
function compileSchema(): ValidateFunction {
  // strictRequired off: the "opens something" rule names required keys whose schemas are above it.
  const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
  // The message editors show for a pattern (VS Code's JSON and yaml-language-server read it); no rule.
  ajv.addKeyword({ keyword: "patternErrorMessage", schemaType: "string" });
  return ajv.compile(schema);
}
const validate = compileSchema();

/** A schema error: where it is in the data (a JSON pointer, down to the key an unknown or bad key is). */
interface SchemaVerdict {
  ok: boolean;
  at: string[];
  why: string;
}

/** The schema's verdict on a policy text, as an editor reads it (YAML 1.2 core schema); a text YAML refuses is refused. */
function schemaAccepts(text: string): SchemaVerdict {
  let data: unknown;
  try {
    data = parse(text);
  } catch (e) {
    return { ok: false, at: [""], why: `YAML: ${(e as Error).message}` };
  }
  const ok = validate(data) as boolean;
  const errors = validate.errors ?? [];
  const at = errors.map((e) => {
    const key = (e.params as { additionalProperty?: string; propertyName?: string }).additionalProperty ?? (e.params as { propertyName?: string }).propertyName ?? (e as { propertyName?: string }).propertyName;
    return key === undefined ? e.instancePath : `${e.instancePath}/${pointer(key)}`;
  });
  return { ok, at, why: ok ? "" : JSON.stringify(errors.slice(0, 3)) };
}

function pointer(key: string): string {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}

/** The data paths (JSON pointers) of the YAML nodes that start at each line:col: a key stands for its value's path. */
function pathsByPosition(text: string): Map<string, string[]> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false });
  const out = new Map<string, string[]>();
  const mark = (node: unknown, at: string) => {
    const range = (node as Node | null)?.range;
    if (!range) return;
    const { line, col } = lines.linePos(range[0]);
    out.set(`${line}:${col}`, [...(out.get(`${line}:${col}`) ?? []), at]);
  };
  const walk = (node: unknown, at: string): void => {
    mark(node, at);
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        mark(pair.key, `${at}/${pointer(key)}`);
        walk(pair.value, `${at}/${pointer(key)}`);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, `${at}/${i}`));
    }
  };
  walk(doc.contents, "");
  return out;
}

/**
 * The loader's shape errors that no schema error stands at: one at the same place in the data or
 * below it (for the root, at the root itself), so that one error the schema catches cannot hide
 * another one it misses in the same file.
 */
function unmatchedShapeErrors(text: string, loaded: LoadResult, verdict: SchemaVerdict): string[] {
  if (loaded.ok || verdict.why.startsWith("YAML: ")) return [];
  const paths = pathsByPosition(text);
  return loaded.errors
    .filter((e) => SHAPE_ERRORS.some((re) => re.test(e.message)) && e.file === FILE)
    .filter((e) => {
      // Nodes that start at one place are nested (a block map and its first key): a message about a
      // key stands for the deepest, any other for the outermost (the entry that lacks a port).
      const candidates = paths.get(`${e.line}:${e.col}`) ?? [""];
      const l = KEY_ERRORS.some((re) => re.test(e.message)) ? candidates.at(-1)! : candidates[0]!;
      return !verdict.at.some((p) => (l === "" ? p === "" : p === l || p.startsWith(`${l}/`)));
    })
    .map(formatPolicyError);
}

/** Group files are not the schema's business: every one reads as empty. */
function load(text: string): Promise<LoadResult> {
  return loadPolicyText(text, FILE, async () => "");
}

/**
 * The loader's messages about a policy's shape: each names something JSON Schema sees in YAML's
 * data. A policy with one of these errors must be refused by the schema. Left out on purpose, as
 * the schema cannot see them: "is not a port" and "has a leading zero" (0x50 and 010 are numbers in
 * the data), reversed ranges, addresses, unknown groups and aliases, rates iptables would change,
 * group files, limits, YAML syntax and duplicate keys.
 */
const SHAPE_ERRORS: RegExp[] = [
  /^unknown key /,
  /^keys must be plain names$/,
  / must be a mapping( of keys| \(key: value\))/,
  /^expected a list /,
  / has no value$/,
  / must be a single value$/,
  /^a port must be a number 1-65535 or a range a-b$/,
  /^(from|trusted|swarm peers|interfaces|proto|port) is empty/,
  /^this entry needs a port /,
  /^port \d+ is outside 1-65535$/,
  /^(icmp|default) must be /,
  /^unknown protocol /,
  /^drops must be true or false$/,
  /^rate .* must look like 10\/minute/,
  / is not an interface name: /,
  / is not a container name /,
  /^group name .* must be 1-24 /,
  /^"any" is reserved /,
  /^group ".*" needs a list of addresses or \{ file: PATH \}$/,
  / must be a list of addresses or CIDRs, or \{ file: PATH \}$/,
  /^file needs a path$/,
  /^the file name .* holds a control character$/,
  /^a route needs (in|out): /,
  /^swarm needs peers: /,
  /^the policy opens nothing: /,
  /^the policy is empty: /,
];

/** The shape errors the loader reports at a key (the rest stand at the value or the entry). */
const KEY_ERRORS: RegExp[] = [/^unknown key /, /^keys must be plain names$/, / has no value$/, /^group name .* must be 1-24 /, /^"any" is reserved /];

function shapeErrors(r: LoadResult): string[] {
  return r.ok ? [] : r.errors.filter((e) => SHAPE_ERRORS.some((re) => re.test(e.message))).map(formatPolicyError);
}

/**
 * Every string the unit tests spell out in full (no `${}`) that looks like a policy: found with the
 * TypeScript parser, so a quote in a comment cannot confuse it.
 */
function testPolicyTexts(): { where: string; text: string }[] {
  const dir = path.resolve("test/unit");
  const out: { where: string; text: string }[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith(".ts")).sort()) {
    const file = path.join(dir, name);
    const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
    const visit = (node: ts.Node): void => {
      if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && /(^|\n)\uFEFF?(host|containers|trusted|icmp|groups|x):/.test(node.text)) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart());
        out.push({ where: `test/unit/${name}:${line + 1}`, text: node.text });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return out;
}

/** Cases the tests build with `${}` (so testPolicyTexts cannot see them), and shapes no test spells out. */
const MORE_SHAPE_CASES: string[] = [
  `host:\n  - port: 22\ncontainers:\n  - container: ${"c".repeat(129)}\n    port: 80\n`,
  "host:\n  - port: 22\n    from: [[192.0.2.1]]\n",
  "host:\n  - port: 22\n    from: { a: 1 }\n",
  "host:\n  - port: { a: 1 }\n",
  "host:\n  - port: 22\n    proto: 6\n",
  "host: { port: 22 }\n",
  "host:\n  - 22\n",
  "swarm: [192.0.2.1]\nhost:\n  - port: 22\n",
  "swarm: {}\nhost:\n  - port: 22\n",
  "log: true\nhost:\n  - port: 22\n",
  "log: { rate: 10 }\nhost:\n  - port: 22\n",
  "groups: [a]\nhost:\n  - port: 22\n",
  "groups:\n  a: 192.0.2.1\nhost:\n  - port: 22\n    from: [a]\n",
  "groups:\n  a: { path: a.list }\nhost:\n  - port: 22\n    from: [a]\n",
  'groups:\n  a: { file: "" }\nhost:\n  - port: 22\n    from: [a]\n',
  "routes: { in: eth0, out: eth1 }\nhost:\n  - port: 22\n",
  "routes:\n  - { in: eth0, out: eth1, via: eth2 }\nhost:\n  - port: 22\n",
  "routes:\n  - { out: eth1 }\nhost:\n  - port: 22\n",
  "interfaces: []\nhost:\n  - port: 22\n",
  "interfaces: { eth0: 1 }\nhost:\n  - port: 22\n",
  "interfaces: [-1]\nhost:\n  - port: 22\n",
  "host:\n  - port: 22\ncontainers:\n  - container: -1\n    port: 80\n",
  "host:\n  - port: 65536\n",
  'host:\n  - port: "1-65536"\n',
  "host:\n  - port: []\n",
  "host:\n  - port: 22\n    proto: [tcp, icmp]\n",
  "host:\n  - port: 22\nicmp: [allow]\n",
  "host:\n  - port: 22\ndefault: true\n",
  "[1, 2]\n",
  "host:\n  - port: 22\n'': 1\n",
  "trusted: []\n",
  "containers: []\n",
  "",
  "# nothing but a comment\n",
];

/** Valid policies no test spells out: what the loader takes, however YAML types it, the schema takes. */
const MORE_VALID: string[] = [
  "host:\n  - port: 22\ncontainers:\n  - container: 0x1F\n    port: 80\n  - container: true\n    port: 81\n  - container: /web.1\n    port: 82\n",
  "groups:\n  1e3: [192.0.2.1]\n  true: []\n  g: { file: 123 }\nhost:\n  - port: 22\n    from: [1e3, true, g]\n",
  "interfaces: [0, true, eth0, \"wg+\", abcdefghijklmn+, veth_x-1@, .x]\nhost:\n  - port: 22\n",
  "interfaces: eth0\ntrusted: 192.0.2.0/24\nhost:\n  - port: 8000-8010\n    proto: udp\n    from: any\n",
  "host:\n  - port: [1, 65535, \"1-65535\", \"80\"]\nswarm:\n  peers: 192.0.2.1\n",
  "host: []\ncontainers:\n  - port: 80\nroutes: []\ngroups: {}\nlog: {}\n",
];

/** What the loader refuses and the schema takes, and why the schema cannot tell. */
const LEFT_TO_THE_LOADER: { text: string; loader: RegExp; why: string }[] = [
  { text: "host:\n  - port: 0x50\n", loader: /"0x50" is not a port/, why: "0x50 is the number 80 in YAML's data" },
  { text: "host:\n  - port: 010\n", loader: /port 010 has a leading zero/, why: "010 is the number 10 in YAML 1.2's data" },
  { text: "host:\n  - port: 90-80\n", loader: /port range 90-80 is reversed/, why: "a pattern cannot compare two numbers" },
  { text: "host:\n  - port: 22\n    from: [ofice]\n", loader: /unknown group "ofice"/, why: "a reference to a group declared elsewhere" },
  { text: "host:\n  - port: 22\n    from: [10.0.0.300]\n", loader: /octet 300 is larger than 255/, why: "addresses are the loader's (ipaddr.js)" },
  { text: "host:\n  - port: 22\nlog: { drops: true, rate: 60/minute }\n", loader: /rate 60\/minute cannot be kept as written by iptables/, why: "which rates iptables keeps is arithmetic" },
  { text: "host:\n  - port: [80.0, 1e2]\n", loader: /"80\.0" is not a port/, why: "80.0 and 1e2 are the numbers 80 and 100 in YAML's data" },
];

test("the schema is a valid draft-07 JSON Schema that ajv compiles in strict mode", () => {
  assert.equal((schema as { $schema?: string }).$schema, "http://json-schema.org/draft-07/schema#");
  assert.equal(typeof compileSchema(), "function");
});

test("every example and every golden policy validates", async () => {
  const files = [
    ...examplePolicies().map((f) => path.resolve("examples", f)),
    ...readdirSync(path.resolve("test/golden")).map((d) => path.resolve("test/golden", d, "policy.yaml")),
  ];
  assert.ok(files.length >= 9, files.join("\n"));
  for (const file of files) {
    assert.ok((await loadPolicy(file)).ok, `${file}: the loader refuses it`);
    const verdict = schemaAccepts(readFileSync(file, "utf8"));
    assert.ok(verdict.ok, `${file}: ${verdict.why}`);
  }
});

test("the unit tests' policies: what the loader takes the schema takes; what it refuses for its shape the schema refuses", async (t) => {
  const texts = [...testPolicyTexts(), ...MORE_SHAPE_CASES.map((text, i) => ({ where: `MORE_SHAPE_CASES[${i}]`, text })), ...MORE_VALID.map((text, i) => ({ where: `MORE_VALID[${i}]`, text }))];
  let valid = 0;
  let shape = 0;
  const seen = new Set<RegExp>();
  for (const { where, text } of texts) {
    const loaded = await load(text);
    const verdict = schemaAccepts(text);
    if (loaded.ok) {
      valid++;
      assert.ok(verdict.ok, `${where}: the loader takes it, the schema refuses it: ${verdict.why}\n${text}`);
      continue;
    }
    const errors = shapeErrors(loaded);
    if (errors.length === 0) continue;
    shape++;
    for (const e of loaded.errors) for (const re of SHAPE_ERRORS) if (re.test(e.message)) seen.add(re);
    assert.ok(!verdict.ok, `${where}: the loader refuses its shape (${errors.join("; ")}), the schema takes it\n${text}`);
    assert.deepEqual(unmatchedShapeErrors(text, loaded, verdict), [], `${where}: shape errors the schema does not see where they are\n${text}\nschema errors at: ${verdict.at.join(", ")}`);
  }
  t.diagnostic(`${texts.length} policies: ${valid} valid, ${shape} refused for their shape`);
  // The harvest found the tests' policies (not nothing), and every kind of shape error was met.
  assert.ok(valid >= 40 && shape >= 30, `${valid} valid, ${shape} refused for their shape`);
  assert.deepEqual(SHAPE_ERRORS.filter((re) => !seen.has(re)).map(String), []);
});

test("every MORE_SHAPE_CASES policy is refused by the loader for its shape (the list tests what it says)", async () => {
  for (const text of MORE_SHAPE_CASES) assert.notDeepEqual(shapeErrors(await load(text)), [], text);
  for (const text of MORE_VALID) {
    const r = await load(text);
    assert.ok(r.ok, `${text}\n${r.ok ? "" : r.errors.map(formatPolicyError).join("\n")}`);
  }
});

test("what the schema leaves to the loader: the loader refuses it, the schema takes it", async () => {
  for (const { text, loader, why } of LEFT_TO_THE_LOADER) {
    const r = await load(text);
    assert.ok(!r.ok && r.errors.some((e) => loader.test(e.message)), `${text}: ${r.ok ? "loaded" : r.errors.map(formatPolicyError).join("; ")}`);
    assert.ok(schemaAccepts(text).ok, `${why}: ${text}`);
  }
});

/** A $ref's target, or the schema itself. */
function deref(s: JsonSchema): JsonSchema {
  if (s.$ref === undefined) return s;
  return schema.definitions![s.$ref.replace("#/definitions/", "")]!;
}

/** The keys the loader knows at a place: its "unknown key" message lists them. */
async function loaderKeys(text: string): Promise<string[]> {
  const r = await load(text);
  const m = r.ok ? null : r.errors.map((e) => /expected one of: (.*)$/.exec(e.message)).find((x) => x !== null);
  assert.ok(m, `no unknown-key error for\n${text}`);
  return m[1]!.split(", ").sort();
}

test("every mapping has the loader's keys, no more and no fewer", async () => {
  const groupFile = schema.properties!.groups!.additionalProperties as JsonSchema;
  const places: [string, JsonSchema, string][] = [
    ["top level", schema, "zzz: 1\nhost:\n  - port: 22\n"],
    ["host entry", deref(schema.properties!.host!.items!), "host:\n  - port: 22\n    zzz: 1\n"],
    ["container entry", deref(schema.properties!.containers!.items!), "host:\n  - port: 22\ncontainers:\n  - port: 80\n    zzz: 1\n"],
    ["route", deref(schema.properties!.routes!.items!), "host:\n  - port: 22\nroutes:\n  - { in: eth0, out: eth1, zzz: 1 }\n"],
    ["swarm", schema.properties!.swarm!, "host:\n  - port: 22\nswarm: { peers: [192.0.2.1], zzz: 1 }\n"],
    ["log", schema.properties!.log!, "host:\n  - port: 22\nlog: { zzz: 1 }\n"],
    ["group file", groupFile.anyOf!.find((s) => s.properties)!, "groups:\n  a: { file: a.list, zzz: 1 }\nhost:\n  - port: 22\n"],
  ];
  for (const [where, s, text] of places) {
    assert.equal(s.additionalProperties, false, `${where}: unknown keys must be refused`);
    assert.deepEqual(Object.keys(s.properties!).sort(), await loaderKeys(text), where);
  }
});

test("every choice is the loader's: icmp, default and proto", async () => {
  const choices = async (text: string, re: RegExp) => {
    const r = await load(text);
    const m = r.ok ? null : r.errors.map((e) => re.exec(e.message)).find((x) => x !== null);
    assert.ok(m, text);
    return m[1]!.split(" or ").sort();
  };
  assert.deepEqual([...schema.properties!.icmp!.enum!].sort(), await choices("host:\n  - port: 22\nicmp: zzz\n", /^icmp must be (.*), not /));
  assert.deepEqual([...schema.properties!.default!.enum!].sort(), await choices("host:\n  - port: 22\ndefault: zzz\n", /^default must be (.*), not /));
  assert.deepEqual([...schema.definitions!.proto!.enum!].sort(), await choices("host:\n  - port: 22\n    proto: zzz\n", /: write (.*) \(ICMP/));
  // And what each choice means is taken by the loader.
  for (const icmp of schema.properties!.icmp!.enum!) assert.ok((await load(`host:\n  - port: 22\nicmp: ${icmp}\n`)).ok);
  for (const d of schema.properties!.default!.enum!) assert.ok((await load(`host:\n  - port: 22\ndefault: ${d}\n`)).ok);
});

test("the policies in the unit tests are found: a file's literal policies, not its templates with ${}", () => {
  const found = testPolicyTexts();
  assert.ok(found.some((t) => t.where.startsWith("test/unit/policy.test.ts:")));
  assert.ok(found.some((t) => t.where.startsWith("test/unit/policy-input.test.ts:")));
  assert.ok(found.some((t) => t.where.startsWith("test/unit/interfaces.test.ts:")));
});

// ---- generated policies: the loader and the schema agree on every shape ----

/**
 * Generated policy data for one place. `wrong`: how often a leaf is wrong in its shape (0: never).
 * Leaves are valid or wrong in shape only, never in value (no bad address, no reversed range, no
 * group that is not declared), so the two verdicts must agree.
 */
function policyData(withGroup: boolean, wrong: number): fc.Arbitrary<Record<string, unknown>> {
  const pick = (valid: unknown[], bad: unknown[]): fc.Arbitrary<unknown> =>
    wrong === 0 ? fc.constantFrom(...valid) : fc.oneof({ arbitrary: fc.constantFrom(...valid), weight: 20 }, { arbitrary: fc.constantFrom(...bad), weight: wrong });
  const source = fc.constantFrom("any", "192.0.2.1", "2001:db8::/32", "198.18.0.0/15", ...(withGroup ? ["office"] : []));
  const sources = pick([0, 1], [2]).chain((kind) =>
    kind === 0 ? source : kind === 1 ? fc.array(source, { minLength: 1, maxLength: 3 }) : fc.constantFrom([], {}, null, [["192.0.2.1"]], [{ a: 1 }]),
  );
  const port = pick([22, 80, 1, 65535, "8000-8010", "443", [22, "8000-8010"]], [0, 65536, -5, 1.5, "80 ", "abc", "1-", true, null, {}, [], [[22]]]);
  const proto = pick(["tcp", "udp", ["tcp", "udp"], ["udp"]], ["icmp", [], 6, null, {}, ["tcp", "esp"]]);
  const iface = pick(["eth0", "wg+", "ens3.100", 0], ["lo", "", "eth0:1", "-j", "a".repeat(16), {}, null, -1]);
  const entryKeys = (withContainer: boolean) => ({
    port,
    proto,
    from: sources,
    ...(withContainer ? { container: pick(["web", "db-1", "/web", 5, true], ["-x", "a b", "c".repeat(129), [], {}, null]) } : {}),
    zzz: fc.constant(1),
  });
  const entry = (withContainer: boolean) =>
    pick([0], [1]).chain((kind): fc.Arbitrary<unknown> => (kind === 0 ? fc.record(entryKeys(withContainer), { requiredKeys: wrong === 0 ? ["port"] : [] }) : fc.constantFrom(22, "web", [], null)));
  const list = (item: fc.Arbitrary<unknown>) => pick([0], [1]).chain((kind) => (kind === 0 ? fc.array(item, { maxLength: 3 }) : fc.constantFrom({ port: 22 }, 22, "x", {})));
  const route = pick([0], [1]).chain((kind): fc.Arbitrary<unknown> => (kind === 0 ? fc.record({ in: iface, out: iface, zzz: fc.constant(1) }, { requiredKeys: wrong === 0 ? ["in", "out"] : [] }) : fc.constantFrom("eth0", null)));
  return fc
    .record(
      {
        interfaces: pick([0], [1]).chain((kind) => (kind === 0 ? fc.oneof(iface, fc.array(iface, { minLength: 1, maxLength: 3 })) : fc.constantFrom([], {}))),
        groups: withGroup
          ? pick([{ office: ["203.0.113.0/24", "2001:db8:1::/48"] }, { office: { file: "office.list" } }, { office: [] }], [[], { office: "192.0.2.1" }, { office: { path: "x" } }, { office: { file: "" } }, { office: null }, { "bad name": [] }, { any: [] }])
          : fc.constant(undefined),
        trusted: sources,
        host: list(entry(false)),
        containers: list(entry(true)),
        routes: list(route),
        swarm: pick([{ peers: ["192.0.2.1"] }, { peers: "192.0.2.0/24" }], [{}, { peers: [] }, { peers: null }, [], { peers: ["192.0.2.1"], zzz: 1 }]),
        icmp: pick(["allow", "drop"], ["yes", true, [], null]),
        default: pick(["drop", "reject"], ["accept", 1, ["drop"]]),
        log: pick([{}, { drops: true }, { rate: "10/minute" }, { drops: false, rate: "5/second" }], [{ drops: "yes" }, { rate: "10/fortnight" }, { rate: 10 }, { zzz: 1 }, [], "on"]),
        zzz: fc.constant(1),
      },
      { requiredKeys: [] },
    )
    .map((p) => {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(p)) if (v !== undefined) out[k] = v;
      // A group is declared whenever sources may name it.
      if (withGroup && out.groups === undefined) out.groups = { office: ["203.0.113.0/24"] };
      return out;
    });
}

/** Unknown keys (zzz) only where `wrong` allows them. */
function withoutUnknownKeys(data: unknown): unknown {
  return JSON.parse(JSON.stringify(data, (k, v: unknown) => (k === "zzz" ? undefined : v)));
}

test("property: on generated policies, valid or wrong in shape, the loader and the schema agree, error by error", async (t) => {
  let valid = 0;
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.tuple(fc.boolean(), fc.constantFrom(0, 0, 1, 2)).chain(([withGroup, wrong]) => policyData(withGroup, wrong).map((d) => (wrong === 0 ? withoutUnknownKeys(d) : d))),
      async (data) => {
      const text = stringify(data);
      const loaded = await load(text);
      const verdict = schemaAccepts(text);
      runs++;
      if (loaded.ok) valid++;
      const why = loaded.ok ? "" : loaded.errors.map(formatPolicyError).join("\n");
      assert.equal(verdict.ok, loaded.ok, `loader ${loaded.ok ? "takes" : "refuses"} it, schema ${verdict.ok ? "takes" : "refuses"} it\n${text}\n${why}\n${verdict.why}`);
      assert.deepEqual(unmatchedShapeErrors(text, loaded, verdict), [], `${text}\nschema errors at: ${verdict.at.join(", ")}`);
      },
    ),
    { numRuns: 800 },
  );
  t.diagnostic(`${runs} policies, ${valid} of them valid`);
  // Both verdicts were met often: the property compared, not only refused.
  assert.ok(valid > runs / 10 && valid < runs - runs / 10, `${valid} of ${runs} valid`);
});
