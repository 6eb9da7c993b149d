/**
 * Hostile and careless input to the policy loader (issue 13): what check accepts apply must be able
 * to apply, values are judged as written, messages cannot be forged by the values they quote, and
 * no file, however big, strange or self-multiplying, costs more than a bounded amount.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { loadPolicy, loadPolicyText, type ReadText } from "../../src/policy/load.js";
import { formatPolicyError } from "../../src/policy/errors.js";
import { parseGroupFile } from "../../src/policy/group-file.js";
import { quote } from "../../src/policy/quote.js";
import { readRegularFile } from "../../src/policy/read-file.js";
import { compilePolicy, PolicyInvalid, type CompiledBefore } from "../../src/pipeline.js";
import { noCommands, reachableNoFacts as facts } from "./fixtures.js";

const FILE = "/etc/dockwall/p.yaml";

/** Group files for the tests, by path; anything else is ENOENT. */
function files(map: Record<string, string>): ReadText {
  return async (p: string) => {
    if (p in map) return map[p]!;
    throw Object.assign(new Error(`ENOENT: ${p}`), { code: "ENOENT" });
  };
}

async function errorsOf(text: string, extra: Record<string, string> = {}): Promise<string[]> {
  const r = await loadPolicyText(text, FILE, files(extra));
  assert.equal(r.ok, false, "expected the policy to be refused");
  return r.ok ? [] : r.errors.map(formatPolicyError);
}

async function load(text: string, extra: Record<string, string> = {}) {
  const r = await loadPolicyText(text, FILE, files(extra));
  if (!r.ok) assert.fail(r.errors.map(formatPolicyError).join("\n"));
  return r;
}

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-policy-input-"));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---- 1. a /0 is never taken: check refuses what apply could never verify ----

test("a /0 source (0.0.0.0/0, ::/0, 1.2.3.4/0) is refused in from, trusted and swarm peers, saying what to write instead", async () => {
  assert.deepEqual(
    await errorsOf(`trusted: [0.0.0.0/0]
host:
  - port: 22
    from: [0.0.0.0/0, "::/0", 1.2.3.4/0, "2001:db8::1/0"]
swarm:
  peers: [0.0.0.0/0]
`),
    [
      `${FILE}:1:11: "0.0.0.0/0" is every IPv4 address (prefix length 0): to trust every source write any (it opens every port to everyone)`,
      `${FILE}:4:12: "0.0.0.0/0" is every IPv4 address (prefix length 0): leave from out, or write any (every source)`,
      `${FILE}:4:23: "::/0" is every IPv6 address (prefix length 0): leave from out, or write any (every source)`,
      `${FILE}:4:31: "1.2.3.4/0" is every IPv4 address (prefix length 0): leave from out, or write any (every source)`,
      `${FILE}:4:42: "2001:db8::1/0" is every IPv6 address (prefix length 0): leave from out, or write any (every source)`,
      `${FILE}:6:11: "0.0.0.0/0" is every IPv4 address (prefix length 0): write any (every source)`,
    ],
  );
});

test("a /0 can never be a group member, inline or in a group file (however it is spelled)", async () => {
  const member = "which can never be a group member: to let every source in, write any where the group is used";
  assert.deepEqual(
    await errorsOf("groups:\n  a: [0.0.0.0/0]\n  b: { file: b.list }\nhost:\n  - port: 22\n    from: [a, b]\n", {
      "/etc/dockwall/b.list": "192.0.2.1\n0.0.0.0/0\n  ::/0\n10.1.2.3/0\n0.0.0.0/00\n",
    }),
    [
      `${FILE}:2:7: "0.0.0.0/0" is every IPv4 address (prefix length 0), ${member}`,
      `/etc/dockwall/b.list:2:1: "0.0.0.0/0" is every IPv4 address (prefix length 0), ${member}`,
      `/etc/dockwall/b.list:3:3: "::/0" is every IPv6 address (prefix length 0), ${member}`,
      `/etc/dockwall/b.list:4:1: "10.1.2.3/0" is every IPv4 address (prefix length 0), ${member}`,
      `/etc/dockwall/b.list:5:1: "0.0.0.0/00" is every IPv4 address (prefix length 0), ${member}`,
    ],
  );
});


