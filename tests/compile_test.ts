/**
 * The single binary: `deno task compile` builds `./socketproxy`, and the
 * binary does what `deno run main.ts` does, serving the browser page from
 * the files embedded in it. `deno compile` embeds a runtime
 * (denort) that it downloads from Deno's own download host unless
 * DENORT_BIN names one; where neither is possible this test is skipped,
 * saying why.
 */

import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { decoder, echoDestination, TestClient } from "./_helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const COMPILE_ARGS = (denoJson.tasks.compile as string).split(" ").slice(1);

/** Builds the binary the way `deno task compile` does, into a temporary directory. */
async function compile(): Promise<{ binary: string; dir: string } | { error: string }> {
  const dir = await Deno.makeTempDir({ prefix: "socketproxy-compile-" });
  const binary = `${dir}/socketproxy`;
  const args = COMPILE_ARGS.map((arg) => (arg === "socketproxy" ? binary : arg));
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (output.success) return { binary, dir };
  await Deno.remove(dir, { recursive: true });
  return { error: decoder.decode(output.stderr) };
}

/** The page's files, as `web` serves them from the binary, byte for byte. */
const EMBEDDED: [path: string, file: string, type: RegExp][] = [
  ["/", "web/index.html", /^text\/html/],
  ["/assets/app.js", "web/dist/app.js", /^text\/javascript/],
  ["/assets/style.css", "web/style.css", /^text\/css/],
];

/** Runs `web` from the binary in front of the proxy on `proxyPort`, and fetches the page's files. */
async function checkWeb(binary: string, proxyPort: number): Promise<void> {
  const web = new Deno.Command(binary, {
    args: ["web", "--listen=127.0.0.1:0", `--proxy=127.0.0.1:${proxyPort}`],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = web.stderr.pipeThrough(new TextDecoderStream()).values();
  let log = "";
  try {
    while (!log.includes("web.listening")) {
      const next = await lines.next();
      if (next.done) throw new Error(`the binary's gateway exited:\n${log}`);
      log += next.value;
    }
    const listen = /listen=(127\.0\.0\.1:\d+)/.exec(log)?.[1];
    assert.ok(listen, log);
    for (const [path, file, type] of EMBEDDED) {
      const response: Response = await fetch(`http://${listen}${path}`);
      assert.equal(response.status, 200, path);
      assert.match(response.headers.get("content-type") ?? "", type);
      assert.equal(await response.text(), await Deno.readTextFile(`${ROOT}${file}`), path);
    }
  } finally {
    web.kill("SIGTERM");
    assert.equal((await web.status).code, 0);
    for await (const rest of lines) log += rest;
  }
}

const built = await compile();
const denortBin = Deno.env.get("DENORT_BIN");
const downloadFailed = "error" in built && !denortBin &&
  /error sending request|dns error|failed to lookup|Connection refused|download/i.test(built.error);
const skipReason = downloadFailed
  ? "deno compile cannot download its runtime from dl.deno.land on this machine; " +
    "set DENORT_BIN to a denort binary of this Deno version to run it"
  : null;

Deno.test({
  name: skipReason
    ? `the compiled binary runs --version, server, status and web (skipped: ${skipReason})`
    : "the compiled binary runs --version, server, status and web",
  ignore: skipReason !== null,
  async fn() {
    if ("error" in built) throw new Error(`deno task compile failed:\n${built.error}`);
    const { binary, dir } = built;
    try {
      const version = await new Deno.Command(binary, { args: ["--version"] }).output();
      assert.equal(decoder.decode(version.stdout).trim(), `socketproxy ${denoJson.version}`);

      await using destination = echoDestination();
      const server = new Deno.Command(binary, {
        args: [
          "server",
          "--proxy=127.0.0.1:0",
          "--admin=127.0.0.1:0",
          `127.0.0.1:${destination.port}`,
        ],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const lines = server.stderr.pipeThrough(new TextDecoderStream()).values();
      let log = "";
      try {
        while (!log.includes("server.listening")) {
          const next = await lines.next();
          if (next.done) throw new Error(`the binary's server exited:\n${log}`);
          log += next.value;
        }
        const port = Number(/proxy=127\.0\.0\.1:(\d+)/.exec(log)?.[1]);
        const admin = /admin=(127\.0\.0\.1:\d+)/.exec(log)?.[1];
        using client = await TestClient.connect(port);
        await client.hello("NEW");
        await client.write("from the binary\n");
        assert.equal(await client.readLine(), "from the binary");
        const status = await new Deno.Command(binary, { args: ["status", `--admin=${admin}`] })
          .output();
        assert.equal(status.code, 0, decoder.decode(status.stderr));
        assert.match(decoder.decode(status.stdout), /1 open of 10000 \(1 attached/);
        await checkWeb(binary, port);
      } finally {
        server.kill("SIGTERM");
        assert.equal((await server.status).code, 0);
        for await (const rest of lines) log += rest;
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
