/**
 * A stateful fake of iptables-save/-restore, ip6tables-save/-restore and ipset, behind the Runner
 * interface, for unit tests of apply logic. It keeps the semantics apply relies on, and refuses what
 * the kernel refuses:
 * - `restore --noflush` flushes only the chains the payload declares; each `*table ... COMMIT` block
 *   is atomic, and blocks before a failing one stay committed (as iptables-restore does);
 * - `--test` changes nothing; without `--noflush` a table is replaced whole;
 * - `-X` of a chain that has rules or is jumped to fails; `-A` to an unknown chain, target or set fails;
 * - `ipset restore` runs line by line and stops at the first failure (not atomic); `-exist` ignores
 *   create-of-existing, add-of-present and del-of-absent; a set a rule uses cannot be destroyed;
 *   `maxelem` is enforced; `swap` needs the same type and family.
 * It is deliberately written from the man pages, not from dockwall's own parser.
 */
import { CommandNotFoundError, type CommandResult, type Runner, type RunOptions } from "../../src/exec/runner.js";
import { AddressSet } from "../../src/trace/address-set.js";
import type { Family } from "../../src/policy/types.js";

interface Chain {
  policy?: string;
  rules: string[];
}
type Table = Map<string, Chain>;
type Tables = Map<string, Table>;

export interface FakeSet {
  type: string;
  family: Family;
  maxelem: number;
  members: Set<string>;
}

export interface Call {
  cmd: string;
  args: string[];
  input?: string;
}

const BUILTIN: Record<string, string[]> = {
  filter: ["INPUT", "FORWARD", "OUTPUT"],
  nat: ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
  mangle: ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
  raw: ["PREROUTING", "OUTPUT"],
};
const TARGETS = new Set(["ACCEPT", "DROP", "RETURN", "REJECT", "LOG", "DNAT", "SNAT", "MASQUERADE", "MARK", "CONNMARK", "NFLOG", "CT", "TCPMSS"]);

class Refused extends Error {}

/** Picks a call by its command, arguments and standard input. */
type CallPredicate = (cmd: string, args: string[], input?: string) => boolean;

export class FakeNetfilter implements Runner {
  readonly calls: Call[] = [];
  private readonly tables: Record<Family, Tables> = { ipv4: new Map(), ipv6: new Map() };
  private readonly sets = new Map<string, FakeSet>();
  private failures: { pred: CallPredicate; result: CommandResult }[] = [];
  private hangs: { pred: CallPredicate; reached: () => void }[] = [];

  /** Loads an `iptables-save` text as the kernel's state (replacing the tables it names). */
  loadSave(family: Family, text: string): void {
    const r = this.restore(family, text, { noflush: false, test: false });
    if (r.code !== 0) throw new Error(`loadSave: ${r.stderr}`);
  }

  /**
   * What `nft -j list ruleset` prints for the tables iptables does not own (Docker 29's
   * docker-bridges): taken as given, for the tracer to read. Without it there is no nft (not found).
   */
  private nftJson: string | undefined;

  loadNftJson(text: string): void {
    this.nftJson = text;
  }

  /** The next call for which pred is true returns this result and changes nothing. */
  failNext(pred: CallPredicate, result: Partial<CommandResult> & { code: number }): void {
    this.failures.push({ pred, result: { stdout: "", stderr: "", ...result } });
  }

  /**
   * The next call for which pred is true never returns and changes nothing: the process that made it
   * was killed there. Resolves when that call is made.
   */
  hangNext(pred: CallPredicate): Promise<void> {
    return new Promise((reached) => this.hangs.push({ pred, reached }));
  }

  rules(family: Family, table: string, chain: string): string[] {
    return [...(this.tables[family].get(table)?.get(chain)?.rules ?? [])];
  }

  set(name: string): FakeSet | undefined {
    return this.sets.get(name);
  }

