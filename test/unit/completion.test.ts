/**
 * Completion scripts: every command and option --help shows is offered by each shell's script;
 * bash's and fish's actually complete (the shell runs the script and is asked), zsh's parses and
 * registers itself. The walk over the words is checked on a made-up program with nested commands.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Argument, Command } from "commander";
import { ProcessRunner } from "../../src/exec/runner.js";
import { describeProgram } from "../../src/cli-docs/commander.js";
import { bashCompletion } from "../../src/cli-docs/bash.js";
import { fishCompletion } from "../../src/cli-docs/fish.js";
import { zshCompletion } from "../../src/cli-docs/zsh.js";
import { dockwall, helpInventory } from "./cli-help.js";

const runner = new ProcessRunner();

async function script(shell: string): Promise<string> {
  const r = await dockwall(["completion", shell]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

async function inTemp<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "dockwall-completion-"));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What bash's completion function answers for each command line (the last word is the one being completed). */
async function bashComplete(text: string, lines: string[][]): Promise<string[][]> {
  return inTemp(async (dir) => {
    const file = path.join(dir, "completion.bash");
    await writeFile(file, text);
    const calls = lines.map((words) => `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _${words[0]}; printf '%s\\n' "\${COMPREPLY[*]}"`);
    const r = await runner.run("bash", ["--norc", "--noprofile", "-c", `set -u; cd ${dir}; source ${file}; ${calls.join("\n")}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "", "the script runs without a message, also under set -u");
    return r.stdout.split("\n").slice(0, lines.length).map((l) => (l === "" ? [] : l.split(" ")));
  });
}

/** What fish completes for each command line, by the words it offers. */
async function fishComplete(text: string, lines: string[], cwd?: string): Promise<string[][]> {
  return inTemp(async (dir) => {
    const file = path.join(dir, "completion.fish");
    await writeFile(file, text);
    const calls = lines.map((l) => `complete -C ${JSON.stringify(l)} | string replace -r '\\t.*' ''; echo '--end--'`);
    const r = await runner.run("fish", ["--no-config", "-c", `cd ${cwd ?? dir}; source ${file}; ${calls.join("; ")}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const out = r.stdout.split("--end--\n").slice(0, lines.length);
    return out.map((block) => block.split("\n").filter((w) => w !== ""));
  });
}

test("bash: every command --help lists is completed after dockwall, and every option of each command (its own and the program's) after -", async () => {
  const inventory = await helpInventory();
  const bash = await script("bash");
  const lines = [["dockwall", ""], ...inventory.commands.map((c) => ["dockwall", c, "-"]), ["dockwall", "-"]];
  const [commands, ...options] = await bashComplete(bash, lines);
  assert.deepEqual([...commands!].sort(), [...inventory.commands].sort());
  inventory.commands.forEach((c, i) => {
    const expected = new Set([...inventory.options.get(c)!, ...inventory.options.get("")!]);
    assert.deepEqual(new Set(options[i]), expected, `dockwall ${c} -<TAB>`);
  });
  assert.deepEqual(new Set(options[inventory.commands.length]), new Set(inventory.options.get("")), "dockwall -<TAB>");
  assert.ok(inventory.commands.length >= 12 && inventory.commands.includes("completion"), `read the commands from --help: ${inventory.commands.join(" ")}`);
});

test("bash: values are completed as what they are: files for --config, directories for --state-dir, the shells for completion, the commands for help", async () => {
  await inTemp(async (dir) => {
    const bash = await script("bash");
    await writeFile(path.join(dir, "policy.yaml"), "");
    await writeFile(path.join(dir, "plain"), "");
    const { mkdir } = await import("node:fs/promises");
    await mkdir(path.join(dir, "pdir"));
    const file = path.join(dir, "completion.bash");
    await writeFile(file, bash);
    const ask = (words: string[]) => `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _dockwall; printf '%s\\n' "\${COMPREPLY[*]}"`;
    const lines = [
      ["dockwall", "check", "-c", "p"],
      ["dockwall", "check", "--config", "=", "p"], // bash splits --config=p at the =
      ["dockwall", "--state-dir", "p"],
      ["dockwall", "apply", "--state-dir", "p"],
      ["dockwall", "completion", ""],
      ["dockwall", "completion", "bash", ""],
      ["dockwall", "help", "ex"],
      ["dockwall", "--state-dir", "check", ""], // check is the directory: a command still comes next
      ["dockwall", "check", "-c", "policy.yaml", "-"],
      ["dockwall", "man", ""],
    ];
    const r = await runner.run("bash", ["--norc", "--noprofile", "-c", `cd ${dir}; source ${file}; ${lines.map(ask).join("\n")}`]);
    assert.equal(r.code, 0, r.stderr);
    const got = r.stdout.split("\n");
    assert.deepEqual(got[0]!.split(" ").sort(), ["pdir", "plain", "policy.yaml"], "files (and directories on the way)");
    assert.deepEqual(got[1]!.split(" ").sort(), ["pdir", "plain", "policy.yaml"], "--config=VALUE");
    assert.equal(got[2], "pdir", "directories only");
    assert.equal(got[3], "pdir", "a program option after the command");
    assert.deepEqual(got[4]!.split(" "), ["bash", "zsh", "fish"]);
    assert.equal(got[5], "", "completion takes one shell");
    assert.equal(got[6], "explain");
    assert.ok(got[7]!.split(" ").includes("apply"), got[7]);
    assert.ok(got[8]!.split(" ").includes("--config"), got[8]);
    assert.deepEqual(got[9]!.split(" "), ["dockwall", "dockwall.yaml"]);
  });
});

test("fish: the script parses, and fish completes every command and every option of each command", async () => {
  const inventory = await helpInventory();
  const fish = await script("fish");
  const syntax = await inTemp(async (dir) => {
    await writeFile(path.join(dir, "c.fish"), fish);
    return runner.run("fish", ["--no-config", "--no-execute", path.join(dir, "c.fish")]);
  });
  assert.equal(syntax.code, 0, syntax.stderr);
  const lines = ["dockwall ", ...inventory.commands.map((c) => `dockwall ${c} -`), "dockwall --state-dir check ", "dockwall completion ", "dockwall help ex"];
  const [commands, ...rest] = await fishComplete(fish, lines);
  assert.deepEqual([...commands!].sort(), [...inventory.commands].sort());
  inventory.commands.forEach((c, i) => {
    const expected = new Set([...inventory.options.get(c)!, ...inventory.options.get("")!]);
    assert.deepEqual(new Set(rest[i]), expected, `dockwall ${c} -<TAB>`);
  });
  const [afterValue, shells, help] = rest.slice(inventory.commands.length);
  assert.deepEqual([...afterValue!].sort(), [...inventory.commands].sort(), "--state-dir's value is not taken for a command");
  assert.deepEqual([...shells!].sort(), ["bash", "fish", "zsh"]);
  assert.deepEqual(help, ["explain"]);
});

test("zsh: the script parses, registers _dockwall for dockwall after compinit, and names every command and option", async () => {
  const inventory = await helpInventory();
  const zsh = await script("zsh");
  await inTemp(async (dir) => {
    const file = path.join(dir, "_dockwall");
    await writeFile(file, zsh);
    const syntax = await runner.run("zsh", ["-n", file]);
    assert.equal(syntax.code, 0, syntax.stderr);
    const loaded = await runner.run("zsh", ["-f", "-c", `autoload -U compinit && compinit -u -d ${dir}/zcompdump && source ${file} && print -r -- $_comps[dockwall]`]);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.equal(loaded.stdout.trim(), "_dockwall");
  });
  for (const c of inventory.commands) {
    assert.match(zsh, new RegExp(`'${c}:`), `command ${c} is described`);
    const body = new RegExp(`\\n_dockwall_${c.replace(/-/g, "_")}\\(\\) \\{\\n([\\s\\S]*?)\\n\\}`).exec(zsh)?.[1];
    assert.ok(body, `a function for ${c}`);
    for (const o of [...inventory.options.get(c)!, ...inventory.options.get("")!]) assert.match(body, new RegExp(`[)']${o}[=+\\[]`), `${c} ${o}`);
  }
});

/** A program like the real one, with what it does not have yet: nested commands, a hidden one, variadic arguments. */
function madeUp(): Command {
  const p = new Command().name("tool").version("1.0").option("-d, --dir <dir>", "a directory");
  const remote = p.command("remote").description("remotes");
  remote.command("add").description("add one").argument("<name>", "its name").addArgument(new Argument("<kind>", "its kind").choices(["git", "http"])).option("--file <file>", "a file");
  remote.command("remove").alias("rm").description("remove one").argument("<names...>");
  p.command("secret", { hidden: true }).description("not shown");
  p.command("run").description("run it").option("--mode <mode>", "how").addOption(new Command().createOption("--level <n>", "level").choices(["1", "2"]));
  return p;
}

test("the description is what --help shows: nested commands, aliases, choices, no hidden command, commander's help command naming the others", () => {
  const d = describeProgram(madeUp());
  assert.deepEqual(d.commands.map((c) => c.name), ["remote", "run", "help"]);
  const remote = d.commands[0]!;
  assert.deepEqual(remote.commands.map((c) => [c.name, c.aliases]), [["add", []], ["remove", ["rm"]], ["help", []]]);
  assert.deepEqual(remote.commands[0]!.arguments.map((a) => [a.name, a.choices ?? null]), [["name", null], ["kind", ["git", "http"]]]);
  assert.deepEqual(d.commands[1]!.options.find((o) => o.long === "--level")?.choices, ["1", "2"]);
  assert.deepEqual(d.commands[2]!.arguments[0]!.choices, ["remote", "run", "help"]);
  assert.deepEqual(d.options.map((o) => o.flags), ["-V, --version", "-d, --dir <dir>", "-h, --help"]);
});

test("bash and fish walk nested commands as commander parses them: an option's value is never a command, aliases descend too", async () => {
  const d = describeProgram(madeUp());
  const [top, sub, kinds, afterValue, fileValue, alias, level] = await bashComplete(bashCompletion(d), [
    ["tool", ""],
    ["tool", "remote", ""],
    ["tool", "remote", "add", "origin", ""],
    ["tool", "-d", "remote", ""],
    ["tool", "remote", "add", "--file", "remote", "origin", ""],
    ["tool", "remote", "rm", "-"],
    ["tool", "run", "--level", ""],
  ]);
  assert.deepEqual(top, ["remote", "run", "help"]);
  assert.deepEqual(sub, ["add", "remove", "rm", "help"]);
  assert.deepEqual(kinds, ["git", "http"]);
  assert.deepEqual(afterValue, ["remote", "run", "help"]);
  assert.deepEqual(fileValue, ["git", "http"], "remote is --file's value, origin the <name>: <kind> comes next");
  assert.deepEqual(alias, ["-h", "--help", "-V", "--version", "-d", "--dir"]);
  assert.deepEqual(level, ["1", "2"]);

  const fish = await fishComplete(fishCompletion(d), ["tool ", "tool remote ", "tool remote add origin ", "tool -d remote ", "tool run --level ", "tool remote rm --"]);
  assert.deepEqual(fish.map((w) => [...w].sort()), [["help", "remote", "run"], ["add", "help", "remove", "rm"], ["git", "http"], ["help", "remote", "run"], ["1", "2"], ["--dir", "--help", "--version"]]);
  const zsh = await inTemp(async (dir) => {
    await writeFile(path.join(dir, "_tool"), zshCompletion(d));
    return runner.run("zsh", ["-n", path.join(dir, "_tool")]);
  });
  assert.equal(zsh.code, 0, zsh.stderr);
});

test("quoting: a description with quotes, brackets, colons and backslashes stays text in every script", async () => {
  const p = new Command().name("tool").option("--x <a:b>", `it's "odd" [really]: a\\b $(touch /tmp/never) \`x\``);
  p.command("go").description("it's: [odd]");
  const d = describeProgram(p);
  const bash = await bashComplete(bashCompletion(d), [["tool", "--"]]);
  assert.deepEqual(bash[0], ["--x", "--help"]);
  const fish = await fishComplete(fishCompletion(d), ["tool --"]);
  assert.deepEqual([...fish[0]!].sort(), ["--help", "--x"]);
  await inTemp(async (dir) => {
    await writeFile(path.join(dir, "_tool"), zshCompletion(d));
    const r = await runner.run("zsh", ["-n", path.join(dir, "_tool")]);
    assert.equal(r.code, 0, r.stderr);
  });
  await assert.rejects(readFile("/tmp/never"), "nothing in a description ran");
});
