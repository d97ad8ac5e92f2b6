/**
 * The package: the license, the changelog and its version (one place:
 * `deno.json`), the JSR package `deno publish --dry-run` would upload (it
 * works offline), the documentation of its exports, and the Containerfile's
 * settings against `deno.json`'s tasks. Building and running the image is
 * the heavy `deno task e2e` (tests/e2e/container_test.ts).
 */

import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { VERSION } from "../lib/version.ts";
import { decoder } from "./_helpers.ts";
import { permissionFlags, ROOT, taskPermissions } from "./_packaging.ts";

/** Runs `deno ARGS` in the checkout, bounded in time. */
async function deno(args: string[]): Promise<{ code: number; output: string }> {
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  return {
    code: result.code,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

Deno.test("the project is MIT-licensed, in LICENSE and in deno.json", async () => {
  const license = await Deno.readTextFile(`${ROOT}LICENSE`);
  assert.match(license, /^MIT License\n\nCopyright \(c\) 2026 the socketproxy authors\n/);
  assert.equal(denoJson.license, "MIT");
});

Deno.test("the version comes from deno.json, and CHANGELOG.md's latest release is it", async () => {
  assert.equal(VERSION, denoJson.version);
  const changelog = await Deno.readTextFile(`${ROOT}CHANGELOG.md`);
  const releases = [
    ...changelog.matchAll(/^## \[(\d+\.\d+\.\d+[^\]]*)\] - (\d{4}-\d{2}-\d{2})$/gm),
  ];
  assert.ok(releases.length > 0, "a release heading in CHANGELOG.md");
  assert.equal(releases[0]?.[1], denoJson.version);
  assert.match(changelog, /^## \[Unreleased\]$/m, "Keep a Changelog's Unreleased section");
  assert.ok(changelog.indexOf("## [Unreleased]") < changelog.indexOf(`## [${denoJson.version}]`));
});

Deno.test("deno publish --dry-run passes, and the package holds no tests, benchmarks or fuzzers", async () => {
  // --allow-dirty: this checks what is uploaded, in a working tree with changes too;
  // .ci/run checks a clean checkout without it.
  const { code, output } = await deno(["publish", "--dry-run", "--allow-dirty"]);
  assert.equal(code, 0, output);
  assert.match(output, new RegExp(`${denoJson.name}@${denoJson.version.replaceAll(".", "\\.")}`));
  const files = [...output.matchAll(/file:\/\/(\S+)/g)].map((match) =>
    match[1]?.slice(ROOT.length)
  );
  for (const file of ["LICENSE", "README.md", "CHANGELOG.md", "deno.json"]) {
    assert.ok(files.includes(file), `${file} in the package`);
  }
  for (const entry of Object.values(denoJson.exports)) {
    assert.ok(files.includes(entry.slice(2)), `${entry} in the package`);
  }
  const strays = files.filter((file) => /^(tests|bench|fuzz|\.ci|\.github)\//.test(file ?? ""));
  assert.deepEqual(strays, []);
});

Deno.test("every export of the package is documented (deno doc --lint)", async () => {
  const { code, output } = await deno(["doc", "--lint", ...Object.values(denoJson.exports)]);
  assert.equal(code, 0, output);
});

Deno.test("the Containerfile runs the CLI as the deno user with exactly the tasks' permissions", async () => {
  const containerfile = await Deno.readTextFile(`${ROOT}Containerfile`);
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(containerfile)?.[1];
  assert.ok(entrypoint, "an ENTRYPOINT in exec form");
  const args: string[] = JSON.parse(entrypoint);
  assert.deepEqual(args.slice(0, 2), ["deno", "run"]);
  assert.equal(args.at(-1), "/app/main.ts");
  assert.deepEqual(permissionFlags(args), taskPermissions("start"));
  assert.match(containerfile, /^USER deno$/m);
  assert.match(containerfile, /^EXPOSE 9009 9010 8080$/m);
  assert.match(
    containerfile,
    /^HEALTHCHECK .*\\\n\s+CMD \[.*"--allow-net=127\.0\.0\.1", "\/app\/deploy\/healthcheck\.ts"\]$/m,
  );
  const ci = await Deno.readTextFile(`${ROOT}.ci/run`);
  const version = /^DENO_VERSION=(\S+)$/m.exec(ci)?.[1];
  assert.match(
    containerfile,
    new RegExp(`^ARG DENO_IMAGE=docker\\.io/denoland/deno:${version}$`, "m"),
  );
});
