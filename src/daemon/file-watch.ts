/**
 * Watches the policy file and its group files. Editors and config tools replace a file (write a
 * temporary one, rename it over) rather than write into it, which ends a watch on the file itself;
 * so the directories are watched and events filtered by name.
 */
import { watch, type FSWatcher } from "node:fs";
import path from "node:path";

export class FileWatch {
  private watchers = new Map<string, FSWatcher>();
  private files = new Set<string>();

  constructor(private readonly changed: (file: string) => void) {}

  /** Whether any file is watched (set() was called with some, and close() not since). */
  get watching(): boolean {
    return this.files.size > 0;
  }

  /** Watches exactly these files from now on (its inverse: close()). */
  set(files: string[]): void {
    this.files = new Set(files.map((f) => path.resolve(f)));
    const dirs = new Set([...this.files].map((f) => path.dirname(f)));
    for (const [dir, w] of this.watchers) {
      if (!dirs.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, (_event, name) => {
          const file = name ? path.join(dir, name.toString()) : undefined;
          if (file === undefined || this.files.has(file)) this.changed(file ?? dir);
        });
        w.on("error", () => this.watchers.delete(dir));
        this.watchers.set(dir, w);
      } catch {
        // A directory that cannot be watched: the periodic check still reads the files.
      }
    }
  }

  close(): void {
    this.files.clear();
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}