  /**
   * Everything that matters, in a canonical form for deepEqual: chain and set order do not matter,
   * rule order does; a table holding only empty built-in chains with ACCEPT policy counts as absent.
   */
  snapshot(): unknown {
    const fam = (tables: Tables) => {
      const out: Record<string, Record<string, Chain>> = {};
      for (const name of [...tables.keys()].sort()) {
        const t = tables.get(name)!;
        const trivial = [...t.entries()].every(([c, ch]) => BUILTIN[name]?.includes(c) && ch.rules.length === 0 && ch.policy === "ACCEPT");
        if (trivial) continue;
        out[name] = Object.fromEntries([...t.keys()].sort().map((c) => [c, { policy: t.get(c)!.policy, rules: [...t.get(c)!.rules] }]));
      }
      return out;
    };
    const sets = Object.fromEntries(
      [...this.sets.keys()].sort().map((n) => {
        const s = this.sets.get(n)!;
        return [n, { type: s.type, family: s.family, maxelem: s.maxelem, members: [...s.members].sort() }];
      }),
    );
    return { ipv4: fam(this.tables.ipv4), ipv6: fam(this.tables.ipv6), sets };
  }

  saveText(family: Family): string {
    const out: string[] = [];
    for (const [name, table] of this.tables[family]) {
      out.push(`# Generated by fake-netfilter`, `*${name}`);
      for (const [c, chain] of table) out.push(`:${c} ${chain.policy ?? "-"} [0:0]`);
      for (const [c, chain] of table) for (const r of chain.rules) out.push(`-A ${c} ${r}`);
      out.push("COMMIT", "# Completed");
    }
    return out.join("\n") + "\n";
  }

