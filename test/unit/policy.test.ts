/**
 * Policy loading: every kind of mistake is reported at the line and column where it was written,
 * all of them in one run; valid files load into the normalised Policy.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadPolicy, loadPolicyText } from "../../src/policy/load.js";
import { formatPolicyError } from "../../src/policy/errors.js";

/** Group files for the tests, by path; anything else is ENOENT. */
function files(map: Record<string, string>) {
  return async (p: string) => {
    if (p in map) return map[p]!;
    throw Object.assign(new Error(`ENOENT: ${p}`), { code: "ENOENT" });
  };
}

async function errorsOf(text: string, extra: Record<string, string> = {}): Promise<string[]> {
  const r = await loadPolicyText(text, "/etc/dockwall/p.yaml", files(extra));
  assert.equal(r.ok, false, "expected the policy to be refused");
  return r.ok ? [] : r.errors.map(formatPolicyError);
}

async function load(text: string, extra: Record<string, string> = {}) {
  const r = await loadPolicyText(text, "/etc/dockwall/p.yaml", files(extra));
  if (!r.ok) assert.fail(r.errors.map(formatPolicyError).join("\n"));
  return r;
}

test("a valid policy loads with defaults and normalised addresses", async () => {
  const { policy, warnings } = await load(`
groups:
  office: [203.0.113.0/24, "2001:DB8:1:0:0::/48", 198.51.100.7]
trusted: [office]
host:
  - port: 22
containers:
  - port: [80, "8000-8010", 443, 81]
    from: [office, "192.0.2.1"]
  - container: django
    port: 8000
    proto: [udp, tcp]
`);
  assert.deepEqual(warnings, []);
  assert.deepEqual(policy.groups, [{ name: "office", ipv4: ["203.0.113.0/24", "198.51.100.7"], ipv6: ["2001:db8:1::/48"] }]);
  assert.deepEqual(policy.containers[0]!.ports, [{ from: 80, to: 81 }, { from: 443, to: 443 }, { from: 8000, to: 8010 }]);
  assert.deepEqual(policy.containers[0]!.from, [{ kind: "group", name: "office" }, { kind: "cidr", cidr: { family: "ipv4", cidr: "192.0.2.1/32" } }]);
  assert.deepEqual(policy.host[0]!.from, [{ kind: "any" }]);
  assert.deepEqual(policy.host[0]!.protos, ["tcp"]);
  assert.equal(policy.containers[1]!.container, "django");
  assert.deepEqual(policy.containers[1]!.protos, ["tcp", "udp"]);
  assert.equal(policy.icmp, "allow");
  assert.equal(policy.default, "drop");
  assert.deepEqual(policy.log, { drops: false, rate: "10/minute" });
  assert.deepEqual(policy.containers[0]!.loc, { file: "/etc/dockwall/p.yaml", line: 8, col: 5 });
});

test("every error is reported at once, each with file, line and column, in reading order", async () => {
  const errors = await errorsOf(`host:
  - port: 70000
  - port: 90-80
    proto: icmp
containers:
  - port: 80
    from: [ofice, 10.0.0.300, "2001:db8::/129"]
    prot: udp
groups:
  office: [10.0.0.0/33]
`);
  assert.deepEqual(errors, [
    "/etc/dockwall/p.yaml:2:11: port 70000 is outside 1-65535",
    "/etc/dockwall/p.yaml:3:11: port range 90-80 is reversed: write 80-90",
    "/etc/dockwall/p.yaml:4:12: unknown protocol \"icmp\": write tcp or udp (ICMP is the icmp key)",
    "/etc/dockwall/p.yaml:7:12: unknown group \"ofice\" (did you mean \"office\"?)",
    "/etc/dockwall/p.yaml:7:19: \"10.0.0.300\": octet 300 is larger than 255",
    "/etc/dockwall/p.yaml:7:31: \"2001:db8::/129\": prefix length must be 0-128",
    "/etc/dockwall/p.yaml:8:5: unknown key \"prot\" (did you mean \"proto\"?); expected one of: port, proto, from, container",
    "/etc/dockwall/p.yaml:10:12: \"10.0.0.0/33\": prefix length must be 0-32",
  ]);
});

test("YAML syntax errors and duplicate keys point at the line", async () => {
  assert.deepEqual(await errorsOf("host:\n  - port: 22\nhost:\n  - port: 23\n"), [
    "/etc/dockwall/p.yaml:3:1: duplicate key (each key may appear once in a mapping)",
  ]);
  const syntax = await errorsOf("host:\n  - port: [22\n");
  assert.equal(syntax.length >= 1, true);
  assert.match(syntax[0]!, /^\/etc\/dockwall\/p\.yaml:\d+:\d+: YAML: /);
});

test("unknown top-level keys suggest the right one", async () => {
  assert.deepEqual(await errorsOf("host:\n  - port: 22\ncontainer:\n  - port: 80\n"), [
    "/etc/dockwall/p.yaml:3:1: unknown key \"container\" (did you mean \"containers\"?); expected one of: interfaces, groups, trusted, host, containers, routes, swarm, icmp, default, log",
  ]);
});

