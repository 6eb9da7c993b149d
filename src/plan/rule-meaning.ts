/**
 * What one of dockwall's rules means at policy level: "22/tcp is open to group office", "eth0 is an
 * outside interface", "refused packets are logged". Read back from the rule itself, matches first
 * (the ports, protocol and source a rule really tests) and its comment only for what no match holds
 * (a container's name and port). A rule that does not have exactly the shape render.ts writes (a
 * hand-made rule, an edited one) means nothing here: it is `unknown`, and the summary says so rather
 * than guess. Pure.
 */
import type { Family } from "../policy/types.js";
import { entryOfComment } from "../backends/iptables/entry-tag.js";
import { words } from "../trace/rule.js";
import { CHAINS } from "../compile/names.js";

/** What an opening lets in. */
export type Target =
  | { kind: "host"; proto: string; ports: string }
  | { kind: "published"; proto: string; ports: string; hostIp?: string; container?: string; containerPort?: string }
  | { kind: "trusted" }
  | { kind: "swarm" }
  | { kind: "ping" }
  | { kind: "route"; in: string; out: string };

export type Setting = "outside" | "inside" | "default" | "log";

export type Meaning =
  /** `source` is "anyone", "group NAME" or an address or network; none for a route. */
  | { kind: "opening"; target: Target; source?: string }
  | { kind: "setting"; setting: Setting; value: string }
  /** Rules every dockwall chain has (replies, INVALID, neighbour discovery, loopback): no policy choice. */
  | { kind: "base"; what: string }
  | { kind: "unknown" };

/** The options of a rule as iptables-save prints them, or undefined if one is not of render.ts's. */
interface Options {
  values: Map<string, string>;
  target: string;
  goto: boolean;
}

/** Options render.ts writes, with how many words of value follow each. */
const VALUE_WORDS: Record<string, number> = {
  "-s": 1,
  "-d": 1,
  "-i": 1,
  "-o": 1,
  "-p": 1,
  "-m": 1,
  "--dport": 1,
  "--icmp-type": 1,
  "--icmpv6-type": 1,
  "--match-set": 2,
  "--ctstate": 1,
  "--ctorigdst": 1,
  "--ctorigdstport": 1,
  "--ctdir": 1,
  "--limit": 1,
  "--comment": 1,
  "--reject-with": 1,
  "--log-prefix": 1,
};

function options(spec: string): Options | undefined {
  const w = words(spec);
  const values = new Map<string, string>();
  for (let i = 0; i < w.length; i++) {
    const opt = w[i]!;
    if (opt === "-j" || opt === "-g") {
      const target = w[i + 1];
      if (target === undefined) return undefined;
      // A target's own options (--reject-with, --log-prefix) follow it.
      for (i += 2; i < w.length; i += 2) {
        if (VALUE_WORDS[w[i]!] !== 1 || w[i + 1] === undefined) return undefined;
        values.set(w[i]!, w[i + 1]!);
      }
      return { values, target, goto: opt === "-g" };
    }
    const n = VALUE_WORDS[opt];
    if (n === undefined || i + n >= w.length) return undefined;
    if (opt === "-m") {
      i++;
      continue;
    }
    if (values.has(opt)) return undefined;
    const value = w.slice(i + 1, i + 1 + n).join(" ");
    // A comment opens with its policy entry's tag ("[host-3f2a9c1b] host 22/tcp"): the meaning is in what follows.
    values.set(opt, opt === "--comment" ? descriptionOf(value) : value);
    i += n;
  }
  return undefined;
}

/** A comment without its entry tag (entry-tag.ts); an untagged comment of an older dockwall as it is. */
function descriptionOf(comment: string): string {
  const entry = entryOfComment(comment);
  if (entry === undefined) return comment;
  // A rule whose tag says it all carries no description ("[loopback]", "[neighbour-discovery]"): the tag, in words.
  return comment.slice(entry.length + 2).replace(/^ /, "") || entry.replace(/-/g, " ");
}

/** An address as a person writes it: no /32 or /128 on a single host. */
export function plainAddress(cidr: string): string {
  return cidr.replace(/\/(32|128)$/, "");
}

const GROUP_SET: Record<Family, RegExp> = { ipv4: /^dw4-([A-Za-z0-9_-]{1,24}) src$/, ipv6: /^dw6-([A-Za-z0-9_-]{1,24}) src$/ };

