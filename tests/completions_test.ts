/**
 * `socketproxy completions bash|zsh|fish`: the bash script, loaded into a
 * real bash, completes the commands, each command's flags (exactly those of
 * its settings table) and their values; the zsh and fish scripts parse in
 * their shells and, in fish, complete too. zsh and fish are checked where
 * they are installed, and reported as skipped with the reason elsewhere.
 */

import assert from "node:assert/strict";
import { decoder, installed, runMain } from "./_helpers.ts";
import { commandFlags } from "../lib/commands/settings.ts";
import { SERVER_COMMAND } from "../lib/commands/server.ts";
import { WEB_COMMAND } from "../lib/commands/web.ts";

/** Where the scripts and the shells' home go; removed when the tests end. */
const DIR = await Deno.makeTempDir({ prefix: "socketproxy-completion-" });
globalThis.addEventListener("unload", () => Deno.removeSync(DIR, { recursive: true }));

/** The script `main.ts completions SHELL` prints, in a temporary file. */
async function script(shell: string): Promise<string> {
  const { code, stdout, stderr } = await runMain(["completions", shell]);
  assert.equal(code, 0, stderr);
  const path = `${DIR}/socketproxy.${shell}`;
  await Deno.writeTextFile(path, stdout);
  return path;
}

/** Runs a shell on a script, to completion. */
async function run(shell: string, args: string[]): Promise<{ code: number; out: string }> {
  const output = await new Deno.Command(shell, {
    args,
    env: { HOME: DIR, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  return { code: output.code, out: decoder.decode(output.stdout) + decoder.decode(output.stderr) };
}

const bash = await script("bash");

/** What `_socketproxy` offers for the words of a command line, the last one being completed. */
async function completeInBash(...words: string[]): Promise<string[]> {
  const quoted = words.map((word) => `'${word}'`).join(" ");
  const { code, out } = await run("bash", [
    "-c",
    `source '${bash}' && COMP_WORDS=(${quoted}) && COMP_CWORD=${
      words.length - 1
    } && _socketproxy && printf '%s\\n' "\${COMPREPLY[@]}"`,
  ]);
  assert.equal(code, 0, out);
  return out.split("\n").filter((line) => line !== "");
}

Deno.test("completions bash registers _socketproxy for socketproxy", async () => {
  const { code, out } = await run("bash", ["-c", `source '${bash}' && complete -p socketproxy`]);
  assert.equal(code, 0, out);
  assert.equal(out.trim(), "complete -F _socketproxy socketproxy");
});

Deno.test("bash completes a command", async () => {
  assert.deepEqual(await completeInBash("socketproxy", "se"), ["server"]);
  assert.deepEqual(await completeInBash("socketproxy", "co"), ["completions"]);
  const all = await completeInBash("socketproxy", "");
  for (const command of ["server", "status", "close", "drain", "client", "web", "demo"]) {
    assert.ok(all.includes(command), command);
  }
});

Deno.test("bash completes a command's flags, exactly those of its settings table", async () => {
  assert.deepEqual(await completeInBash("socketproxy", "server", "--idle"), ["--idle-timeout="]);
  assert.deepEqual(await completeInBash("socketproxy", "web", "--allow-o"), ["--allow-origin="]);
  const expected = (spec: typeof SERVER_COMMAND | typeof WEB_COMMAND): string[] =>
    commandFlags(spec).map((flag) => `--${flag.name}${flag.kind === "boolean" ? "" : "="}`)
      .sort();
  for (const spec of [SERVER_COMMAND, WEB_COMMAND]) {
    const offered = (await completeInBash("socketproxy", spec.command, "--"))
      .filter((word) => word !== "--version").sort();
    assert.deepEqual(offered, expected(spec), spec.command);
  }
});

Deno.test("bash completes a flag's value: words, or file names", async () => {
  // bash splits --log-level=d at the =, into three words.
  assert.deepEqual(await completeInBash("socketproxy", "server", "--log-level", "=", "d"), [
    "debug",
  ]);
  assert.deepEqual(await completeInBash("socketproxy", "web", "--log-format", "=", ""), [
    "text",
    "json",
  ]);
  assert.deepEqual(await completeInBash("socketproxy", "server", "--send-proxy", "v"), [
    "v1",
    "v2",
  ]);
  assert.deepEqual(await completeInBash("socketproxy", "completions", "z"), ["zsh"]);
  await Deno.mkdir(`${DIR}/files`);
  await Deno.writeTextFile(`${DIR}/files/socketproxy.json`, "{}");
  assert.deepEqual(
    await completeInBash("socketproxy", "server", "--config", "=", `${DIR}/files/socketp`),
    [`${DIR}/files/socketproxy.json`],
  );
});

Deno.test("completions with no shell or an unknown one is one usage line, exit 2", async () => {
  const none = await runMain(["completions"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^socketproxy completions: missing the shell/);
  const unknown = await runMain(["completions", "tcsh"]);
  assert.equal(unknown.code, 2);
  assert.equal(
    unknown.stderr.trim(),
    'socketproxy completions: unknown shell "tcsh" (expected bash, zsh, fish)',
  );
});

const zsh = await installed("zsh", ["--version"]);
Deno.test({
  name: `the zsh script parses, and defines _socketproxy for socketproxy${
    zsh ? "" : " (skipped: zsh is not installed; apt-get install zsh)"
  }`,
  ignore: !zsh,
  async fn() {
    const path = await script("zsh");
    const syntax = await run("zsh", ["-n", path]);
    assert.equal(syntax.code, 0, syntax.out);
    const loaded = await run("zsh", [
      "-f",
      "-c",
      `autoload -U compinit && compinit -u -D && source '${path}' && print -r -- $_comps[socketproxy]`,
    ]);
    assert.equal(loaded.code, 0, loaded.out);
    assert.equal(loaded.out.trim(), "_socketproxy");
  },
});

const fish = await installed("fish", ["--version"]);
Deno.test({
  name: `fish completes a command and a flag with the fish script${
    fish ? "" : " (skipped: fish is not installed; apt-get install fish)"
  }`,
  ignore: !fish,
  async fn() {
    const path = await script("fish");
    const complete = async (line: string): Promise<string[]> => {
      const { code, out } = await run("fish", [
        "--no-config",
        "-c",
        `source '${path}'; complete -C '${line}'`,
      ]);
      assert.equal(code, 0, out);
      return out.split("\n").filter((entry) => entry !== "").map((entry) =>
        entry.split("\t")[0] ?? ""
      );
    };
    assert.deepEqual(await complete("socketproxy se"), ["server"]);
    assert.deepEqual(await complete("socketproxy server --idle"), ["--idle-timeout"]);
    assert.deepEqual((await complete("socketproxy web --log-level=")).sort(), [
      "--log-level=debug",
      "--log-level=error",
      "--log-level=info",
      "--log-level=warn",
    ]);
  },
});
