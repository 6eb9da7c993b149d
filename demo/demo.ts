/**
 * The demo: a lab Docker host (real dockerd 20.10 in a network namespace) whose published database
 * is reachable by a stranger, over IPv4 and IPv6; then dockwall applies a policy and the same real
 * connections show the database closed while the public web port stays open.
 */
import { Lab, type Client, type Family } from "../test/lab/lab.js";
import { writeLabPolicy } from "../test/lab/expectations.js";

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

async function show(lab: Lab, rows: { label: string; client: Client; port: number }[]): Promise<boolean[]> {
  const specs = rows.flatMap((r) => (["ipv4", "ipv6"] as Family[]).map((family) => ({ client: r.client, family, proto: "tcp" as const, port: r.port })));
  const results = await lab.probeMany(specs);
  rows.forEach((r, i) => {
    const v4 = results[2 * i] ? "OPEN  " : "closed";
    const v6 = results[2 * i + 1] ? "OPEN  " : "closed";
    console.log(`  ${r.label.padEnd(44)} IPv4 ${v4}   IPv6 ${v6}`);
  });
  return results;
}

async function main(): Promise<number> {
  console.log(bold("Building the lab: an outside segment, three clients, a Docker host running dockerd 20.10 ..."));
  const lab = await Lab.create({ ipv6Mode: "proxy", ipForwardBeforeDocker: false });
  try {
    const { stranger, trusted } = lab.clients;
    const rows = [
      { label: `stranger ${stranger.ipv4} -> database :5432`, client: stranger, port: 5432 },
      { label: `stranger ${stranger.ipv4} -> web :8080`, client: stranger, port: 8080 },
      { label: `trusted  ${trusted.ipv4} -> database :5432`, client: trusted, port: 5432 },
    ];
    console.log(bold("\nDocker alone (`docker run -p 5432:5432 db`), real connections from the outside segment:"));
    const before = await show(lab, rows);
    if (!before.every(Boolean)) {
      console.log("\nUNEXPECTED: Docker alone should let everyone in (see the table above).");
      return 1;
    }

    const policy = await writeLabPolicy(lab.workDir);
    console.log(bold(`\n$ dockwall plan -c ${policy}`));
    const plan = await lab.dockwall(["plan", "-c", policy]);
    process.stdout.write(plan.stdout.split("\n").slice(0, 12).join("\n") + "\n  ...\n");
    console.log(bold(`$ dockwall apply -c ${policy}`));
    const applied = await lab.dockwall(["apply", "-c", policy]);
    process.stdout.write(applied.stdout + applied.stderr);
    if (applied.code !== 0) return 1;

    console.log(bold("\nWith dockwall (office group trusted, web public, everything else closed):"));
    const after = await show(lab, rows);
    const expected = [false, false, true, true, true, true];
    const ok = after.every((v, i) => v === expected[i]);
    console.log(ok ? bold("\nThe database is closed to the stranger over IPv4 and IPv6; the web port and the trusted office still get in.") : "\nUNEXPECTED: see the table above.");
    if (!ok) return 1;

    // Who can reach what, read back from the live kernel rules, and why the stranger is refused.
    console.log(bold(`\n$ dockwall audit -c ${policy}`));
    const audit = await lab.dockwall(["audit", "-c", policy]);
    process.stdout.write(audit.stdout + audit.stderr);
    console.log(bold(`\n$ dockwall explain ${stranger.ipv4} tcp/5432`));
    const explain = await lab.dockwall(["explain", stranger.ipv4, "tcp/5432"]);
    process.stdout.write(explain.stdout + explain.stderr);
    return audit.code === 0 && explain.code === 3 ? 0 : 1;
  } finally {
    await lab.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`demo failed: ${e.message}`);
    process.exit(1);
  },
);
