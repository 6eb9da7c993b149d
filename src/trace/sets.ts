/**
 * Where the tracer's `set` matches get their answers. From members in memory (what `ipset save`
 * printed, or what an apply is about to load), or from the kernel one address at a time with
 * `ipset test` (3 ms, where reading and indexing 100,000 members took ~0.25 s): the walk is pure and
 * synchronous, so a lookup not made yet stops it with MissingLookup, the driver (traceResolving)
 * asks the kernel and walks again.
 */
import type { Netfilter } from "../backends/netfilter.js";
import type { LiveSet, SetHeader } from "../backends/ipset.js";
import { AddressSet } from "./address-set.js";
import type { SetView } from "./rule.js";
import type { RuleWalker, TraceResult } from "./trace.js";
import type { Probe } from "./packet.js";

export class MissingLookup extends Error {
  constructor(
    readonly set: string,
    readonly address: string,
  ) {
    super(`membership of ${address} in set ${set} not looked up`);
  }
}

export interface TraceSets {
  get(name: string): SetView | undefined;
  /** Makes `get(name).has(address)` answerable. */
  resolve(name: string, address: string): Promise<void>;
  /** One member, for audit's stand-in sources; undefined for an empty set. */
  first(name: string): Promise<string | undefined>;
}

const dimensionsOf = (type: string) => type.split(",").length;

/** Sets whose members are known (ipset save, or a desired state). */
export function memberSets(sets: Map<string, Pick<LiveSet, "name" | "type" | "family" | "members">>): TraceSets {
  const built = new Map<string, SetView>();
  return {
    get(name) {
      let view = built.get(name);
      const live = sets.get(name);
      if (view === undefined && live !== undefined) {
        const dimensions = dimensionsOf(live.type);
        // A set of address,port pairs (or more) is reported unknown where used, not matched by half.
        const members = new AddressSet(dimensions === 1 ? live.members : [], live.family);
        view = { family: live.family, dimensions, has: (a) => members.has(a) };
        built.set(name, view);
      }
      return view;
    },
    resolve: async () => undefined,
    first: async (name) => sets.get(name)?.members[0],
  };
}

/** Sets asked of the kernel: headers from `ipset list -t`, members one `ipset test` at a time. */
export function kernelSets(nf: Netfilter, headers: Map<string, SetHeader>): TraceSets {
  const answers = new Map<string, boolean>();
  return {
    get(name) {
      const h = headers.get(name);
      if (h === undefined) return undefined;
      return {
        family: h.family,
        dimensions: dimensionsOf(h.type),
        has: (address) => {
          const a = answers.get(`${name} ${address}`);
          if (a === undefined) throw new MissingLookup(name, address);
          return a;
        },
      };
    },
    async resolve(name, address) {
      if (!answers.has(`${name} ${address}`)) answers.set(`${name} ${address}`, await nf.ipsetTest(name, address));
    },
    first: (name) => nf.ipsetFirstMember(name),
  };
}

/** Traces, asking the kernel for each set membership the walk needs, until it needs none. */
export async function traceResolving(walker: RuleWalker, probe: Probe): Promise<TraceResult> {
  for (let asked = 0; asked < 1000; asked++) {
    try {
      return walker.trace(probe);
    } catch (e) {
      if (!(e instanceof MissingLookup)) throw e;
      await walker.sets.resolve(e.set, e.address);
    }
  }
  throw new Error("internal: the trace kept asking for set lookups");
}
