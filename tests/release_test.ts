/**
 * The release workflow, `.github/workflows/release.yml`: it cannot run here
 * (it runs on GitHub's runners, on a pushed tag), so these tests check what
 * it would build against `deno.json`: the four targets, and exactly the
 * compile task's permissions.
 */

import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { permissionFlags, ROOT, shellWords, taskPermissions } from "./_packaging.ts";

const WORKFLOW = await Deno.readTextFile(`${ROOT}.github/workflows/release.yml`);

/** Linux and macOS, x86_64 and aarch64; not Windows, where Deno refuses a SIGTERM listener. */
const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
];

/** The `deno compile` command line of the workflow, split into words. */
function compileCommand(): string[] {
  const lines = WORKFLOW.split("\n").filter((line) => /\bdeno compile\b/.test(line));
  assert.equal(lines.length, 1, "one deno compile line in release.yml");
  const line = lines[0] ?? "";
  return shellWords(line.slice(line.indexOf("deno compile")));
}

Deno.test("the release workflow runs on pushed v* tags", () => {
  assert.match(WORKFLOW, /^on:\n {2}push:\n {4}tags: \["v\*"\]$/m);
});

Deno.test("the release workflow builds for Linux and macOS on x86_64 and aarch64", () => {
  const matrix = /^ +target:\n((?: +- \S+\n)+)/m.exec(WORKFLOW)?.[1];
  assert.ok(matrix, "a target matrix in release.yml, as a block list");
  assert.deepEqual(matrix.trim().split("\n").map((line) => line.replace(/^\s*- /, "")), TARGETS);
  const args = compileCommand();
  assert.ok(args.join(" ").includes("--target ${{ matrix.target }}"), "each target of the matrix");
});

Deno.test("the release workflow compiles with exactly the compile task's permissions", () => {
  const args = compileCommand();
  assert.deepEqual(permissionFlags(args), taskPermissions("compile"));
  assert.equal(args.at(-1), denoJson.tasks.compile.split(" ").at(-1), "the same entry point");
});

Deno.test("the release workflow uses the Deno version CI uses", async () => {
  const ci = await Deno.readTextFile(`${ROOT}.ci/run`);
  const version = /^DENO_VERSION=(\S+)$/m.exec(ci)?.[1];
  assert.ok(version);
  assert.match(WORKFLOW, new RegExp(`deno-version: v${version.replaceAll(".", "\\.")}\n`));
});

Deno.test("the release workflow writes SHA-256 checksums and attaches everything to a release", () => {
  assert.match(WORKFLOW, /sha256sum socketproxy-\* > SHA256SUMS/);
  assert.match(WORKFLOW, /gh release create "\$GITHUB_REF_NAME" .*dist\/\*$/m);
  assert.match(WORKFLOW, /^ {6}contents: write$/m, "the release job may write releases");
});
