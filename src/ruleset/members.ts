/**
 * Set members read from the applied record stay one string until something needs them as a list.
 * A no-op apply needs only their count: parsing 100,000 JSON strings and collecting them afterwards
 * was ~40 ms of it. The list appears, once, on first use of `members`.
 */
import type { Family } from "../policy/types.js";
import type { IpSetSpec } from "./types.js";

const COUNT = Symbol("dockwall.memberCount");

/** A set whose members are `text` split at newlines, done on first use; `count` is known now. */
export function lazySet(name: string, family: Family, text: string, count: number): IpSetSpec {
  let list: string[] | undefined;
  const spec = { name, family } as IpSetSpec;
  Object.defineProperty(spec, "members", { enumerable: true, get: () => (list ??= text === "" ? [] : text.split("\n")) });
  Object.defineProperty(spec, COUNT, { value: count });
  return spec;
}

/** The number of members, without building the list of a lazy set. */
export function memberCount(set: IpSetSpec): number {
  return (set as IpSetSpec & { [COUNT]?: number })[COUNT] ?? set.members.length;
}
