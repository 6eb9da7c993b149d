/**
 * Running `watch` as a service. The unit starts before docker.service, and systemd considers it
 * started only once the first apply is in the kernel (Type=notify, READY=1 sent after it): so at
 * boot Docker publishes nothing before the policy holds. The unit is also wanted by docker.service,
 * so starting Docker by hand starts dockwall first.
 */
import { spawn } from "node:child_process";

export const UNIT_NAME = "dockwall.service";

/**
 * Node flags for the long-running daemon. V8's young generation grows to 16 MiB semi-spaces and stays
 * committed: the idle daemon held ~95 MiB resident; with 1 MiB semi-spaces ~53 MiB (measured in the
 * lab, docs/WATCH-BENCHMARKS.md). Applies are rare and mostly reuse the recorded compile, so the
 * extra scavenges cost nothing noticeable. (The flag cannot be set from inside a running process.)
 */
export const DAEMON_NODE_FLAGS = ["--max-semi-space-size=1"];
export const UNIT_PATH = `/etc/systemd/system/${UNIT_NAME}`;

export interface UnitOptions {
  /** The node binary and the dockwall script, as absolute paths. */
  node: string;
  script: string;
  policy: string;
  stateDir?: string;
  /** watch --metrics ADDRESS:PORT */
  metrics?: string;
}

/** systemd quotes: a word with spaces or quotes is written in double quotes with \\ and " escaped. */
function quote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `"${word.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

export function renderUnit(o: UnitOptions): string {
  const exec = [o.node, ...DAEMON_NODE_FLAGS, o.script, ...(o.stateDir ? ["--state-dir", o.stateDir] : []), "watch", "-c", o.policy, ...(o.metrics ? ["--metrics", o.metrics] : [])].map(quote).join(" ");
  return `# Written by \`dockwall install\`; \`dockwall uninstall\` removes it.
[Unit]
Description=dockwall: keep this Docker host closed to all but what the policy allows
Documentation=https://www.npmjs.com/package/dockwall
Wants=network-online.target
After=network-online.target
Before=docker.service

[Service]
Type=notify
# READY=1 comes from systemd-notify, a child process: systemd must accept it from there.
NotifyAccess=all
ExecStart=${exec}
ExecReload=/bin/kill -HUP $MAINPID
# Stopping leaves the rules in place; a crash is restarted.
Restart=always
RestartSec=1
TimeoutStartSec=120

[Install]
WantedBy=multi-user.target docker.service
`;
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
