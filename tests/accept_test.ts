/**
 * The accept loop keeps running when the process runs out of file
 * descriptors, and serves again once they are free.
 */

import assert from "node:assert/strict";
import { echoDestination, encoder, TestClient, withDeadline } from "./_helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

Deno.test("the server survives EMFILE on accept and recovers", async () => {
  await using destination = echoDestination();
  // A low descriptor limit for the server process only.
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `ulimit -n 64 && exec "$0" run --allow-net "$1" server --proxy=127.0.0.1:0 127.0.0.1:$2`,
      Deno.execPath(),
      MAIN,
      String(destination.port),
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).values();
  let log = "";
  function waitForLog(pattern: RegExp): Promise<RegExpExecArray> {
    return withDeadline(readUntil(pattern), 10_000, `log line ${pattern}`);
  }
  async function readUntil(pattern: RegExp): Promise<RegExpExecArray> {
    while (true) {
      const match = pattern.exec(log);
      if (match) return match;
      const next = await lines.next();
      if (next.done) throw new Error(`server exited; log:\n${log}`);
      log += next.value;
    }
  }
  const clients: Deno.Conn[] = [];
  try {
    const port = Number((await waitForLog(/proxy=127\.0\.0\.1:(\d+)/))[1]);
    for (let i = 0; i < 200; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      clients.push(conn);
      await conn.write(encoder.encode("RESUME "));
    }
    await waitForLog(/ERROR accept\.failed error="[^"]*Too many open files/);
    for (const conn of clients.splice(0)) conn.close();
    using client = await TestClient.connect(port);
    await withDeadline(client.hello("NEW"), 10_000, "reply after descriptors were freed");
    await client.write("back\n");
    assert.equal(await client.readLine(), "back");
  } finally {
    for (const conn of clients) conn.close();
    child.kill("SIGTERM");
    const status = await child.status;
    for await (const rest of lines) log += rest;
    assert.equal(status.code, 0, log);
  }
});
