/**
 * Running `watch` as a service, ordered like the firewalls admins know (nftables.service,
 * firewalld): it starts before the network comes up (Before=network-pre.target) and before Docker,
 * and systemd considers it started only once rules are in the kernel (Type=notify, READY=1 sent
 * after the first apply, or after the fallback when the policy cannot be applied: daemon.ts). So at
 * boot no interface is up and Docker publishes nothing before dockwall holds. The unit is also
 * wanted by docker.service, so starting Docker by hand starts dockwall first.
 */
import { spawn } from "node:child_process";
import path from "node:path";

export const UNIT_NAME = "dockwall.service";

/**
 * Node flags for the long-running daemon. V8's young generation grows to 16 MiB semi-spaces and stays
 * committed: the idle daemon held ~95 MiB resident; with 1 MiB semi-spaces ~53 MiB (measured in the
 * lab, docs/WATCH-BENCHMARKS.md). Applies are rare and mostly reuse the recorded compile, so the
 * extra scavenges cost nothing noticeable. (The flag cannot be set from inside a running process.)
 */
export const DAEMON_NODE_FLAGS = ["--max-semi-space-size=1"];
export const UNIT_PATH = `/etc/systemd/system/${UNIT_NAME}`;
export const DEFAULT_UNIT_STATE_DIR = "/var/lib/dockwall";

/**
 * The node the service runs: found on systemd's PATH when it starts, not the binary that ran
 * `install`, so upgrading Node.js (a new versioned directory) does not break the service.
 */
export const NODE_FROM_PATH = ["/usr/bin/env", "node"];

/** systemd's PATH for system services (systemd.exec(5), "Environment variables in spawned processes"). */
export const SYSTEMD_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

export interface UnitOptions {
  /** The dockwall script, or the single executable, as an absolute path. */
  script: string;
  /**
   * script is the single executable: the unit runs it itself, and the node flags go in NODE_OPTIONS
   * (every argument of a single executable is its own, none is node's).
   */
  singleExecutable?: boolean;
  policy: string;
  /** Absolute; default /var/lib/dockwall (systemd's StateDirectory=). */
  stateDir?: string;
  /** watch --metrics ADDRESS:PORT */
  metrics?: string;
  /** The script or policy lives under /home or /root: ProtectHome=read-only instead of hiding it. */
  underHome?: boolean;
}

/** systemd quotes: a word with spaces or quotes is written in double quotes with \\ and " escaped. */
function quote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `"${word.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** A path in a unit setting that takes a list of paths: spaces as \x20 (systemd unescapes C escapes there). */
function pathSetting(p: string): string {
  return p.replace(/\\/g, "\\\\").replace(/ /g, "\\x20");
}

export function renderUnit(o: UnitOptions): string {
  const customStateDir = o.stateDir !== undefined && o.stateDir !== DEFAULT_UNIT_STATE_DIR;
  const exec = [
    ...(o.singleExecutable ? [] : [...NODE_FROM_PATH, ...DAEMON_NODE_FLAGS]),
    o.script,
    ...(customStateDir ? ["--state-dir", o.stateDir!] : []),
    "watch",
    "-c",
    o.policy,
    ...(o.metrics ? ["--metrics", o.metrics] : []),
  ]
    .map(quote)
    .join(" ")
    // systemd expands % specifiers and $VARIABLES in ExecStart=: a path must mean itself.
    .replace(/%/g, "%%")
    .replace(/\$/g, "$$$$");
  const stateDir = customStateDir
    ? `ReadWritePaths=${pathSetting(o.stateDir!)}`
    : "# The state directory, created root-only (0700) by systemd, and writable under ProtectSystem=strict.\nStateDirectory=dockwall\nStateDirectoryMode=0700";
  return `# Written by \`dockwall install\`; \`dockwall uninstall\` removes it.
[Unit]
Description=dockwall: keep this Docker host closed to all but what the policy allows
Documentation=https://www.npmjs.com/package/dockwall
# A firewall's place at boot: before any interface is up and before Docker publishes a port. Not
# After=network-online.target: that comes after network-pre.target, an ordering cycle.
DefaultDependencies=no
After=local-fs.target
Wants=network-pre.target
Before=network-pre.target docker.service shutdown.target
Conflicts=shutdown.target

[Service]
Type=notify
# READY=1 comes from systemd-notify, a child process: Node.js cannot send on a datagram socket, and
# systemd accepts READY=1 from a child only with NotifyAccess=all.
NotifyAccess=all
${o.singleExecutable ? `Environment=NODE_OPTIONS=${DAEMON_NODE_FLAGS.join(" ")}\n` : ""}ExecStart=${exec}
ExecReload=/bin/kill -HUP $MAINPID
# Stopping leaves the rules in place; a crash is restarted.
Restart=always
RestartSec=1
TimeoutStartSec=120
SyslogIdentifier=dockwall
# Log lines start with <3>, <4> or <6> (errors, warnings, info) when stdout is the journal.
SyslogLevelPrefix=yes

# Hardening (systemd-analyze security dockwall.service). dockwall runs iptables, ip6tables, ipset and
# nft (netlink, and iptables-legacy's raw socket: CAP_NET_ADMIN, CAP_NET_RAW), and talks to Docker's
# socket (owned by root: no capability needed). It loads no kernel module itself: the kernel loads
# netfilter modules on demand by itself, which ProtectKernelModules= does not stop.
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW
NoNewPrivileges=yes
ProtectSystem=strict
${stateDir}
# iptables-legacy takes /run/xtables.lock.
ReadWritePaths=/run
ProtectHome=${o.underHome ? "read-only" : "yes"}
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
# Other users' processes are hidden; /proc/net (this namespace's sockets, legacy table names) is not.
ProtectProc=invisible
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
UMask=0077
# Not MemoryDenyWriteExecute=: V8's JIT compiler writes the code it runs.

[Install]
WantedBy=multi-user.target docker.service
`;
}

/** What `install` does, as data: `--dry-run` prints it, a real install carries it out. */
export interface InstallSteps {
  unitFile: string;
  unit: string;
  /** Directories to create first (a custom state directory: ReadWritePaths= needs it to exist). */
  directories: string[];
  /** systemctl calls, in order; none for a unit directory other than systemd's (packaging, tests). */
  systemctl: string[][];
}

export function installSteps(o: UnitOptions & { unitDir: string; start: boolean }): InstallSteps {
  const unitFile = path.join(path.resolve(o.unitDir), UNIT_NAME);
  const systemd = unitFile === UNIT_PATH;
  return {
    unitFile,
    unit: renderUnit(o),
    directories: systemd && o.stateDir !== undefined && o.stateDir !== DEFAULT_UNIT_STATE_DIR ? [o.stateDir] : [],
    systemctl: systemd ? [["daemon-reload"], ["enable", UNIT_NAME], ...(o.start ? [["start", UNIT_NAME]] : [])] : [],
  };
}

/** A path under a home directory, which ProtectHome=yes would hide from the service. */
export function underHome(p: string): boolean {
  return /^\/(home|root)(\/|$)/.test(p) || p.startsWith("/run/user/");
}

/**
 * Tells systemd the service is ready (Type=notify). Outside systemd (no NOTIFY_SOCKET) it does
 * nothing. Through systemd-notify(1): node has no datagram unix sockets of its own.
 */
export function notifyReady(): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return Promise.resolve();
  return new Promise((resolve) => {
    const child = spawn("systemd-notify", ["--ready", `--pid=${process.pid}`], { stdio: "ignore" });
    child.on("error", () => resolve());
    child.on("exit", () => resolve());
  });
}
