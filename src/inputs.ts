/**
 * What a compile read, so the next apply can skip the work when it reads the same again.
 *
 * policy -> compile -> render is a pure function of the policy file, the group files it names and the
 * facts; and a group file only ever decides its group's set members (rules name sets, never members).
 * Reading and hashing the files costs a few milliseconds; parsing the YAML and a 100,000-line group
 * file costs a hundred or more. So, against the inputs recorded with the applied state:
 *   - everything the same: the recorded desired state is the desired state;
 *   - only group files changed: those files are parsed again and their sets' members replaced;
 *   - otherwise: a full compile.
 * The kernel is read and compared every time; only the compile is skipped.
 */
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import type { Facts } from "./facts/types.js";
import { GROUP_FILE_LIMIT, POLICY_LIMIT } from "./policy/limits.js";
import { readRegularFile, readTextWithin, type ReadText } from "./policy/read-file.js";
import { VERSION } from "./version.js";
import { selfProgram } from "./exec/self.js";

export interface FileInput {
  path: string;
  digest: string;
}

export interface GroupFileInput extends FileInput {
  group: string;
  /** Its warnings (host bits), formatted: shown again when it is not parsed again. */
  warnings: string[];
}

export interface CompileInputs {
  /** The program that compiled (see codeIdentity). */
  code: string;
  policy: FileInput;
  groupFiles: GroupFileInput[];
  facts: string;
}

/** The inputs a desired state came from, and the policy's and the compile's warnings. */
export interface CompileOrigin {
  inputs: CompileInputs;
  warnings: string[];
}

export function sameInputs(a: CompileInputs | undefined, b: CompileInputs | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function digest(content: string | Buffer): string {
  return createHash("sha256").update(content).digest("hex");
}

export function factsDigest(facts: Facts): string {
  return digest(JSON.stringify(facts));
}

/** A reader for the policy loader that keeps what it read, to digest it afterwards. */
export class RecordingReader {
  readonly texts = new Map<string, string>();

  readonly read: ReadText = async (file, limit) => {
    const text = await readTextWithin(file, limit);
    this.texts.set(file, text);
    return text;
  };
}

/** The recorded inputs read again: which group files changed, with their new text. */
export interface Reread {
  changed: { input: GroupFileInput; text: string }[];
}

/**
 * Undefined when the recorded state cannot be built on: another program or policy file, the policy
 * file changed, or a file cannot be read (a full compile then reports it where the policy names it).
 */
export async function reread(inputs: CompileInputs, policyFile: string): Promise<Reread | undefined> {
  // A record from an older dockwall may lack fields: it is simply not built on.
  if (inputs?.policy?.path !== policyFile || !Array.isArray(inputs.groupFiles) || inputs.code !== (await codeIdentity())) return undefined;
  try {
    // Read as the loader reads (regular files only, bounded): a FIFO put in a file's place must not hang here.
    const [policy, ...groups] = await Promise.all([
      readRegularFile(policyFile, POLICY_LIMIT),
      ...inputs.groupFiles.map((g) => readRegularFile(g.path, GROUP_FILE_LIMIT)),
    ]);
    if (digest(policy!) !== inputs.policy.digest) return undefined;
    return {
      changed: inputs.groupFiles.flatMap((input, i) => (digest(groups[i]!) === input.digest ? [] : [{ input, text: groups[i]!.toString("utf8") }])),
    };
  } catch {
    return undefined;
  }
}

/**
 * A recorded digest must not outlive the code that compiled it: the version, and the size and time of
 * the running program (a rebuild without a version bump, on a developer's machine).
 */
export async function codeIdentity(): Promise<string> {
  const program = selfProgram().code;
  if (program === undefined) return VERSION;
  try {
    const s = await stat(program);
    return `${VERSION} ${s.size} ${s.mtimeMs}`;
  } catch {
    return VERSION;
  }
}
