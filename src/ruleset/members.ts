/**
 * Set members read from the applied record stay one string until something needs them as a list.
 * A no-op apply needs only their count: parsing 100,000 JSON strings and collecting them afterwards
 * was ~40 ms of it. The list appears, once, on first use of `members`.
 */
import type { Family } from "../policy/types.js";
import type { IpSetSpec } from "./types.js";

import { createHash } from "node:crypto";

const COUNT = Symbol("dockwall.memberCount");
const TEXT = Symbol("dockwall.memberText");

/** A set whose members are `text` split at newlines, done on first use; `count` is known now. */
export function lazySet(name: string, family: Family, text: string, count: number): IpSetSpec {
  let list: string[] | undefined;
  const spec = { name, family } as IpSetSpec;
  Object.defineProperty(spec, "members", { enumerable: true, get: () => (list ??= text === "" ? [] : text.split("\n")) });
  Object.defineProperty(spec, COUNT, { value: count });
  Object.defineProperty(spec, TEXT, { value: text });
  return spec;
}

/** The number of members, without building the list of a lazy set. */
export function memberCount(set: IpSetSpec): number {
  return (set as IpSetSpec & { [COUNT]?: number })[COUNT] ?? set.members.length;
}

const digests = new WeakMap<IpSetSpec, string>();

/**
 * The members as a digest, in their order (a lazy set's text is hashed as it is: no list is built).
 * Equal digests: the same members. Different ones may still be the same members in another order,
 * which a caller then finds out by comparing the lists. Kept per set: sets are not changed once made.
 */
export function membersDigest(set: IpSetSpec): string {
  let d = digests.get(set);
  if (d === undefined) {
    const text = (set as IpSetSpec & { [TEXT]?: string })[TEXT] ?? set.members.join("\n");
    d = createHash("sha256").update(text).digest("hex");
    digests.set(set, d);
  }
  return d;
}

/** The same set by name, family and members (see membersDigest). */
export function sameSet(a: IpSetSpec, b: IpSetSpec): boolean {
  return a === b || (a.name === b.name && a.family === b.family && memberCount(a) === memberCount(b) && membersDigest(a) === membersDigest(b));
}
