/**
 * The daemon's log lines: one JSON object per line, which `jq` reads and journald keeps as it is.
 * When stdout is the journal, each line starts with its syslog priority (`<3>` error, `<4>` warning,
 * `<6>` info: SyslogLevelPrefix=, on by default), so `journalctl -p err` shows the errors. Anywhere
 * else the lines are plain JSON.
 */
import { fstatSync } from "node:fs";

export type Level = "info" | "warn" | "error";

const PRIORITY: Record<Level, number> = { error: 3, warn: 4, info: 6 };

/**
 * sd_journal_stream_fd(3): systemd sets JOURNAL_STREAM to "DEV:INO" of the stream it connected to
 * stdout and stderr. A stdout redirected since (a pipe, a file) has another device and inode: the
 * variable alone would be inherited by a child whose output goes elsewhere.
 */
export function stdoutIsJournal(env: NodeJS.ProcessEnv = process.env, statStdout: () => { dev: bigint; ino: bigint } = () => fstatSync(1, { bigint: true })): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? "");
  if (!m) return false;
  try {
    const s = statStdout();
    return s.dev === BigInt(m[1]!) && s.ino === BigInt(m[2]!);
  } catch {
    return false;
  }
}

export function formatLogLine(level: Level, event: string, fields: Record<string, unknown>, at: Date, journal: boolean): string {
  const json = JSON.stringify({ time: at.toISOString(), level, event, ...fields });
  return `${journal ? `<${PRIORITY[level]}>` : ""}${json}\n`;
}
