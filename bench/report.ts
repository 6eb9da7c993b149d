/** What every benchmark writes the same way: statistics, the machine, figure tables, the JSON and the document. */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const repo = process.cwd();

export function stats(runs: number[]): { median: number; min: number; max: number } {
  const s = [...runs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s[s.length - 1]! };
}

/** A measured figure with its runs and statistics, as the JSON files keep it. */
export interface FigureRow {
  name: string;
  unit: string;
  runs: number[];
  median: number;
  min: number;
  max: number;
  goal?: string;
}

/** Figures with a unit each; `digits` below 100, whole numbers above. */
export function figureTable(rows: FigureRow[], digits: number, goalColumn: boolean): string {
  const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(digits));
  const goal = goalColumn ? " goal |" : "";
  return [
    `| figure | median | min | max | unit | runs |${goal}`,
    `|---|---|---|---|---|---|${goalColumn ? "---|" : ""}`,
    ...rows.map((r) => `| ${r.name} | ${fmt(r.median)} | ${fmt(r.min)} | ${fmt(r.max)} | ${r.unit} | ${r.runs.length} |${goalColumn ? ` ${r.goal ?? ""} |` : ""}`),
  ].join("\n");
}

/**
 * Writes docs/JSON (with the date and machine) and docs/DOC from bench/TEMPLATE, whose
 * {{date}}, {{machine}} and {{key}} for each of `fill` are replaced.
 */
export function writeReport(json: string, data: object, template: string, doc: string, fill: Record<string, string>): void {
  const date = new Date().toISOString().slice(0, 10);
  const machine = `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model ?? "?"}, Linux ${os.release()}`;
  mkdirSync(path.join(repo, "docs"), { recursive: true });
  writeFileSync(path.join(repo, "docs", json), JSON.stringify({ date, machine, ...data }, null, 2) + "\n");
  let text = readFileSync(path.join(repo, "bench", template), "utf8").replace("{{date}}", date).replace("{{machine}}", machine);
  for (const [key, value] of Object.entries(fill)) text = text.replace(`{{${key}}}`, value);
  writeFileSync(path.join(repo, "docs", doc), text);
}

/** A benchmark's JSON from an earlier run, if there is one. */
export function readReport<T>(json: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path.join(repo, "docs", json), "utf8")) as T;
  } catch {
    return undefined;
  }
}
