/**
 * What dockwall applied, kept on disk so `rollback` can restore the exact previous rules and set
 * members, and `status` can tell drift. The directory is checked before use (state-dir.ts), files
 * are written atomically and read without following links (safe-file.ts), and every file is checked
 * against its schema, rules included, before anything uses it (state-schema.ts).
 */
import { lstat, rm } from "node:fs/promises";
import path from "node:path";
import type { DesiredState } from "../backends/rendered.js";
import type { IptablesVariant } from "../facts/types.js";
import { memberCount } from "../ruleset/members.js";
import type { CompiledBefore } from "../pipeline.js";
import type { CompileOrigin } from "../inputs.js";
import { escapeControls } from "../policy/quote.js";
import { FileRefused, readStateFile, replaceFile } from "./safe-file.js";
import { prepareStateDir } from "./state-dir.js";
import { FORMAT, parsePendingFile, parseRecordFile, type Checked, type StoredSet } from "./state-schema.js";

export interface AppliedRecord {
  at: string;
  /** The policy file it came from, or a description ("rollback", "remove"). */
  source: string;
  /** The iptables variant the rules went to (nft or legacy): remove and rollback use the same. */
  variant: IptablesVariant;
  state: DesiredState;
  /** For a state compiled from a policy: its inputs' digests, so an unchanged re-apply skips compiling. */
  origin?: CompileOrigin;
}

export interface StoredState {
  current?: AppliedRecord;
  previous?: AppliedRecord;
  pending?: PendingApply;
}

/**
 * The journal of an apply under way, written before its first change to the kernel and removed once
 * its result is recorded. Found by a later run, it means that apply was killed part-way: the kernel
 * may hold part of it, and `before` is the last state known to be whole (what `previous` becomes,
 * and what `rollback` goes back to).
 */
export interface PendingApply {
  at: string;
  pid: number;
  source: string;
  before: AppliedRecord;
}

/**
 * What `rollback` goes back to: the state before the last change. After an apply killed part-way
 * that is the journal's `before`, not `previous` (which is older still).
 */
export function rollbackTarget(stored: StoredState): AppliedRecord | undefined {
  return stored.pending?.before ?? stored.previous;
}

/** The state dockwall last applied to this iptables variant, if any: what a read may take as known. */
export function appliedState(current: AppliedRecord | undefined, variant: IptablesVariant): DesiredState | undefined {
  return current?.variant === variant ? current.state : undefined;
}

/** The applied state as a compile can reuse it: only a state that came from a policy file. */
export function compiledBefore(current: AppliedRecord | undefined): CompiledBefore | undefined {
  return current?.origin ? { ...current.origin, desired: current.state } : undefined;
}

export const DEFAULT_STATE_DIR = "/var/lib/dockwall";

/** A --state-dir or DOCKWALL_STATE_DIR that names no directory dockwall can keep its state in: a usage error. */
export class StateDirOptionError extends Error {}

/**
 * The state directory: --state-dir, else DOCKWALL_STATE_DIR (empty counts as unset, as a unit file's
 * `Environment=DOCKWALL_STATE_DIR=` means), else the default. It must be absolute: an empty or
 * relative one would put root's state, and the lock, wherever the command happens to run.
 */
export function stateDir(option?: string, env: string | undefined = process.env.DOCKWALL_STATE_DIR): string {
  const [dir, from] = option !== undefined ? [option, "--state-dir"] : env ? [env, "DOCKWALL_STATE_DIR"] : [DEFAULT_STATE_DIR, "default"];
  if (!path.isAbsolute(dir)) {
    throw new StateDirOptionError(escapeControls(`${from} ${JSON.stringify(dir)}: the state directory must be an absolute path (such as ${DEFAULT_STATE_DIR})`));
  }
  return dir;
}

/**
 * Far above any real state (a million IPv6 members are ~45 MB of JSON), far below what parsing would
 * need to exhaust the heap.
 */
const MAX_STATE_BYTES = 256 * 1024 * 1024;

/** What each file is for, and so what a user can do when it is unreadable. */
const WAY_OUT: Record<keyof StoredState, string> = {
  current:
    "`dockwall apply -c POLICY_FILE` reads the whole kernel and writes a new record in its place (move the file aside first to keep it)",
  previous: "`dockwall rollback` will not use it; the next `dockwall apply` replaces it (move the file aside first to keep it)",
  pending:
    "it is the journal of an apply that was stopped part-way; `dockwall apply -c POLICY_FILE` reads the whole kernel, applies the policy in full and removes it",
};

/** A state file that is not one dockwall wrote: truncated, corrupt, edited, or not a regular file. */
export class StateFileError extends Error {
  constructor(
    readonly file: string,
    readonly which: keyof StoredState,
    /** What is wrong with it, without the advice. */
    readonly reason: string,
  ) {
    // The path and the reason may hold a hostile file's bytes: one line, no escape sequences.
    super(escapeControls(`${file} is not a valid dockwall state (${reason}): ${WAY_OUT[which]}`));
  }
}

