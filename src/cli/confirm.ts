import type { Command } from "commander";
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { claimWindow, readWindow, type ConfirmWindow } from "../apply/confirm.js";
import { Exit, makeContext, print, type Context, type GlobalOptions } from "./common.js";
import { rollBack } from "./rollback.js";
import { ignoreUnreadable } from "../apply/state-store.js";
import { selfProgram } from "../exec/self.js";

/** Starts the keeper: detached, in its own session, so it outlives the terminal and the SSH connection. */
export function startKeeper(ctx: Context, w: ConfirmWindow): void {
  const self = selfProgram();
  const child = spawn(self.file, [...self.args, "--state-dir", ctx.store.dir, "confirm-keeper", w.token], {
    detached: true,
    stdio: "ignore",
  });
  child.unref();
}

/** The keeper's job: at the deadline, roll back unless the window was confirmed or superseded. */
export async function keepWindow(ctx: Context, token: string): Promise<string[]> {
  const w = await readWindow(ctx.store);
  if (w === undefined || w.token !== token) return [];
  await sleep(Math.max(0, w.deadline - Date.now()));
  const claimed = await claimWindow(ctx.store, token);
  if (claimed === undefined) return [];
  // Another apply since (without --confirm) replaced the one this window was for: it stands. A
  // record that cannot be read cannot show that: what was not confirmed goes (rollback checks its own target).
  const current = await ctx.store.current().catch(ignoreUnreadable);
  if (current !== undefined && current.at !== claimed.appliedAt) return [];
  return rollBack(ctx, "not confirmed, rollback");
}

export function registerConfirm(program: Command): void {
  program
    .command("confirm")
    .description("keep the rules of an `apply --confirm` whose window is still open")
    .addHelpText("after", "\nExit code: 0 confirmed, 1 no window open (none asked for, already rolled back, or confirmed).\n\nExample:\n  dockwall apply --confirm 120 -c /etc/dockwall/dockwall.yaml   # then, from a new SSH session:\n  dockwall confirm\n")
    .action(async (_opts: object, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      const w = await claimWindow(ctx.store);
      if (w === undefined) {
        process.stderr.write("dockwall: nothing to confirm (no apply --confirm window is open)\n");
        throw new Exit(1);
      }
      print([`confirmed: the rules applied at ${w.appliedAt} from ${w.source} stay`]);
    });
  program
    .command("confirm-keeper", { hidden: true })
    .argument("<token>")
    .action(async (token: string, _opts: object, cmd: Command) => {
      const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
      await keepWindow(ctx, token);
    });
}

/**
 * On a terminal: asks, until the deadline. "yes" keeps the rules; any other answer rolls back now;
 * no answer leaves it to the keeper, whose rollback is waited for. Returns the lines to print and
 * whether the rules stayed.
 */
export async function askOnTerminal(ctx: Context, w: ConfirmWindow): Promise<{ kept: boolean; lines: string[] }> {
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), Math.max(0, w.deadline - Date.now()));
  let answer: string | undefined;
  try {
    answer = await rl.question(`keep these rules? type "yes" within ${Math.round((w.deadline - Date.now()) / 1000)} s (or run \`dockwall confirm\` from another session): `, { signal: ac.signal });
  } catch {
    answer = undefined;
  } finally {
    clearTimeout(timer);
    rl.close();
  }
  if (answer !== undefined && answer.trim().toLowerCase() === "yes") {
    if (await claimWindow(ctx.store, w.token)) return { kept: true, lines: ["confirmed: the new rules stay"] };
  } else if (answer !== undefined && (await claimWindow(ctx.store, w.token))) {
    return { kept: false, lines: await rollBack(ctx, "not confirmed, rollback") };
  }
  // The keeper (or `dockwall confirm` elsewhere) decides; wait for the window to close.
  while ((await readWindow(ctx.store))?.token === w.token) await sleep(200);
  const current = await ctx.store.current();
  const kept = current?.at === w.appliedAt;
  return { kept, lines: [kept ? "confirmed: the new rules stay" : `not confirmed in time: rolled back (${current?.source ?? "previous state"})`] };
}
