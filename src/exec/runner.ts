import { spawn } from "node:child_process";

/** What a finished command left behind. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the command's standard input, which is then closed. */
  input?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/**
 * The one door through which dockwall runs commands (iptables-restore, ipset, ip, ...).
 * Real in production and lab tests, a stateful fake in unit tests (test/unit/fake-netfilter.ts).
 * A non-zero exit is not an exception: callers read `code`. Only a command that cannot be
 * started at all (not installed) rejects, with a CommandNotFoundError.
 */
export interface Runner {
  run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<CommandResult>;
}

export class CommandNotFoundError extends Error {
  constructor(readonly command: string) {
    super(`${command}: command not found (is it installed and on PATH?)`);
    this.name = "CommandNotFoundError";
  }
}

/** Runs real processes. */
export class ProcessRunner implements Runner {
  run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, {
        stdio: ["pipe", "pipe", "pipe"],
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on("data", (b: Buffer) => out.push(b));
      child.stderr.on("data", (b: Buffer) => err.push(b));
      child.on("error", (e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") reject(new CommandNotFoundError(cmd));
        else reject(e);
      });
      child.on("close", (code, signal) => {
        resolve({
          code: code ?? (signal ? 128 : 1),
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
        });
      });
      // EPIPE when a command exits before reading its input is reported through its exit code.
      child.stdin.on("error", () => undefined);
      child.stdin.end(opts.input ?? "");
    });
  }
}

/** Runs a command and throws a readable error when it fails. */
export async function runOk(runner: Runner, cmd: string, args: readonly string[], opts?: RunOptions): Promise<string> {
  const r = await runner.run(cmd, args, opts);
  if (r.code !== 0) {
    throw new CommandFailedError(cmd, args, r);
  }
  return r.stdout;
}

export class CommandFailedError extends Error {
  constructor(readonly command: string, readonly args: readonly string[], readonly result: CommandResult) {
    super(`${command} ${args.join(" ")} failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`);
    this.name = "CommandFailedError";
  }
}