/** For a reader that can do without the record (it reads the whole kernel instead): unreadable is none. */
export function ignoreUnreadable(e: unknown): undefined {
  if (e instanceof StateFileError) return undefined;
  throw e;
}

/**
 * One file per record: every apply reads `current` (100,000 members are ~1 MB of JSON), only
 * `rollback` reads `previous`. A crash between the two writes of `record` leaves `previous` new and
 * `current` old: rollback then restores what the kernel held before that apply, which is still right.
 */
export class StateStore {
  private cached?: { key: string; record: Promise<AppliedRecord | undefined> };
  private checked?: Promise<void>;

  constructor(readonly dir: string) {}

  get lockFile(): string {
    return path.join(this.dir, "lock");
  }

  /** Checks the directory (and creates it if missing) once: see state-dir.ts. Everything here waits for it. */
  ready(): Promise<void> {
    return (this.checked ??= prepareStateDir(this.dir));
  }

  private file(which: keyof StoredState): string {
    return path.join(this.dir, `${which}.json`);
  }

  /**
   * The applied record; read from disk (and checked) once per change of the file: apply asks twice,
   * possibly at the same time. Throws StateFileError if the file is not a valid record.
   */
  async current(): Promise<AppliedRecord | undefined> {
    await this.ready();
    const file = this.file("current");
    const key = await lstat(file).then(
      (s) => `${s.ino} ${s.size} ${s.mtimeMs}`,
      () => "none",
    );
    if (this.cached?.key !== key) this.cached = { key, record: this.readFile("current", parseRecordFile) };
    return this.cached.record;
  }

  async previous(): Promise<AppliedRecord | undefined> {
    return this.readFile("previous", parseRecordFile);
  }

  async pending(): Promise<PendingApply | undefined> {
    return this.readFile("pending", parsePendingFile);
  }

  async read(): Promise<StoredState> {
    const [current, previous, pending] = await Promise.all([this.current(), this.previous(), this.pending()]);
    return { ...(current ? { current } : {}), ...(previous ? { previous } : {}), ...(pending ? { pending } : {}) };
  }

  /**
   * What `rollback` goes back to (see rollbackTarget), reading only the files that decide it: a
   * corrupt `current` does not stop a rollback, a corrupt journal or `previous` does.
   */
  async rollbackTarget(): Promise<AppliedRecord | undefined> {
    const pending = await this.pending();
    return rollbackTarget(pending ? { pending } : { previous: await this.previous() });
  }

  /** Records a new applied state; `previous`, when given, replaces the one stored. Ends any journal. */
  async record(current: AppliedRecord, previous?: AppliedRecord): Promise<void> {
    if (previous) await this.writeRecord("previous", previous);
    await this.writeRecord("current", current);
    await this.endJournal();
  }

  /** Replaces the current record's details (same rules, new origin); `previous` stays. */
  async amend(current: AppliedRecord): Promise<void> {
    await this.writeRecord("current", current);
  }

  /** Starts the journal of an apply (the caller keeps one left by a killed apply instead: its `before` is older). */
  async begin(pending: PendingApply): Promise<void> {
    const { before, ...rest } = pending;
    await this.writeJson("pending", { ...rest, before: toStored(before) });
  }

  /** Ends the journal: the apply is recorded, or it changed nothing in the end (fully undone). */
  async endJournal(): Promise<void> {
    await rm(this.file("pending"), { force: true });
  }

  private async readFile<T>(which: keyof StoredState, parse: (text: string) => Checked<T>): Promise<T | undefined> {
    await this.ready();
    const file = this.file(which);
    let text: string | undefined;
    try {
      text = await readStateFile(file, MAX_STATE_BYTES);
    } catch (e) {
      if (e instanceof FileRefused) throw new StateFileError(file, which, e.message);
      throw e;
    }
    if (text === undefined) return undefined;
    let checked: Checked<T>;
    try {
      checked = parse(text);
    } catch (e) {
      // A check that throws (a bug, a stack overflow on a crafted file) still refuses this file by name.
      throw new StateFileError(file, which, `could not be checked: ${escapeControls(e instanceof Error ? e.message : String(e))}`);
    }
    if (!checked.ok) throw new StateFileError(file, which, checked.problems.join("; "));
    return checked.value;
  }

  private writeRecord(which: "current" | "previous", record: AppliedRecord): Promise<void> {
    return this.writeJson(which, toStored(record));
  }

  private async writeJson(which: keyof StoredState, record: unknown): Promise<void> {
    await this.ready();
    await replaceFile(this.file(which), JSON.stringify({ format: FORMAT, record }));
  }
}

type StoredRecord = Omit<AppliedRecord, "state"> & { state: Omit<DesiredState, "sets"> & { sets: StoredSet[] } };

function toStored(record: AppliedRecord): StoredRecord {
  const sets = record.state.sets.map((s) => ({ name: s.name, family: s.family, count: memberCount(s), members: s.members.join("\n") }));
  return { ...record, state: { ...record.state, sets } };
}