test("group files: errors name the file and its line; an unreadable file points at the line naming it", async () => {
  const errors = await errorsOf(
    `groups:
  admins: { file: admins.list }
  missing: { file: /nowhere/x.list }
host:
  - port: 22
    from: [admins, missing]
`,
    { "/etc/dockwall/admins.list": "# admins\n192.0.2.10\n\n  192.0.2.999  # typo\n2001:db8::zz\n" },
  );
  assert.deepEqual(errors, [
    "/etc/dockwall/p.yaml:3:20: cannot read group file /nowhere/x.list: no such file",
    "/etc/dockwall/admins.list:4:3: \"192.0.2.999\": octet 999 is larger than 255",
    "/etc/dockwall/admins.list:5:1: \"2001:db8::zz\" is not a valid IPv6 address",
  ]);
});

test("group file members are split by family and warned about host bits", async () => {
  const { policy, warnings } = await load("groups:\n  a: { file: a.list }\nhost:\n  - port: 22\n    from: [a]\n", {
    "/etc/dockwall/a.list": "192.0.2.10/24\n2001:db8::1\n",
  });
  assert.deepEqual(policy.groups, [{ name: "a", ipv4: ["192.0.2.0/24"], ipv6: ["2001:db8::1"], file: "/etc/dockwall/a.list" }]);
  assert.deepEqual(warnings.map(formatPolicyError), ["/etc/dockwall/a.list:1:1: \"192.0.2.10/24\" has host bits set; using 192.0.2.0/24"]);
});

test("group members are distinct, first occurrence kept, however they were spelled", async () => {
  const { policy } = await load("groups:\n  a: { file: a.list }\n  b: [192.0.2.1, 192.0.2.1/32, 2001:db8::1, 2001:db8:0::1/128]\nhost:\n  - port: 22\n    from: [a, b]\n", {
    "/etc/dockwall/a.list": "192.0.2.0/24\n198.18.0.1\n192.0.2.7/24\n198.18.0.1/32\n198.18.0.2\n2001:db8::1\n2001:db8:0::1\n",
  });
  assert.deepEqual(policy.groups, [
    { name: "a", ipv4: ["192.0.2.0/24", "198.18.0.1", "198.18.0.2"], ipv6: ["2001:db8::1"], file: "/etc/dockwall/a.list" },
    { name: "b", ipv4: ["192.0.2.1"], ipv6: ["2001:db8::1"] },
  ]);
});

test("values of the wrong kind are refused where they stand", async () => {
  const errors = await errorsOf(`groups:
  any: [192.0.2.1]
  "bad name": [192.0.2.1]
host:
  - port: 22
    from: []
icmp: maybe
default: accept
log: { drops: yes please, rate: 10/fortnight }
interfaces: ["this-name-is-far-too-long"]
routes:
  - { in: eth0 }
`);
  assert.deepEqual(errors, [
    "/etc/dockwall/p.yaml:2:3: \"any\" is reserved (it means every source) and cannot name a group",
    "/etc/dockwall/p.yaml:3:3: group name \"bad name\" must be 1-24 letters, digits, _ or -",
    "/etc/dockwall/p.yaml:6:11: from is empty: nobody could connect; list sources, or leave it out for anyone",
    "/etc/dockwall/p.yaml:7:7: icmp must be allow or drop, not \"maybe\"",
    "/etc/dockwall/p.yaml:8:10: default must be drop or reject, not \"accept\"",
    "/etc/dockwall/p.yaml:9:15: drops must be true or false",
    "/etc/dockwall/p.yaml:9:33: rate \"10/fortnight\" must look like 10/minute (N per second, minute, hour or day)",
    "/etc/dockwall/p.yaml:10:14: \"this-name-is-far-too-long\" is not an interface name: at most 15 characters, a trailing + included (it has 25)",
    "/etc/dockwall/p.yaml:12:5: a route needs out: an interface name",
  ]);
});

test("an entry without a port, and a policy that opens nothing, are errors", async () => {
  assert.deepEqual(await errorsOf("host:\n  - from: [192.0.2.1]\n"), [
    "/etc/dockwall/p.yaml:2:5: this entry needs a port (a number, a range a-b, or a list)",
  ]);
  assert.deepEqual(await errorsOf("icmp: drop\n"), [
    "/etc/dockwall/p.yaml:1:1: the policy opens nothing: write at least one of host, containers or trusted",
  ]);
  assert.deepEqual(await errorsOf(""), ["/etc/dockwall/p.yaml:1:1: the policy is empty: write at least one of host, containers or trusted"]);
});

test("a policy without SSH open gets a lockout warning, not an error", async () => {
  const { warnings } = await load("containers:\n  - port: 80\n");
  assert.equal(warnings.length, 1);
  assert.match(formatPolicyError(warnings[0]!), /^\/etc\/dockwall\/p\.yaml:1:1: no host entry opens port 22\/tcp/);
});

test("IPv4-mapped IPv6 addresses and zone indexes are refused with the fix in the message", async () => {
  assert.deepEqual(await errorsOf('host:\n  - port: 22\n    from: ["::ffff:192.0.2.1", "fe80::1%eth0"]\n'), [
    "/etc/dockwall/p.yaml:3:12: \"::ffff:192.0.2.1\" is an IPv4-mapped IPv6 address, which never reaches ip6tables; write 192.0.2.1",
    "/etc/dockwall/p.yaml:3:32: \"fe80::1%eth0\": zone indexes (%) are not allowed in a firewall address",
  ]);
});

test("an unreadable policy file is one error at its line 1", async () => {
  const r = await loadPolicy("/nonexistent/dockwall.yaml");
  assert.equal(r.ok, false);
  if (!r.ok) assert.deepEqual(r.errors.map(formatPolicyError), ["/nonexistent/dockwall.yaml:1:1: cannot read the policy file: no such file"]);
});
