/**
 * The kernel's firewall as dockwall uses it: read the state, load a payload, with every command going
 * through the Runner. Each writing method names its inverse, so a failed step can be undone.
 */
import type { Family } from "../policy/types.js";
import type { IptablesVariant } from "../facts/types.js";
import { availableParallelism } from "node:os";
import { CommandFailedError, type Runner } from "../exec/runner.js";
import { allSettled } from "../exec/settle.js";
import { fillPayloads, type SetFill } from "./ipset.js";

/** Seconds to wait for the xtables lock held by Docker or another tool (iptables -w). */
const XTABLES_WAIT = "10";

export class NetfilterError extends Error {}

export class Netfilter {
  constructor(
    private readonly runner: Runner,
    readonly variant: IptablesVariant,
    /** How many `ipset restore` processes may load members side by side (see fillPayloads). */
    private readonly loaders: number = availableParallelism(),
  ) {}

  private bin(family: Family, tool: "save" | "restore"): string {
    return `${family === "ipv4" ? "iptables" : "ip6tables"}-${this.variant}-${tool}`;
  }

  /** Reads every table of one family, as `iptables-save` prints it. Read-only. */
  async save(family: Family, opts: { counters?: boolean } = {}): Promise<string> {
    const r = await this.runner.run(this.bin(family, "save"), opts.counters ? ["-c"] : []);
    if (r.code !== 0) throw new NetfilterError(`${this.bin(family, "save")} failed: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Checks a payload without changing anything. Read-only. */
  async test(family: Family, payload: string): Promise<void> {
    await this.restoreWith(family, payload, ["--test"]);
  }

  /**
   * Loads a payload with --noflush: only the chains it declares are flushed. Each table block is
   * atomic; blocks before a failing one stay applied. Inverse: restore() of a payload made from the
   * state saved before (diff.ts restorePayload of the old dockwall part).
   */
  async restore(family: Family, payload: string): Promise<void> {
    await this.restoreWith(family, payload, []);
  }

  private async restoreWith(family: Family, payload: string, extra: string[]): Promise<void> {
    const bin = this.bin(family, "restore");
    const r = await this.runner.run(bin, ["-w", XTABLES_WAIT, "--noflush", ...extra], { input: payload });
    if (r.code !== 0) throw new NetfilterError(`${bin}${extra.length ? " " + extra.join(" ") : ""} refused the ${family} rules: ${r.stderr.trim()}`);
  }

  /** The whole nftables ruleset as JSON (`nft -j list ruleset`, libnftables-json(5)), for the tracer. Read-only. */
  async nftRuleset(): Promise<string> {
    const r = await this.runner.run("nft", ["-j", "list", "ruleset"]);
    if (r.code !== 0) throw new NetfilterError(`nft -j list ruleset failed: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Every ipset (or one), with its members, as `ipset save` prints it. Read-only. */
  async ipsetSave(name?: string): Promise<string> {
    return this.ipset(name === undefined ? ["save"] : ["save", name]);
  }

  /**
   * Every ipset's header and entry count, without members (`ipset list -t`). Read-only. Reading
   * 100,000 members back costs ~0.3 s of process time plus parsing; this costs a few ms.
   */
  async ipsetHeaders(): Promise<string> {
    return this.ipset(["list", "-t"]);
  }

  /** Whether the kernel's set holds the address (`ipset test`, its own match semantics). Read-only. */
  async ipsetTest(name: string, address: string): Promise<boolean> {
    const r = await this.runner.run("ipset", ["test", name, address]);
    // 0: in the set; 1 with "is NOT in set": not in it; anything else is a real failure.
    if (r.code !== 0 && !/is NOT in set/.test(r.stderr)) throw new NetfilterError(`ipset test ${name} ${address} failed: ${r.stderr.trim()}`);
    return r.code === 0;
  }

  /** One member of a set, without reading the rest: `head` closing the pipe stops ipset early. Read-only. */
  async ipsetFirstMember(name: string): Promise<string | undefined> {
    const quoted = `'${name.replace(/'/g, "'\\''")}'`;
    const r = await this.runner.run("sh", ["-c", `ipset save ${quoted} | head -n 2`]);
    return /^add \S+ (\S+)/m.exec(r.stdout)?.[1];
  }

  private async ipset(args: string[]): Promise<string> {
    const r = await this.runner.run("ipset", args);
    if (r.code !== 0) throw new NetfilterError(`ipset ${args.join(" ")} failed: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /**
   * Runs ipset commands line by line (`ipset -exist restore`); not atomic: it stops at the first
   * failing line. Inverse: the matching lines of SetPlan.undoCommit / discard.
   */
  async ipsetRestore(lines: string[]): Promise<void> {
    if (lines.length === 0) return;
    await this.ipsetLoad(lines.join("\n") + "\n");
  }

  /**
   * Loads members into sets ipsetRestore has just created, in several processes side by side.
   * Waits for all of them; fails with the first failure. Inverse: SetPlan.discard.
   */
  async ipsetFill(fills: SetFill[]): Promise<void> {
    await allSettled(fillPayloads(fills, this.loaders).map((p) => this.ipsetLoad(p)));
  }

  private async ipsetLoad(payload: string): Promise<void> {
    const r = await this.runner.run("ipset", ["-exist", "restore"], { input: payload });
    if (r.code !== 0) throw new NetfilterError(`ipset restore failed: ${r.stderr.trim()}`);
  }
}

export { CommandFailedError };
