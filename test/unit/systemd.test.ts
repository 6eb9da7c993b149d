/** The service unit: ordered before Docker, ready only after the first apply, paths quoted for systemd. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { renderUnit } from "../../src/daemon/systemd.js";

test("the unit starts watch before docker.service, as a notify service wanted by Docker", () => {
  const unit = renderUnit({ node: "/usr/bin/node", script: "/usr/lib/node_modules/dockwall/dist/dockwall.cjs", policy: "/etc/dockwall/dockwall.yaml" });
  const line = (key: string) => unit.split("\n").filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
  assert.deepEqual(line("Before"), ["docker.service"]);
  assert.deepEqual(line("After"), ["network-online.target"]);
  assert.deepEqual(line("Type"), ["notify"]);
  assert.deepEqual(line("NotifyAccess"), ["all"]);
  assert.deepEqual(line("WantedBy"), ["multi-user.target docker.service"]);
  assert.deepEqual(line("ExecStart"), ["/usr/bin/node --max-semi-space-size=1 /usr/lib/node_modules/dockwall/dist/dockwall.cjs watch -c /etc/dockwall/dockwall.yaml"]);
});

test("paths with spaces or quotes are quoted the way systemd unquotes them", () => {
  const unit = renderUnit({
    node: "/opt/node 20/bin/node",
    script: "/srv/dock\"wall/dockwall.cjs",
    policy: "/etc/dockwall/my policy.yaml",
    stateDir: "/var/lib/dockwall",
    metrics: "[::1]:9273",
  });
  const exec = unit.split("\n").find((l) => l.startsWith("ExecStart="))!;
  assert.equal(exec, 'ExecStart="/opt/node 20/bin/node" --max-semi-space-size=1 "/srv/dock\\"wall/dockwall.cjs" --state-dir /var/lib/dockwall watch -c "/etc/dockwall/my policy.yaml" --metrics "[::1]:9273"');
});
