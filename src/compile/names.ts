/** The names dockwall gives its chains and sets: one place, so render, apply and remove agree. */
import type { Family } from "../policy/types.js";

export const CHAINS = {
  /** filter INPUT jumps here: the host's own services, and published ports reached through docker-proxy. */
  input: "DOCKWALL-INPUT",
  inputOutside: "DOCKWALL-INPUT-OUTSIDE",
  /** mangle FORWARD jumps here: published container ports (DNATed by Docker), direct routing, routes. */
  forward: "DOCKWALL-FORWARD",
  forwardOutside: "DOCKWALL-FORWARD-OUTSIDE",
} as const;

/** ipset names are at most 31 characters; group names at most 24 (checked by the policy loader). */
export function setName(group: string, family: Family): string {
  return `dw${family === "ipv4" ? "4" : "6"}-${group}`;
}

/** A scratch set used to swap new members in atomically. */
export function scratchSetName(name: string): string {
  return `${name}.n`;
}

export function isDockwallSet(name: string): boolean {
  return /^dw[46]-/.test(name);
}

export function isDockwallChain(name: string): boolean {
  return name.startsWith("DOCKWALL-");
}
