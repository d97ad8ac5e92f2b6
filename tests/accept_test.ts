/**
 * The accept loop keeps running when the process runs out of file
 * descriptors, and serves again once they are free; a connection reset
 * before it was accepted never holds up the next one.
 */

import assert from "node:assert/strict";
import { acceptLoop } from "../lib/proxy/listener.ts";
import { echoDestination, encoder, LogCapture, TestClient, withDeadline } from "./_helpers.ts";

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

/**
 * A listener whose accept() fails with each of `errors` in turn, then
 * yields one connection, then waits until closed.
 */
function fakeListener(errors: Error[], conn: Deno.Conn): Deno.Listener & { accepts: number } {
  const closed = Promise.withResolvers<never>();
  closed.promise.catch(() => {});
  const listener = {
    accepts: 0,
    accept(): Promise<Deno.Conn> {
      const error = errors[listener.accepts++];
      if (error) return Promise.reject(error);
      return listener.accepts === errors.length + 1 ? Promise.resolve(conn) : closed.promise;
    },
    close(): void {
      closed.reject(new Deno.errors.BadResource("Listener has been closed"));
    },
  };
  return listener as unknown as Deno.Listener & { accepts: number };
}

Deno.test("connections reset before accept are skipped at once, without backing off", async () => {
  const logs = new LogCapture();
  const conn = {} as Deno.Conn;
  // What a client that connects and resets (SO_LINGER 0) leaves accept() with.
  const errors = Array.from({ length: 15 }, (_, i) =>
    [
      new Deno.errors.NotConnected("Transport endpoint is not connected (os error 107)"),
      new Deno.errors.ConnectionAborted("Software caused connection abort (os error 103)"),
      new Deno.errors.ConnectionReset("Connection reset by peer (os error 104)"),
    ][i % 3] as Error);
  const listener = fakeListener(errors, conn);
  const stop = new AbortController();
  const handed = Promise.withResolvers<Deno.Conn>();
  const loop = acceptLoop(listener, handed.resolve, { logger: logs.logger, signal: stop.signal });
  try {
    assert.equal(await withDeadline(handed.promise, 10_000, "connection"), conn);
    assert.equal(logs.events("accept.dropped").length, 15);
    assert.equal(logs.events("accept.dropped").at(-1)?.level, "debug");
    assert.deepEqual(logs.events("accept.failed"), [], "no error logged, no back-off taken");
  } finally {
    stop.abort();
    listener.close();
    await loop;
  }
});

Deno.test("running out of descriptors is logged and backed off from", async () => {
  const logs = new LogCapture();
  const conn = {} as Deno.Conn;
  // How Deno reports EMFILE from accept(): a plain Error with a code.
  const emfile = Object.assign(new Error("Too many open files (os error 24)"), { code: "EMFILE" });
  const listener = fakeListener([emfile, emfile], conn);
  const stop = new AbortController();
  const handed = Promise.withResolvers<Deno.Conn>();
  const loop = acceptLoop(listener, handed.resolve, { logger: logs.logger, signal: stop.signal });
  try {
    assert.equal(await withDeadline(handed.promise, 10_000, "connection"), conn);
    const [failed] = logs.events("accept.failed");
    assert.equal(failed?.level, "error");
    assert.match(String(failed?.fields.error), /Too many open files/);
    assert.deepEqual(logs.events("accept.dropped"), []);
  } finally {
    stop.abort();
    listener.close();
    await loop;
  }
});
