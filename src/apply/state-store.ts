/**
 * What dockwall applied, kept on disk so `rollback` can restore the exact previous rules and set
 * members, and `status` can tell drift. Written atomically (temp file + rename).
 */
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { DesiredState } from "../backends/rendered.js";
import type { IptablesVariant } from "../facts/types.js";
import type { Family } from "../policy/types.js";
import { lazySet, memberCount } from "../ruleset/members.js";
import type { CompiledBefore } from "../pipeline.js";
import type { CompileOrigin } from "../inputs.js";

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

export function stateDir(option?: string): string {
  return option ?? process.env.DOCKWALL_STATE_DIR ?? DEFAULT_STATE_DIR;
}

const FORMAT = 3;

/** On disk each set's members are one newline-joined string (one JSON string, not 100,000). */
type StoredRecord = Omit<AppliedRecord, "state"> & {
  state: Omit<DesiredState, "sets"> & { sets: { name: string; family: Family; count: number; members: string }[] };
};

/**
 * One file per record: every apply reads `current` (100,000 members are ~1 MB of JSON), only
 * `rollback` reads `previous`. A crash between the two writes of `record` leaves `previous` new and
 * `current` old: rollback then restores what the kernel held before that apply, which is still right.
 */
export class StateStore {
  private cached?: { key: string; record: Promise<AppliedRecord | undefined> };

  constructor(readonly dir: string) {}

  get lockFile(): string {
    return path.join(this.dir, "lock");
  }

  private file(which: keyof StoredState): string {
    return path.join(this.dir, `${which}.json`);
  }

  /**
   * The applied record; read from disk once per change of the file. apply asks twice, possibly at
   * the same time: both get the same objects, which is how a reused compile is recognised (ipset.ts).
   */
  async current(): Promise<AppliedRecord | undefined> {
    const file = this.file("current");
    const key = await stat(file).then(
      (s) => `${s.ino} ${s.size} ${s.mtimeMs}`,
      () => "none",
    );
    if (this.cached?.key !== key) this.cached = { key, record: this.readRecord("current") };
    return this.cached.record;
  }

  async read(): Promise<StoredState> {
    const [current, previous, pending] = await Promise.all([this.current(), this.readRecord("previous"), this.pending()]);
    return { ...(current ? { current } : {}), ...(previous ? { previous } : {}), ...(pending ? { pending } : {}) };
  }

  /** Records a new applied state; `previous`, when given, replaces the one stored. Ends any journal. */
  async record(current: AppliedRecord, previous?: AppliedRecord): Promise<void> {
    if (previous) await this.writeRecord("previous", previous);
    await this.writeRecord("current", current);
    await rm(this.file("pending"), { force: true });
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

  /** Removes the journal of an apply that changed nothing in the end (fully undone). */
  async endJournal(): Promise<void> {
    await rm(this.file("pending"), { force: true });
  }

  async pending(): Promise<PendingApply | undefined> {
    const data = await this.readJson<Omit<PendingApply, "before"> & { before: StoredRecord }>("pending");
    return data && { ...data, before: fromStored(data.before) };
  }

  private async readRecord(which: "current" | "previous"): Promise<AppliedRecord | undefined> {
    const data = await this.readJson<StoredRecord>(which);
    return data && fromStored(data);
  }

  private writeRecord(which: "current" | "previous", record: AppliedRecord): Promise<void> {
    return this.writeJson(which, toStored(record));
  }

  private async readJson<T>(which: keyof StoredState): Promise<T | undefined> {
    const file = this.file(which);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw e;
    }
    const data = JSON.parse(text) as { format: number; record: T };
    if (data.format !== FORMAT) throw new Error(`${file}: unknown state format ${data.format} (written by another dockwall version?)`);
    return data.record;
  }

  private async writeJson(which: keyof StoredState, record: unknown): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = this.file(which);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ format: FORMAT, record }), { mode: 0o600 });
    await rename(tmp, file);
  }
}

function toStored(record: AppliedRecord): StoredRecord {
  const sets = record.state.sets.map((s) => ({ name: s.name, family: s.family, count: memberCount(s), members: s.members.join("\n") }));
  return { ...record, state: { ...record.state, sets } };
}

function fromStored(data: StoredRecord): AppliedRecord {
  const { state } = data;
  return { ...data, state: { ...state, sets: state.sets.map((s) => lazySet(s.name, s.family, s.members, s.count)) } };
}