test("apply agrees with check: a group file that gains 0.0.0.0/0 after an apply is refused on the recompile path too", async () => {
  await withDir(async (dir) => {
    const policy = path.join(dir, "dockwall.yaml");
    await writeFile(path.join(dir, "a.list"), "198.18.0.1\n");
    await writeFile(policy, "groups:\n  a: { file: a.list }\nhost:\n  - port: 22\n    from: [a]\n");
    const first = await compilePolicy(policy, noCommands, undefined, Promise.resolve(facts));
    // Only the group file changes: apply then parses just that file again (pipeline withGroupFiles).
    await writeFile(path.join(dir, "a.list"), "198.18.0.1\n0.0.0.0/0\n");
    const before: CompiledBefore = { ...first.origin, desired: first.desired };
    await assert.rejects(compilePolicy(policy, noCommands, before, Promise.resolve(facts)), (e: unknown) => {
      assert.ok(e instanceof PolicyInvalid);
      assert.match(e.errors.join("\n"), /a\.list:2:1: "0\.0\.0\.0\/0" is every IPv4 address \(prefix length 0\), which can never be a group member/);
      return true;
    });
  });
});

// ---- 2. empty lists ----

test("empty lists: proto: [] and an empty source list are errors; empty entry lists say nothing, unless the policy then opens nothing", async () => {
  assert.deepEqual(
    await errorsOf(`trusted: []
host:
  - port: 22
    proto: []
containers:
  - port: 80
    from: []
swarm:
  peers: []
`),
    [
      `${FILE}:1:10: trusted is empty: list trusted sources, or leave trusted out`,
      `${FILE}:4:12: proto is empty, so the entry would open nothing: write tcp, udp or [tcp, udp], or leave proto out for tcp`,
      `${FILE}:7:11: from is empty: nobody could connect; list sources, or leave it out for anyone`,
      `${FILE}:9:10: swarm peers is empty: list the other swarm nodes, or leave swarm out`,
    ],
  );
  assert.deepEqual(await errorsOf("host: []\ncontainers: []\n"), [
    `${FILE}:1:1: the policy opens nothing: write at least one of host, containers or trusted`,
  ]);
  // `containers: []`, `routes: []` and `groups: {}` beside real entries are taken as written.
  const { policy } = await load("groups: {}\nhost:\n  - port: 22\ncontainers: []\nroutes: []\n");
  assert.deepEqual([policy.groups, policy.containers, policy.routes], [[], [], []]);
});

test("an empty group (inline or a group file with no addresses) is a warning: it matches no source", async () => {
  const { warnings } = await load("groups:\n  a: []\n  b: { file: b.list }\nhost:\n  - port: 22\n    from: [a, b, 192.0.2.1]\n", {
    "/etc/dockwall/b.list": "# emptied by the sync job\n\n",
  });
  assert.deepEqual(warnings.map(formatPolicyError), [
    `${FILE}:2:6: group "a" has no members: it matches no source`,
    "/etc/dockwall/b.list:1:1: the file holds no addresses: its group matches no source",
  ]);
});

// ---- 3. ports as written ----