/** The source a rule tests, or undefined if it tests one in a way render.ts never writes. */
function source(o: Options, family: Family): string | undefined {
  const s = o.values.get("-s");
  const set = o.values.get("--match-set");
  if (s !== undefined && set !== undefined) return undefined;
  if (s !== undefined) return plainAddress(s);
  if (set !== undefined) {
    const m = GROUP_SET[family].exec(set);
    return m ? `group ${m[1]}` : undefined;
  }
  return "anyone";
}

/** `8000:8010` as the policy writes it: `8000-8010`. */
function portsOf(text: string | undefined): string | undefined {
  if (text === undefined || !/^\d+(:\d+)?$/.test(text)) return undefined;
  return text.replace(":", "-");
}

const UNKNOWN: Meaning = { kind: "unknown" };

/** Only these options, and no others, may appear in a rule of this shape. */
function only(o: Options, allowed: string[]): boolean {
  return [...o.values.keys()].every((k) => allowed.includes(k));
}

const SOURCE = ["-s", "--match-set"];

export function ruleMeaning(family: Family, chain: string, spec: string): Meaning {
  const o = options(spec);
  if (o === undefined) return UNKNOWN;
  if (chain === CHAINS.input || chain === CHAINS.forward) return entryMeaning(o, chain);
  if (chain === CHAINS.inputOutside || chain === CHAINS.forwardOutside) return outsideMeaning(o, family, chain === CHAINS.inputOutside);
  return UNKNOWN;
}

/** The first chains: which interfaces are outside (filtered), which are passed untouched, routes. */
function entryMeaning(o: Options, chain: string): Meaning {
  const outside = chain === CHAINS.input ? CHAINS.inputOutside : CHAINS.forwardOutside;
  const iface = o.values.get("-i");
  const comment = o.values.get("--comment");
  if (o.goto && o.target === outside) {
    if (iface === undefined && only(o, ["--comment"])) return { kind: "setting", setting: "outside", value: "*" };
    if (iface !== undefined && only(o, ["-i", "--comment"])) return { kind: "setting", setting: "outside", value: iface };
    return UNKNOWN;
  }
  if (o.goto || o.target !== "RETURN" || iface === undefined) return UNKNOWN;
  const out = o.values.get("-o");
  if (out !== undefined) {
    return only(o, ["-i", "-o", "--comment"]) && comment?.startsWith("route ") ? { kind: "opening", target: { kind: "route", in: iface, out } } : UNKNOWN;
  }
  if (!only(o, ["-i", "--comment"])) return UNKNOWN;
  // Loopback is passed exactly when every interface is outside (no `interfaces:`): part of that setting.
  if (chain === CHAINS.input && iface === "lo" && comment?.startsWith("loopback")) return { kind: "setting", setting: "outside", value: "*" };
  if (comment?.startsWith("from Docker bridges")) return { kind: "setting", setting: "inside", value: iface };
  return UNKNOWN;
}

