/**
 * The lab ends every process it started, even those it never saw the pid of: a host service's socat
 * (the child of a `sh -c`), a forking service's children, dockerd's containerd. Once 18 host services
 * outlived a run of the suites, orphaned, their namespaces gone.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Lab } from "./lab.js";
import { findLeftovers } from "./leftovers.js";

describe("lab clean-up", () => {
  it("destroy() ends every process the lab started, with nothing left to kill by its tag", async () => {
    const lab = await Lab.create({ ipv6Mode: "proxy", ipForwardBeforeDocker: false });
    let destroyed = false;
    try {
      // A connection makes a forking service fork: its child is a process the lab never saw.
      assert.equal(await lab.probe(lab.clients.stranger, "ipv4", "tcp", 22), true, "the lab's ssh service answers");
      const running = await findLeftovers(lab.id);
      const commands = running.map((p) => p.command);
      // The tag reaches what the orderly stop must end: without it this test could not see a leak.
      assert.ok(commands.filter((c) => /^socat /.test(c)).length >= 3, `host services tagged: ${commands.join("; ")}`);
      assert.ok(commands.some((c) => /dockerd/.test(c)), `dockerd tagged: ${commands.join("; ")}`);
      const killed = await lab.destroy();
      destroyed = true;
      assert.deepEqual(killed, [], "processes the orderly stop left running");
      assert.deepEqual(await findLeftovers(lab.id), []);
    } finally {
      if (!destroyed) await lab.destroy();
    }
  });
});