test("ports are decimal 1-65535 as written: 0x50, 1e2, 80.0, 010, +80, ' 80', 0o17 and the like are refused where they stand", async () => {
  assert.deepEqual(
    await errorsOf(`host:
  - port: [0x50, 1e2, 80.0, 010, +80, " 80", 0o17, "80 ", .inf, 0, 65536]
  - port: ["080-90", "0x50-0x60", "80 - 90", 90-80, "1-", "-1", 22]
  - port: true
`),
    [
      `${FILE}:2:12: "0x50" is not a port: write a decimal number 1-65535 or a range a-b`,
      `${FILE}:2:18: "1e2" is not a port: write a decimal number 1-65535 or a range a-b`,
      `${FILE}:2:23: "80.0" is not a port: write a decimal number 1-65535 or a range a-b`,
      `${FILE}:2:29: port 010 has a leading zero (octal or decimal is ambiguous): write 10`,
      `${FILE}:2:34: "+80" is not a port: write a decimal number 1-65535 or a range a-b`,
      `${FILE}:2:39: " 80" is not a port: write a decimal number 1-65535 or a range a-b`,
      `${FILE}:2:46: "0o17" is not a port: write a decimal number 1-65535 or a range a-b`,
      `${FILE}:2:52: "80 " is not a port: write a decimal number 1-65535 or a range a-b`,
      `${FILE}:2:59: ".inf" is not a port: write a decimal number 1-65535 or a range a-b`,
      `${FILE}:2:65: port 0 is outside 1-65535`,
      `${FILE}:2:68: port 65536 is outside 1-65535`,
      `${FILE}:3:12: port 080 has a leading zero (octal or decimal is ambiguous): write 80`,
      `${FILE}:3:22: "0x50-0x60" is not a port: write a decimal number 1-65535 or a range a-b`,
      `${FILE}:3:35: "80 - 90" is not a port: write a decimal number 1-65535 or a range a-b`,
      `${FILE}:3:46: port range 90-80 is reversed: write 80-90`,
      `${FILE}:3:53: "1-" is not a port: write a decimal number 1-65535 or a range a-b`,
      `${FILE}:3:59: "-1" is not a port: write a decimal number 1-65535 or a range a-b`,
      `${FILE}:4:11: "true" is not a port: write a decimal number 1-65535 or a range a-b`,
    ],
  );
});

test("under %YAML 1.1 (010 is octal 8, 1:20 is sexagesimal 80) ports are still judged as written", async () => {
  assert.deepEqual(await errorsOf("%YAML 1.1\n---\nhost:\n  - port: [010, 1:20, 22]\n"), [
    `${FILE}:4:12: port 010 has a leading zero (octal or decimal is ambiguous): write 10`,
    `${FILE}:4:17: "1:20" is not a port: write a decimal number 1-65535 or a range a-b`,
  ]);
  const { policy } = await load("host:\n  - port: [1, 65535, 8000-8010, \"443\"]\n");
  assert.deepEqual(policy.host[0]!.ports, [{ from: 1, to: 1 }, { from: 443, to: 443 }, { from: 8000, to: 8010 }, { from: 65535, to: 65535 }]);
});

test("names and addresses are their text as written, not what YAML made of them (0x1F is not 31, 1e3 is not 1000)", async () => {
  const { policy } = await load("groups:\n  1e3: [192.0.2.1]\nhost:\n  - port: 22\ncontainers:\n  - container: 0x1F\n    port: 80\n    from: [1e3]\n");
  assert.equal(policy.containers[0]!.container, "0x1F");
  assert.deepEqual(policy.groups.map((g) => g.name), ["1e3"]);
  assert.deepEqual(policy.containers[0]!.from, [{ kind: "group", name: "1e3" }]);
  assert.deepEqual(await errorsOf("host:\n  - port: 22\n    from: [123456789012345678901234567890]\n"), [
    `${FILE}:3:12: "123456789012345678901234567890" is not an IPv4 or IPv6 address or CIDR`,
  ]);
});

// ---- 4. quoted values cannot forge messages ----

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

test("a value with a newline, an escape or a bidi override is shown escaped, on its own one line", async () => {
  const errors = await errorsOf(
    `host:
  - port: 22
    from: ["1.2.3.4\\n${FILE}:9:9: fake error", "\\e[2J", "x\\u202Eevil"]
    proto: ["tcp\\r\\nok"]
groups:
  "a\\nb": [192.0.2.1]
  c: { file: c.list }
icmp: "allow\\u0085"
`,
    { "/etc/dockwall/c.list": "192.0.2.1\u0007\n" },
  );
  assert.deepEqual(errors, [
    `${FILE}:3:12: "1.2.3.4\\n${FILE}:9:9: fake error" is not an IPv4 or IPv6 address or CIDR`,
    `${FILE}:3:61: "\\u001b[2J" is not an IPv4 or IPv6 address or CIDR`,
    `${FILE}:3:70: "x\\u202eevil" is not an IPv4 or IPv6 address or CIDR`,
    `${FILE}:4:13: unknown protocol "tcp\\r\\nok": write tcp or udp (ICMP is the icmp key)`,
    `${FILE}:6:3: group name "a\\nb" must be 1-24 letters, digits, _ or -`,
    `${FILE}:8:7: icmp must be allow or drop, not "allow\\u0085"`,
    `/etc/dockwall/c.list:1:1: "192.0.2.1\\u0007" is not an IPv4 or IPv6 address or CIDR`,
  ]);
});

