/**
 * The lab's policy and who must reach what under it: one table, asserted with real connections.
 * Clients (see lab.ts): trusted .10 / ::10 is in `office`; admin .30 / ::30 is in `admins` and
 * named literally for django; the stranger .20 / ::20 is nobody.
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";

export const LAB_POLICY = `# dockwall lab policy
groups:
  office: [198.18.0.8/29, "2001:db8:ff::10/124"]
  admins: { file: admins.list }
trusted: [office]
host:
  - port: 22            # "ssh" from anyone
  - port: 9100          # metrics, admins only
    from: [admins]
  - port: 53
    proto: udp
    from: [admins]
containers:
  - port: 8080          # web (8080 -> 80): public
  - port: 5353          # dns, udp
    proto: udp
    from: [admins]
  - container: django   # container-side port 8000, published as 8001
    port: 8000
    from: ["198.18.0.30", "2001:db8:ff::30"]
log: { drops: true, rate: 10/minute }
`;

export const ADMINS_LIST = `# admins
198.18.0.30
2001:db8:ff::30   # the same admin over IPv6
`;

export async function writeLabPolicy(dir: string, text = LAB_POLICY): Promise<string> {
  await writeFile(path.join(dir, "admins.list"), ADMINS_LIST);
  const file = path.join(dir, "dockwall.yaml");
  await writeFile(file, text);
  return file;
}

export type ClientName = "trusted" | "stranger" | "admin";

export interface Target {
  what: string;
  proto: "tcp" | "udp";
  port: number;
  /** Who may open a connection to it under LAB_POLICY. */
  allowed: ClientName[];
  /** A container address instead of the host's (direct routing). */
  container?: string;
}

const ALL: ClientName[] = ["trusted", "stranger", "admin"];

export const POLICY_TARGETS: Target[] = [
  { what: "host ssh 22 (public)", proto: "tcp", port: 22, allowed: ALL },
  { what: "host metrics 9100 (admins)", proto: "tcp", port: 9100, allowed: ["trusted", "admin"] },
  { what: "host dns 53/udp (admins)", proto: "udp", port: 53, allowed: ["trusted", "admin"] },
  { what: "web 8080->80 (public)", proto: "tcp", port: 8080, allowed: ALL },
  { what: "db 5432 (default deny)", proto: "tcp", port: 5432, allowed: ["trusted"] },
  { what: "django 8001->8000 (by name, admin)", proto: "tcp", port: 8001, allowed: ["trusted", "admin"] },
  { what: "api 8002 on appnet (default deny)", proto: "tcp", port: 8002, allowed: ["trusted"] },
  { what: "dns 5353/udp (admins)", proto: "udp", port: 5353, allowed: ["trusted", "admin"] },
  { what: "local 9090 (published on 127.0.0.1)", proto: "tcp", port: 9090, allowed: [] },
  { what: "web unpublished 9000 at its address (direct routing)", proto: "tcp", port: 9000, allowed: [], container: "web" },
  { what: "web container port 80 at its address (direct routing)", proto: "tcp", port: 80, allowed: [], container: "web" },
];

/** Without dockwall: what Docker alone lets through (every published port, to everyone). */
export const OPEN_WITHOUT_DOCKWALL: Target[] = [
  { what: "db 5432", proto: "tcp", port: 5432, allowed: ALL },
  { what: "web 8080", proto: "tcp", port: 8080, allowed: ALL },
  { what: "host metrics 9100", proto: "tcp", port: 9100, allowed: ALL },
];
