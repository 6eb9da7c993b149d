import { InvalidArgumentError, type Command } from "commander";
import { applyPolicy } from "../apply-policy.js";
import { DEFAULT_POLICY, Exit, FULL_READ_HELP, makeContext, print, warn, type GlobalOptions } from "./common.js";
import { changeLines, ruleCounts, VERBOSE_HELP } from "./summary.js";
import { interruptedMessage, type LiveState } from "../apply/apply.js";
import { openWindow } from "../apply/confirm.js";
import { askOnTerminal, startKeeper } from "./confirm.js";
import { sshSession, traceSessionAfter, type SshSession } from "../trace/lockout.js";
import { sshConnectionValue } from "../facts/ssh-connection.js";
import { liveTablesFrom } from "../trace/live.js";
import type { DesiredState } from "../backends/rendered.js";
import type { Netfilter } from "../backends/netfilter.js";

export class LockoutRefused extends Error {}

function parseSeconds(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 86400) throw new InvalidArgumentError("give whole seconds, 1 to 86400");
  return n;
}

/** Refuses a state under which `session` could not open a new connection again. */
function lockoutGuard(session: SshSession): (desired: DesiredState, nf: Netfilter, live: LiveState) => Promise<void> {
  return async (desired, nf, live) => {
    const r = await traceSessionAfter(await liveTablesFrom(nf, live), desired, session);
    if (r.verdict === "accept") return;
    const last = r.steps.at(-1);
    const why = r.verdict === "unknown" ? `the tracer cannot tell (${r.reason})` : `${r.verdict.toUpperCase()} by ${last ? `${last.table} ${last.chain} #${last.index}: ${last.rule}` : "a chain policy"}`;
    throw new LockoutRefused(
      `refusing to apply: the SSH session this runs from (${session.client} to ${session.server} port ${session.port}, in on ${r.inIface}) could not reconnect under the new rules: ${why}\nopen port ${session.port} to ${session.client} in the policy, or run with --force; nothing was applied`,
    );
  };
}

export function registerApply(program: Command): void {
  program
    .command("apply")
    .description("apply the policy atomically (IPv4, IPv6 and sets together, or nothing)")
    .option("-c, --config <file>", "policy file", DEFAULT_POLICY)
    .option("--full-read", FULL_READ_HELP)
    .option("--force", "apply even if the SSH session this runs from could not reconnect under the new rules")
    .option("--verbose", VERBOSE_HELP)
    .option("--confirm <seconds>", "roll back by itself after SECONDS unless `dockwall confirm` runs (asks on a terminal)", parseSeconds)
    .addHelpText(
      "after",
      "\nThe policy is validated completely before the kernel is touched; a failure leaves the previous rules.\nRun from SSH (SSH_CONNECTION set, here or, under sudo, in a parent process), it first traces a new connection from your address to the SSH port\nthrough the rules as they will be, and refuses if it would not get in, unless --force.\nWith --confirm, a process detached from the terminal rolls the change back at the deadline unless\n`dockwall confirm` ran; an SSH connection lost meanwhile does not stop it. Exit code 3: not confirmed, rolled back.\n\nExamples:\n  dockwall apply -c /etc/dockwall/dockwall.yaml\n  dockwall apply --confirm 120   # then \`dockwall confirm\` from a new SSH session\n",
    )
    .action(async (opts: { config: string; fullRead?: boolean; force?: boolean; confirm?: number; verbose?: boolean }, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      // Set but unreadable, it throws before anything is touched: the guard is never skipped silently.
      // Under sudo (which drops SSH_CONNECTION) the session is read from the parent that has it.
      const found = opts.force ? undefined : await sshConnectionValue(process.env, process.ppid);
      const session = found === undefined ? undefined : sshSession(found.value, found.foundIn);
      const { compiled, result } = await applyPolicy(opts.config, ctx, {
        fullRead: opts.fullRead === true,
        onCompiled: (c) => warn(c.warnings),
        ...(session ? { guard: lockoutGuard(session) } : {}),
      });
      warn(result.warnings ?? []);
      if (result.interrupted) warn([interruptedMessage(result.interrupted)]);
      print(result.changed ? changeLines(result.before, compiled.desired, result.summary, opts.verbose === true) : []);
      print([`${result.changed ? "applied" : "no changes"}: ${ruleCounts(compiled.desired)} (iptables ${compiled.netfilter.variant})`]);
      if (opts.confirm === undefined) return;
      const applied = await ctx.store.current();
      if (!result.changed || applied === undefined) {
        print(["nothing changed: nothing to confirm"]);
        return;
      }
      const window = await openWindow(ctx.store, applied.at, opts.config, opts.confirm);
      startKeeper(ctx, window);
      if (!process.stdin.isTTY) {
        print([`run \`dockwall confirm\` by ${new Date(window.deadline).toISOString()} (${opts.confirm} s) or the previous rules come back`]);
        return;
      }
      // A terminal that goes away (the SSH connection lost) must not end the wait: the keeper decides then.
      process.on("SIGHUP", () => undefined);
      const answer = await askOnTerminal(ctx, window);
      print(answer.lines);
      if (!answer.kept) throw new Exit(3);
    });
}