test("a long value is cut to 60 characters with an ellipsis", async () => {
  const long = "x".repeat(5000);
  const [error] = await errorsOf(`host:\n  - port: 22\n    from: ["${long}"]\n`);
  assert.equal(error, `${FILE}:3:12: "${"x".repeat(60)}"… is not an IPv4 or IPv6 address or CIDR`);
  assert.equal(quote("é".repeat(60)), `"${"é".repeat(60)}"`);
  assert.equal(quote("😀".repeat(61)), `"${"😀".repeat(60)}"…`);
});

test("a group file named with a control character is refused; a file name is never printed raw", async () => {
  assert.deepEqual(await errorsOf('groups:\n  a: { file: "a\\nb.list" }\nhost:\n  - port: 22\n    from: [a]\n'), [
    `${FILE}:2:14: the file name "a\\nb.list" holds a control character`,
  ]);
  assert.equal(formatPolicyError({ file: "/x\n/etc/y", line: 1, col: 1, message: "m" }), "/x\\n/etc/y:1:1: m");
});

test("property: whatever text a source or a group-file line holds, every message is one line without control characters", async () => {
  await fc.assert(
    fc.asyncProperty(fc.string({ unit: "binary", maxLength: 80 }), async (text) => {
      const r = await loadPolicyText(
        `groups:\n  g: { file: g.list }\nhost:\n  - port: 22\n    from: [g, ${JSON.stringify(text)}]\n`,
        FILE,
        files({ "/etc/dockwall/g.list": `${text}\n` }),
      );
      for (const e of [...(r.ok ? [] : r.errors), ...r.warnings]) {
        const line = formatPolicyError(e);
        assert.doesNotMatch(line, CONTROL, line);
      }
    }),
    { numRuns: 300 },
  );
});

// ---- 5. file types, sizes, and self-multiplying YAML ----

test("a FIFO, a character device or a directory as the policy is refused at once, naming what it is", { timeout: 20_000 }, async () => {
  await withDir(async (dir) => {
    const fifo = path.join(dir, "policy.fifo");
    execFileSync("mkfifo", [fifo]);
    const of = async (file: string) => {
      const r = await loadPolicy(file);
      assert.equal(r.ok, false);
      return r.ok ? [] : r.errors.map(formatPolicyError);
    };
    assert.deepEqual(await of(fifo), [`${fifo}:1:1: cannot read the policy file: it is a named pipe (FIFO); the policy must be a regular file`]);
    assert.deepEqual(await of("/dev/zero"), ["/dev/zero:1:1: cannot read the policy file: it is a character device; the policy must be a regular file"]);
    assert.deepEqual(await of(dir), [`${dir}:1:1: cannot read the policy file: it is a directory; the policy must be a regular file`]);
  });
});

test("group files that are /dev/zero, /dev/urandom, a FIFO or a directory are refused at the line naming them", { timeout: 20_000 }, async () => {
  await withDir(async (dir) => {
    execFileSync("mkfifo", [path.join(dir, "g.fifo")]);
    const policy = path.join(dir, "p.yaml");
    await writeFile(
      policy,
      "groups:\n  z: { file: /dev/zero }\n  u: { file: /dev/urandom }\n  f: { file: g.fifo }\n  d: { file: . }\nhost:\n  - port: 22\n    from: [z, u, f, d]\n",
    );
    const r = await loadPolicy(policy);
    assert.equal(r.ok, false);
    assert.deepEqual(r.ok ? [] : r.errors.map(formatPolicyError), [
      `${policy}:2:14: cannot read group file /dev/zero: it is a character device; a group file must be a regular file`,
      `${policy}:3:14: cannot read group file /dev/urandom: it is a character device; a group file must be a regular file`,
      `${policy}:4:14: cannot read group file ${dir}/g.fifo: it is a named pipe (FIFO); a group file must be a regular file`,
      `${policy}:5:14: cannot read group file ${dir}: it is a directory; a group file must be a regular file`,
    ]);
  });
});

