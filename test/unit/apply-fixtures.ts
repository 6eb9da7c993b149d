/** What the apply tests share: a fake host with Docker's rules, a desired state from a policy, a state directory. */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { FakeNetfilter } from "./fake-netfilter.js";
import { CommandNotFoundError, type Runner } from "../../src/exec/runner.js";
import { MemoryLock } from "../../src/apply/lock.js";
import { StateStore } from "../../src/apply/state-store.js";
import { render, type DesiredState } from "../../src/backends/rendered.js";
import { compile } from "../../src/compile/index.js";
import type { Facts } from "../../src/facts/types.js";
import type { Policy } from "../../src/policy/types.js";
import { DOCKER_20_10_SAVE } from "./docker-layout.js";

const facts: Facts = {
  docker: { reachable: true, containers: [], networks: [] },
  host: { interfaces: [], iptables: "nft" },
};

export function desiredFor(p: Policy): DesiredState {
  return render(compile(p, facts));
}

export function dockerHost(): FakeNetfilter {
  const fake = new FakeNetfilter();
  fake.loadSave("ipv4", DOCKER_20_10_SAVE);
  return fake;
}

/** Runs `body` with a throwaway state directory and a lock of its own. */
export async function withStore(body: (store: StateStore, lock: MemoryLock) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-unit-"));
  try {
    await body(new StateStore(dir), new MemoryLock());
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A host whose iptables says it is the legacy variant: no `nft monitor` is started for it (the
 * daemon would watch this machine's real ruleset otherwise). `hide`: commands that are not installed.
 */
export function legacyHost(fake: FakeNetfilter, hide?: RegExp): Runner {
  return {
    run: (cmd, args, opts) => {
      if (hide?.test(cmd)) return Promise.reject(new CommandNotFoundError(cmd));
      if (cmd === "iptables" && args[0] === "--version") return Promise.resolve({ code: 0, stdout: "iptables v1.8.9 (legacy)\n", stderr: "" });
      return fake.run(cmd, args, opts);
    },
  };
}
