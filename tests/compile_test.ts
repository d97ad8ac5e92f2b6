/**
 * The single binary: `deno task compile` builds `./socketproxy`, and the
 * binary does what `deno run main.ts` does. `deno compile` embeds a runtime
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
    ? `the compiled binary runs --version, server and status (skipped: ${skipReason})`
    : "the compiled binary runs --version, server and status",
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