test("a FIFO put in a group file's place after an apply does not hang the next apply: it is refused", { timeout: 20_000 }, async () => {
  await withDir(async (dir) => {
    const policy = path.join(dir, "dockwall.yaml");
    await writeFile(path.join(dir, "a.list"), "198.18.0.1\n");
    await writeFile(policy, "groups:\n  a: { file: a.list }\nhost:\n  - port: 22\n    from: [a]\n");
    const first = await compilePolicy(policy, noCommands, undefined, Promise.resolve(facts));
    await rm(path.join(dir, "a.list"));
    execFileSync("mkfifo", [path.join(dir, "a.list")]);
    const before: CompiledBefore = { ...first.origin, desired: first.desired };
    await assert.rejects(compilePolicy(policy, noCommands, before, Promise.resolve(facts)), (e: unknown) => {
      assert.ok(e instanceof PolicyInvalid);
      assert.deepEqual(e.errors, [`${policy}:2:14: cannot read group file ${dir}/a.list: it is a named pipe (FIFO); a group file must be a regular file`]);
      return true;
    });
  });
});

test("size limits: a policy over 1 MiB is refused without being read; group files share 64 MiB between them", async () => {
  await withDir(async (dir) => {
    const policy = path.join(dir, "p.yaml");
    await writeFile(policy, "host:\n  - port: 22\n");
    await truncate(policy, 1024 * 1024 + 1);
    const big = await loadPolicy(policy);
    assert.deepEqual(big.ok ? [] : big.errors.map(formatPolicyError), [
      `${policy}:1:1: cannot read the policy file: it is 1,048,577 bytes; the policy may be at most 1 MiB`,
    ]);
    // Two sparse group files of 40 MiB each: the first is read (its NULs are one bad line), the second no longer fits.
    await writeFile(policy, "groups:\n  a: { file: a.list }\n  b: { file: b.list }\nhost:\n  - port: 22\n    from: [a, b]\n");
    for (const f of ["a.list", "b.list"]) {
      await writeFile(path.join(dir, f), "");
      await truncate(path.join(dir, f), 40 * 1024 * 1024);
    }
    const r = await loadPolicy(policy);
    assert.equal(r.ok, false);
    const errors = r.ok ? [] : r.errors.map(formatPolicyError);
    assert.equal(errors[0], `${policy}:3:14: cannot read group file ${dir}/b.list: it is 41,943,040 bytes; group files may hold 64 MiB, all of them together, and those before this one hold 40 MiB`);
    assert.match(errors[1]!, /a\.list:1:1: "\\u0000\\u0000.*"… is not an IPv4 or IPv6 address or CIDR$/);
  });
  // A reader that ignores the limit (a test's, a caller's) is held to it all the same.
  const r = await loadPolicyText("groups:\n  a: { file: a.list }\nhost:\n  - port: 22\n    from: [a]\n", FILE, files({ "/etc/dockwall/a.list": "1".repeat(64 * 1024 * 1024 + 1) }));
  assert.deepEqual(r.ok ? [] : r.errors.map(formatPolicyError), [
    `${FILE}:2:14: cannot read group file /etc/dockwall/a.list: it is 67,108,865 bytes; group files may hold 64 MiB, all of them together`,
  ]);
});

test("the read stops at the limit even when the file turns out longer than fstat said (as /proc files do)", async () => {
  await assert.rejects(readRegularFile("/proc/self/maps", { maxBytes: 100, what: "a group file" }), {
    message: "it grew to more than 100 bytes while it was read; a group file may be at most 100 bytes",
  });
  const maps = await readRegularFile("/proc/self/status", { maxBytes: 1024 * 1024, what: "a group file" });
  assert.match(maps.toString(), /^Name:/);
});

