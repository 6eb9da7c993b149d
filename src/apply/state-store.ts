/**
 * What dockwall applied, kept on disk so `rollback` can restore the exact previous rules and set
 * members, and `status` can tell drift. Written atomically (temp file + rename).
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { DesiredState } from "../backends/rendered.js";
import type { IptablesVariant } from "../facts/types.js";

export interface AppliedRecord {
  at: string;
  /** The policy file it came from, or a description ("rollback", "remove"). */
  source: string;
  /** The iptables variant the rules went to (nft or legacy): remove and rollback use the same. */
  variant: IptablesVariant;
  state: DesiredState;
}

export interface StoredState {
  version: 1;
  current?: AppliedRecord;
  previous?: AppliedRecord;
}

export const DEFAULT_STATE_DIR = "/var/lib/dockwall";

export function stateDir(option?: string): string {
  return option ?? process.env.DOCKWALL_STATE_DIR ?? DEFAULT_STATE_DIR;
}

export class StateStore {
  constructor(readonly dir: string) {}

  get file(): string {
    return path.join(this.dir, "state.json");
  }

  get lockFile(): string {
    return path.join(this.dir, "lock");
  }

  async read(): Promise<StoredState> {
    try {
      const data = JSON.parse(await readFile(this.file, "utf8")) as StoredState;
      if (data.version !== 1) throw new Error(`unknown state version in ${this.file}`);
      return data;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return { version: 1 };
      throw e;
    }
  }

  /** Records a new applied state; what was there before becomes `previous`. */
  async record(current: AppliedRecord, previous: AppliedRecord): Promise<void> {
    await this.write({ version: 1, current, previous });
  }

  private async write(data: StoredState): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(data), { mode: 0o600 });
    await rename(tmp, this.file);
  }
}
