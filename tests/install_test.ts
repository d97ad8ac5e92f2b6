/**
 * The one-line install of docs/install.md: the lines it shows carry exactly
 * the permissions of `deno.json`'s tasks, and the local one, run as written
 * into a temporary install root, gives a `socketproxy` command that works.
 * `deno install` may fetch the page's xterm.css from the npm registry when
 * Deno's cache lacks it; where that fails for want of network, the test is
 * skipped, saying why.
 */

import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { decoder } from "./_helpers.ts";
import { permissionFlags, ROOT, shellWords, taskPermissions } from "./_packaging.ts";

const DOC = await Deno.readTextFile(`${ROOT}docs/install.md`);

/** The `deno install -g -n socketproxy ...` lines of the install page, split into words. */
const INSTALL_LINES: string[][] = DOC.split("\n")
  .filter((line) => line.startsWith("    deno install -g -n socketproxy "))
  .map(shellWords);

const LOCAL = INSTALL_LINES.find((args) => args.at(-1) === "./main.ts");
const JSR = INSTALL_LINES.find((args) => args.at(-1)?.startsWith("jsr:"));

Deno.test("the install page shows a local and a JSR install line, nothing else", () => {
  assert.equal(INSTALL_LINES.length, 2, INSTALL_LINES.map((args) => args.join(" ")).join("\n"));
  assert.ok(LOCAL, "a line installing ./main.ts");
  assert.equal(JSR?.at(-1), `jsr:${denoJson.name}`);
});

Deno.test("the install lines carry exactly the start and compile tasks' permissions", () => {
  assert.deepEqual(taskPermissions("start"), taskPermissions("compile"));
  for (const args of INSTALL_LINES) {
    assert.deepEqual(permissionFlags(args), taskPermissions("start"), args.join(" "));
  }
});

/** Runs the page's local line, as written, from the checkout, into a temporary root. */
async function install(): Promise<{ root: string } | { error: string }> {
  const root = await Deno.makeTempDir({ prefix: "socketproxy-install-" });
  const output = await new Deno.Command(Deno.execPath(), {
    args: [...(LOCAL ?? []).slice(1), "--root", root],
    cwd: ROOT,
    env: { NO_COLOR: "1", DENO_INSTALL_ROOT: root },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  if (output.success) return { root };
  await Deno.remove(root, { recursive: true });
  return { error: decoder.decode(output.stderr) + decoder.decode(output.stdout) };
}

const installed = LOCAL ? await install() : { error: "no local install line in docs/install.md" };
const networkFailure = "error" in installed &&
  /error sending request|dns error|failed to lookup|Connection refused|timed out/i.test(
    installed.error,
  );
const skipReason = networkFailure
  ? "deno install cannot fetch the npm package @xterm/xterm (not in Deno's cache, and the npm " +
    `registry is unreachable): ${"error" in installed ? installed.error.split("\n")[0] : ""}`
  : null;

/** Runs the installed command with `args`, with this Deno first on the `PATH`, as a user has it. */
async function runInstalled(root: string, args: string[]): Promise<Deno.CommandOutput> {
  const denoDir = Deno.execPath().replace(/\/[^/]*$/, "");
  return await new Deno.Command(`${root}/bin/socketproxy`, {
    args,
    cwd: root,
    env: { NO_COLOR: "1", PATH: `${denoDir}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}` },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
}

Deno.test({
  name: skipReason
    ? `deno install from the checkout gives a working socketproxy command (skipped: ${skipReason})`
    : "deno install from the checkout gives a working socketproxy command",
  ignore: skipReason !== null,
  async fn() {
    if ("error" in installed) throw new Error(`the install line failed:\n${installed.error}`);
    const { root } = installed;
    try {
      const script = await Deno.readTextFile(`${root}/bin/socketproxy`);
      const run = /^exec deno run (.*)$/m.exec(script)?.[1];
      assert.ok(run, script);
      assert.deepEqual(permissionFlags(shellWords(run)), taskPermissions("start"), script);
      assert.ok(run.endsWith(`'file://${ROOT}main.ts' "$@"`), script);

      const version = await runInstalled(root, ["--version"]);
      assert.equal(version.code, 0, decoder.decode(version.stderr));
      assert.equal(decoder.decode(version.stdout).trim(), `socketproxy ${denoJson.version}`);
      const help = await runInstalled(root, ["--help"]);
      assert.equal(help.code, 0, decoder.decode(help.stderr));
      assert.match(decoder.decode(help.stdout), /^Usage: socketproxy COMMAND/);
      const serverHelp = await runInstalled(root, ["server", "--help"]);
      assert.equal(serverHelp.code, 0, decoder.decode(serverHelp.stderr));
      assert.match(decoder.decode(serverHelp.stdout), /--proxy=/);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