function outsideMeaning(o: Options, family: Family, hostChain: boolean): Meaning {
  const comment = o.values.get("--comment") ?? "";
  if (o.goto) return UNKNOWN;
  if (o.target === "LOG") {
    const rate = o.values.get("--limit");
    return rate !== undefined && only(o, ["--limit", "--log-prefix", "--comment"]) ? { kind: "setting", setting: "log", value: rate } : UNKNOWN;
  }
  if (o.target === "REJECT" && hostChain && comment.startsWith("default reject") && only(o, ["-p", "--comment", "--reject-with"])) {
    return { kind: "setting", setting: "default", value: "reject" };
  }
  if (o.target === "DROP") {
    if (comment.startsWith("default drop") && only(o, ["--comment"])) {
      // The forward chain always drops (REJECT exists only in filter): the host chain's says what the policy chose.
      return hostChain ? { kind: "setting", setting: "default", value: "drop" } : { kind: "base", what: "default drop" };
    }
    if (only(o, ["--ctstate", "--comment"]) && o.values.get("--ctstate") === "INVALID") return { kind: "base", what: "invalid" };
    if (!hostChain && only(o, ["--ctorigdst", "--comment"]) && comment.startsWith("published on loopback")) return { kind: "base", what: "published on loopback" };
    return UNKNOWN;
  }
  if (o.target !== "RETURN") return UNKNOWN;
  if (only(o, ["--ctstate", "--comment"]) && o.values.get("--ctstate") === "RELATED,ESTABLISHED") return { kind: "base", what: "replies" };
  const proto = o.values.get("-p");
  const icmp = o.values.get(family === "ipv4" ? "--icmp-type" : "--icmpv6-type");
  if (hostChain && icmp !== undefined && only(o, ["-p", "--icmp-type", "--icmpv6-type", "--comment"])) {
    if (family === "ipv6" && proto === "ipv6-icmp" && ["133", "134", "135", "136"].includes(icmp)) return { kind: "base", what: "neighbour discovery" };
    if ((family === "ipv4" ? proto === "icmp" && icmp === "8" : proto === "ipv6-icmp" && icmp === "128") && comment.startsWith("ping")) {
      return { kind: "opening", target: { kind: "ping" }, source: "anyone" };
    }
    return UNKNOWN;
  }
  const from = source(o, family);
  if (from === undefined) return UNKNOWN;
  // Forwarded openings are for connections Docker DNATed, and only those.
  const dnat = hostChain ? o.values.get("--ctstate") === undefined : o.values.get("--ctstate") === "DNAT";
  if (!dnat) return UNKNOWN;
  if (comment.startsWith("trusted") && only(o, [...SOURCE, "--ctstate", "--comment"])) {
    return { kind: "opening", target: { kind: "trusted" }, source: from };
  }
  if (comment.startsWith("swarm ") && hostChain && only(o, [...SOURCE, "-p", "--dport", "--comment"])) {
    return { kind: "opening", target: { kind: "swarm" }, source: from };
  }
  if (proto !== "tcp" && proto !== "udp") return UNKNOWN;
  if (comment.startsWith("host ") && hostChain && only(o, [...SOURCE, "-p", "--dport", "--comment"])) {
    const ports = portsOf(o.values.get("--dport"));
    return ports === undefined ? UNKNOWN : { kind: "opening", target: { kind: "host", proto, ports }, source: from };
  }
  const named = /^container (?:(\S+) )?(\d+(?:-\d+)?)\/(?:tcp|udp)/.exec(comment);
  if (named === null) return UNKNOWN;
  const allowed = hostChain ? [...SOURCE, "-d", "-p", "--dport", "--comment"] : [...SOURCE, "-p", "--ctstate", "--ctorigdst", "--ctorigdstport", "--ctdir", "--comment"];
  if (!only(o, allowed) || (!hostChain && o.values.get("--ctdir") !== "ORIGINAL")) return UNKNOWN;
  const ports = portsOf(o.values.get(hostChain ? "--dport" : "--ctorigdstport"));
  if (ports === undefined) return UNKNOWN;
  const hostIp = hostChain ? o.values.get("-d") : o.values.get("--ctorigdst");
  const target: Target = {
    kind: "published",
    proto,
    ports,
    ...(hostIp !== undefined ? { hostIp: plainAddress(hostIp) } : {}),
    ...(named[1] !== undefined ? { container: named[1], containerPort: named[2]! } : {}),
  };
  return { kind: "opening", target, source: from };
}

/** One key per distinct target: the same opening in both families and both chains is one. */
export function targetKey(t: Target): string {
  return JSON.stringify(t, Object.keys(t).sort());
}

/** A target as an admin reads it: "22/tcp", "8080 (web:80/tcp)", "published 8000-8010/tcp". */
export function describeTarget(t: Target): string {
  switch (t.kind) {
    case "host":
      return `${t.ports}/${t.proto}`;
    case "published": {
      const at = t.hostIp === undefined ? "" : `${t.hostIp.includes(":") ? `[${t.hostIp}]` : t.hostIp}:`;
      return t.container === undefined ? `published ${at}${t.ports}/${t.proto}` : `${at}${t.ports} (${t.container}:${t.containerPort}/${t.proto})`;
    }
    case "trusted":
      return "every port (trusted)";
    case "swarm":
      return "the swarm ports";
    case "ping":
      return "ping";
    case "route":
      return `forwarding from ${t.in} to ${t.out}`;
  }
}
