/**
 * Reads `iptables-save` / `ip6tables-save` text into tables, chains and rule specs.
 * Used to find dockwall's part of the live state (apply, verify, status, plan).
 */
export interface SavedChain {
  name: string;
  /** ACCEPT/DROP for built-in chains, undefined for user chains. */
  policy?: string;
  rules: string[];
  /** With `iptables-save -c`: packets and bytes per rule, parallel to `rules`. */
  counters?: RuleCounter[];
}

export interface RuleCounter {
  packets: number;
  bytes: number;
}

export interface SavedTable {
  name: string;
  chains: Map<string, SavedChain>;
}

export type SavedState = Map<string, SavedTable>;

export class SaveParseError extends Error {}

export function parseSave(text: string): SavedState {
  const tables: SavedState = new Map();
  let table: SavedTable | undefined;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.trimEnd();
    let counter: RuleCounter | undefined;
    // `iptables-save -c` puts [packets:bytes] before each rule.
    const counted = /^\[(\d+):(\d+)\] /.exec(line);
    if (counted) {
      counter = { packets: Number(counted[1]), bytes: Number(counted[2]) };
      line = line.slice(counted[0].length);
    }
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("*")) {
      table = { name: line.slice(1), chains: new Map() };
      tables.set(table.name, table);
    } else if (line === "COMMIT") {
      table = undefined;
    } else if (table === undefined) {
      throw new SaveParseError(`line ${i + 1}: "${line}" outside a table`);
    } else if (line.startsWith(":")) {
      const [name, policy] = line.slice(1).split(" ");
      table.chains.set(name!, { name: name!, policy: policy === "-" ? undefined : policy, rules: [] });
    } else if (line.startsWith("-A ")) {
      const rest = line.slice(3);
      const space = rest.indexOf(" ");
      const chainName = space < 0 ? rest : rest.slice(0, space);
      const spec = space < 0 ? "" : rest.slice(space + 1);
      const chain = table.chains.get(chainName);
      if (!chain) throw new SaveParseError(`line ${i + 1}: rule for undeclared chain ${chainName}`);
      chain.rules.push(spec);
      if (counter) (chain.counters ??= []).push(counter);
    } else {
      throw new SaveParseError(`line ${i + 1}: cannot read "${line}"`);
    }
  }
  return tables;
}

/** The chain a rule jumps or goes to, if any (`-j X` / `-g X` as the rule's target). */
export function ruleTarget(spec: string): string | undefined {
  const m = / ?-[jg] (\S+)/.exec(spec);
  return m?.[1];
}