  async run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
    const call: Call = { cmd, args: [...args], ...(opts.input !== undefined ? { input: opts.input } : {}) };
    this.calls.push(call);
    const h = this.hangs.findIndex((f) => f.pred(cmd, call.args, opts.input));
    if (h >= 0) {
      this.hangs.splice(h, 1)[0]!.reached();
      return new Promise(() => undefined);
    }
    const i = this.failures.findIndex((f) => f.pred(cmd, call.args, opts.input));
    if (i >= 0) return this.failures.splice(i, 1)[0]!.result;
    const m = /^(ip6?)tables-(nft|legacy)-(save|restore)$/.exec(cmd);
    if (m) {
      const family: Family = m[1] === "ip6" ? "ipv6" : "ipv4";
      if (m[3] === "save") return ok(this.saveText(family));
      return this.restore(family, opts.input ?? "", { noflush: args.includes("--noflush"), test: args.includes("--test") });
    }
    if (cmd === "nft" && this.nftJson !== undefined) {
      return args.join(" ") === "-j list ruleset" ? ok(this.nftJson) : { code: 1, stdout: "", stderr: "Error: the fake runs only nft -j list ruleset\n" };
    }
    if (cmd === "ipset") {
      if (args[0] === "list" && args[1] === "-t") return ok(this.ipsetHeaders());
      if (args[0] === "save") {
        if (args[1] !== undefined && !this.sets.has(args[1])) return { code: 1, stdout: "", stderr: "ipset v7.17: The set with the given name does not exist\n" };
        return ok(this.ipsetSave(args[1]));
      }
      const r = args.indexOf("restore");
      if (r >= 0) return this.ipsetRestore(opts.input ?? "", args.includes("-exist"));
      if (args[0] === "test" && args.length === 3) {
        // As the kernel answers for hash:net: the address inside any member.
        const set = this.sets.get(args[1]!);
        if (set === undefined) return { code: 1, stdout: "", stderr: "ipset v7.17: The set with the given name does not exist\n" };
        const inside = new AddressSet(set.members, set.family).has(args[2]!);
        return inside ? ok("") : { code: 1, stdout: "", stderr: `${args[2]} is NOT in set ${args[1]}.\n` };
      }
    }
    throw new CommandNotFoundError(cmd);
  }

  private restore(family: Family, input: string, mode: { noflush: boolean; test: boolean }): CommandResult {
    const committed = this.tables[family];
    let work: Table | undefined;
    let tableName = "";
    const lines = input.split("\n");
    for (let n = 0; n < lines.length; n++) {
      const line = lines[n]!.trim();
      if (line === "" || line.startsWith("#")) continue;
      try {
        if (line.startsWith("*")) {
          tableName = line.slice(1);
          if (!BUILTIN[tableName]) throw new Refused(`table '${tableName}' does not exist`);
          work = mode.noflush && committed.has(tableName) ? cloneTable(committed.get(tableName)!) : emptyTable(tableName);
        } else if (work === undefined) {
          throw new Refused("no table specified");
        } else if (line === "COMMIT") {
          if (!mode.test) committed.set(tableName, work);
          work = undefined;
        } else if (line.startsWith(":")) {
          const [name, policy] = line.slice(1).split(" ");
          const builtin = BUILTIN[tableName]!.includes(name!);
          if (builtin) work.get(name!)!.policy = policy!;
          else if (work.has(name!)) work.get(name!)!.rules = [];
          else work.set(name!, { rules: [] });
        } else {
          this.command(family, work, line);
        }
      } catch (e) {
        if (!(e instanceof Refused)) throw e;
        const tool = family === "ipv4" ? "iptables-restore" : "ip6tables-restore";
        return { code: 1, stdout: "", stderr: `${tool}: line ${n + 1} failed: ${e.message}\n` };
      }
    }
    if (work !== undefined) return { code: 1, stdout: "", stderr: "COMMIT expected at end of input\n" };
    return ok("");
  }

  private command(family: Family, table: Table, line: string): void {
    const [op, chainName, ...rest] = line.split(" ");
    const chain = table.get(chainName ?? "");
    if (!chain) throw new Refused(`chain '${chainName}' does not exist`);
    let spec = rest.join(" ");
    switch (op) {
      case "-A":
        this.checkRule(table, spec);
        chain.rules.push(spec);
        return;
      case "-I": {
        let pos = 1;
        if (/^\d+$/.test(rest[0] ?? "")) {
          pos = Number(rest[0]);
          spec = rest.slice(1).join(" ");
        }
        if (pos < 1 || pos > chain.rules.length + 1) throw new Refused(`index of insertion too big`);
        this.checkRule(table, spec);
        chain.rules.splice(pos - 1, 0, spec);
        return;
      }
      case "-D": {
        const at = /^\d+$/.test(spec) ? Number(spec) - 1 : chain.rules.indexOf(spec);
        if (at < 0 || at >= chain.rules.length) throw new Refused("Bad rule (does a matching rule exist in that chain?)");
        chain.rules.splice(at, 1);
        return;
      }
      case "-F":
        chain.rules = [];
        return;
      case "-X": {
        if (chain.policy !== undefined) throw new Refused(`cannot delete built-in chain ${chainName}`);
        if (chain.rules.length > 0) throw new Refused(`chain ${chainName} is not empty`);
        for (const other of table.values()) {
          if (other.rules.some((r) => targetOf(r) === chainName)) throw new Refused(`chain ${chainName} is in use (referenced by a rule)`);
        }
        table.delete(chainName!);
        return;
      }
      case "-P":
        if (chain.policy === undefined) throw new Refused("policy only on built-in chains");
        chain.policy = rest[0]!;
        return;
      default:
        throw new Refused(`unknown command ${op} (fake supports -A -I -D -F -X -P)`);
    }
  }

  private checkRule(table: Table, spec: string): void {
    const target = targetOf(spec);
    if (target !== undefined && !TARGETS.has(target) && !table.has(target)) {
      throw new Refused(`Couldn't load target \`${target}'`);
    }
    for (const m of spec.matchAll(/--match-set (\S+)/g)) {
      if (!this.sets.has(m[1]!)) throw new Refused(`Set ${m[1]} doesn't exist.`);
    }
  }

  private setInUse(name: string): boolean {
    for (const family of ["ipv4", "ipv6"] as const) {
      for (const table of this.tables[family].values()) {
        for (const chain of table.values()) if (chain.rules.some((r) => r.includes(`--match-set ${name} `))) return true;
      }
    }
    return false;
  }

  private ipsetHeaders(): string {
    return [...this.sets]
      .map(([name, s]) =>
        [
          `Name: ${name}`,
          `Type: ${s.type}`,
          "Revision: 7",
          `Header: family ${s.family === "ipv4" ? "inet" : "inet6"} hashsize 1024 maxelem ${s.maxelem} bucketsize 12 initval 0x1234abcd`,
          "Size in memory: 504",
          `References: ${this.setInUse(name) ? 1 : 0}`,
          `Number of entries: ${s.members.size}`,
        ].join("\n") + "\n",
      )
      .join("\n");
  }

  private ipsetSave(only?: string): string {
    const out: string[] = [];
    for (const [name, s] of this.sets) {
      if (only !== undefined && name !== only) continue;
      out.push(`create ${name} ${s.type} family ${s.family === "ipv4" ? "inet" : "inet6"} hashsize 1024 maxelem ${s.maxelem} bucketsize 12 initval 0x1234abcd`);
      for (const m of s.members) out.push(`add ${name} ${m}`);
    }
    return out.join("\n") + (out.length ? "\n" : "");
  }

  private ipsetRestore(input: string, exist: boolean): CommandResult {
    const lines = input.split("\n");
    for (let n = 0; n < lines.length; n++) {
      const line = lines[n]!.trim();
      if (line === "" || line === "COMMIT") continue;
      try {
        this.ipsetLine(line.split(/\s+/), exist);
      } catch (e) {
        if (!(e instanceof Refused)) throw e;
        return { code: 1, stdout: "", stderr: `ipset v7.17: Error in line ${n + 1}: ${e.message}\n` };
      }
    }
    return ok("");
  }

  private ipsetLine(words: string[], exist: boolean): void {
    const [op, name] = words;
    const set = this.sets.get(name ?? "");
    const need = (): FakeSet => {
      if (!set) throw new Refused("The set with the given name does not exist");
      return set;
    };
    switch (op) {
      case "create": {
        const opt = (k: string) => {
          const i = words.indexOf(k);
          return i >= 0 ? words[i + 1] : undefined;
        };
        const spec: FakeSet = {
          type: words[2]!,
          family: opt("family") === "inet6" ? "ipv6" : "ipv4",
          maxelem: Number(opt("maxelem") ?? 65536),
          members: new Set(),
        };
        if (set) {
          if (exist && set.type === spec.type && set.family === spec.family && set.maxelem === spec.maxelem) return;
          throw new Refused("Set cannot be created: set with the same name already exists");
        }
        this.sets.set(name!, spec);
        return;
      }
      case "add": {
        const s = need();
        const member = canonicalMember(words[2]!, s.family);
        if (s.members.has(member)) {
          if (exist) return;
          throw new Refused("Element cannot be added to the set: it's already added");
        }
        if (s.members.size >= s.maxelem) throw new Refused("Hash is full, cannot add more elements");
        s.members.add(member);
        return;
      }
      case "del": {
        const s = need();
        const member = canonicalMember(words[2]!, s.family);
        if (!s.members.delete(member) && !exist) throw new Refused("Element cannot be deleted from the set: it's not added");
        return;
      }
      case "flush":
        need().members.clear();
        return;
      case "swap": {
        const a = need();
        const b = this.sets.get(words[2] ?? "");
        if (!b) throw new Refused("The set with the given name does not exist");
        if (a.type !== b.type || a.family !== b.family) throw new Refused("The sets cannot be swapped: their type does not match");
        this.sets.set(name!, b);
        this.sets.set(words[2]!, a);
        return;
      }
      case "destroy":
        need();
        if (this.setInUse(name!)) throw new Refused("Set cannot be destroyed: it is in use by a kernel component");
        this.sets.delete(name!);
        return;
      default:
        throw new Refused(`unknown ipset command ${op}`);
    }
  }
}

function ok(stdout: string): CommandResult {
  return { code: 0, stdout, stderr: "" };
}

function emptyTable(name: string): Table {
  return new Map(BUILTIN[name]!.map((c) => [c, { policy: "ACCEPT", rules: [] }]));
}

function cloneTable(t: Table): Table {
  return new Map([...t].map(([k, c]) => [k, { ...(c.policy !== undefined ? { policy: c.policy } : {}), rules: [...c.rules] }]));
}

function targetOf(spec: string): string | undefined {
  return /(?:^| )-[jg] (\S+)/.exec(spec)?.[1];
}

/** ipset prints a host entry of hash:net without its /32 or /128. */
function canonicalMember(m: string, family: Family): string {
  const full = family === "ipv4" ? "/32" : "/128";
  return m.endsWith(full) ? m.slice(0, -full.length) : m;
}