test("a file named by several groups is read once and parsed once", async () => {
  const reads: string[] = [];
  const reader: ReadText = async (p) => {
    reads.push(p);
    return "192.0.2.1\n";
  };
  const r = await loadPolicyText("groups:\n  a: { file: a.list }\n  b: { file: ./a.list }\nhost:\n  - port: 22\n    from: [a, b]\n", FILE, reader);
  assert.ok(r.ok);
  assert.deepEqual(reads, ["/etc/dockwall/a.list"]);
  assert.deepEqual(r.policy.groups.map((g) => [g.name, g.ipv4]), [["a", ["192.0.2.1"]], ["b", ["192.0.2.1"]]]);
});

test("billion laughs: aliases that repeat a big list stop at 100,000 items, with the position where the count ran out", async () => {
  const addresses = Array.from({ length: 1000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`).join(", ");
  const entries = Array.from({ length: 200 }, () => "*e").join(", ");
  const errors = await errorsOf(`groups:\n  big: &big [${addresses}]\nhost:\n  - &e { port: 22, from: *big }\ncontainers: [${entries}]\n`);
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, /^\/etc\/dockwall\/p\.yaml:4:26: the policy holds more than 100,000 keys, list items and addresses \(an alias counts its list again each time\): checking stopped here/);
});

test("an entry that asks for more than 100,000 rules (sources × ports × protocols) is refused at the entry", async () => {
  const ports = Array.from({ length: 300 }, (_, i) => 1000 + 2 * i).join(", ");
  const sources = Array.from({ length: 200 }, (_, i) => `10.0.${i >> 8}.${i & 255}`).join(", ");
  assert.deepEqual(await errorsOf(`host:\n  - port: 22\n  - port: [${ports}]\n    proto: [tcp, udp]\n    from: [${sources}]\n`), [
    `${FILE}:3:5: this entry opens 200 sources × 300 ports × 2 protocols = 120,000 rules, which takes the policy over the 100,000 it may compile into: put the sources in a group (one rule for all of them) or the ports in ranges`,
  ]);
});

test("at most 100 errors are shown, then how many more there are; group files show 20 warnings", async () => {
  const bad = Array.from({ length: 150 }, (_, i) => `bad${i}.x`).join(", ");
  const errors = await errorsOf(`host:\n  - port: 22\n    from: [${bad}]\n`);
  assert.equal(errors.length, 101);
  assert.match(errors[100]!, /^\/etc\/dockwall\/p\.yaml:3:\d+: 50 more errors not shown$/);
  const parsed = parseGroupFile(Array.from({ length: 50 }, (_, i) => `10.0.${i}.1/24`).join("\n"), "g.list");
  assert.equal(parsed.warnings.length, 21);
  assert.equal(parsed.warnings[20]!.message, "30 more lines with host bits set not shown");
});

// ---- 6. other holes ----

test("an alias without its anchor is one clear error, not 'from is empty' or 'expected a list'", async () => {
  assert.deepEqual(await errorsOf("host: *entries\ncontainers:\n  - port: 80\n    from: *office\n"), [
    `${FILE}:1:7: unknown alias "*entries": an alias must come after its anchor (&entries before it)`,
    `${FILE}:4:11: unknown alias "*office": an alias must come after its anchor (&office before it)`,
  ]);
  // An anchor defined again: an alias stands for the last one before it, as YAML says.
  const { policy } = await load("host:\n  - port: &p 22\n  - port: *p\n  - port: &p 80\n  - port: *p\n");
  assert.deepEqual(policy.host.map((h) => h.ports[0]!.from), [22, 22, 80, 80]);
});

test("trusted: any is taken, with a warning that every port is then open to everyone", async () => {
  const { warnings } = await load("trusted: [any]\n");
  assert.deepEqual(warnings.map(formatPolicyError), [`${FILE}:1:11: trusted: any trusts every source: every port is open to everyone`]);
});

test("a container name longer than an iptables comment can carry is refused by check, not by apply", async () => {
  assert.deepEqual(await errorsOf(`host:\n  - port: 22\ncontainers:\n  - container: ${"c".repeat(129)}\n    port: 80\n`), [
    `${FILE}:4:16: "${"c".repeat(60)}"… is not a container name (letters, digits, _ . -; at most 128 characters)`,
  ]);
});

test("deep nesting is one error at its line, not a stack trace", async () => {
  const errors = await errorsOf(`host:\n  - port: 22\n    from: ${"[".repeat(5000)}${"]".repeat(5000)}\n`);
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, /^\/etc\/dockwall\/p\.yaml:3:\d+: YAML: nested too deeply \(a policy needs only a few levels\)$/);
});

test("a BOM and CRLF line ends load as the same policy, with positions still right", async () => {
  const { policy } = await load("\uFEFFhost:\r\n  - port: 22\r\n    from: [192.0.2.1]\r\n");
  assert.deepEqual(policy.host[0]!.ports, [{ from: 22, to: 22 }]);
  assert.deepEqual(await errorsOf("\uFEFFhost:\r\n  - port: 22\r\n    from: [192.0.2.x]\r\n"), [
    `${FILE}:3:12: "192.0.2.x" is not an IPv4 or IPv6 address or CIDR`,
  ]);
  const g = parseGroupFile("\uFEFF192.0.2.1\r\n192.0.2.2\r\n", "g.list");
  assert.deepEqual([g.ipv4, g.errors], [["192.0.2.1", "192.0.2.2"], []]);
});

test("property: binary junk as a policy is refused with positions inside the file, never thrown", async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (bytes) => {
      const text = Buffer.from(bytes).toString("utf8");
      const r = await loadPolicyText(text, FILE, files({}));
      const lines = text.split("\n").length;
      for (const e of [...(r.ok ? [] : r.errors), ...r.warnings]) {
        assert.ok(e.line >= 1 && e.line <= lines && e.col >= 1, formatPolicyError(e));
        assert.doesNotMatch(formatPolicyError(e), CONTROL);
      }
    }),
    { numRuns: 300 },
  );
});

// ---- the real CLI ----

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../dockwall.cjs");

function check(file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, "check", "-c", file], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

test("the CLI on hostile files: exit 1, FILE:LINE:COL lines, no stack trace", { timeout: 120_000 }, async () => {
  await withDir(async (dir) => {
    const fifo = path.join(dir, "fifo.yaml");
    execFileSync("mkfifo", [fifo]);
    const zero = path.join(dir, "zero.yaml");
    await writeFile(zero, "host:\n  - port: 0x50\n    proto: []\n    from: [0.0.0.0/0, \"a\\nb\"]\n");
    const laughs = path.join(dir, "laughs.yaml");
    await writeFile(laughs, `x: &l [${Array.from({ length: 2000 }, () => "192.0.2.1").join(", ")}]\nhost: [${Array.from({ length: 100 }, () => "{ port: 22, from: *l }").join(", ")}]\n`);
    for (const file of [fifo, zero, laughs, "/dev/zero"]) {
      const r = await check(file);
      assert.equal(r.code, 1, `${file}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /\n\s+at /, r.stderr);
      const lines = r.stderr.trimEnd().split("\n");
      assert.match(lines.at(-1)!, /^dockwall: \d+ errors? in the policy; nothing was applied$/);
      for (const l of lines.slice(0, -1)) assert.ok(l.startsWith(`${file}:`), l);
    }
  });
});

test("duplicate keys are found in every mapping by their text (quoted or not), each at the repeated key", async () => {
  assert.deepEqual(await errorsOf('host:\n  - port: 22\n    "port": 23\ngroups:\n  a: [192.0.2.1]\n  b: [192.0.2.2]\n  \'a\': [192.0.2.3]\nx: { y: 1, y: 2 }\n'), [
    `${FILE}:3:5: duplicate key (each key may appear once in a mapping)`,
    `${FILE}:7:3: duplicate key (each key may appear once in a mapping)`,
    `${FILE}:8:12: duplicate key (each key may appear once in a mapping)`,
  ]);
});
