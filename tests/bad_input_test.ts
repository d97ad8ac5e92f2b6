/**
 * Bad input on the proxy port: each gets one ERR line, the connection is
 * closed, and the server and its sessions carry on unharmed.
 */

import assert from "node:assert/strict";
import {
  decoder,
  echoDestination,
  encoder,
  randomBytes,
  startServer,
  TestClient,
} from "./_helpers.ts";

/** Sends `input`, expects one ERR line of `code` and then EOF. */
async function expectError(
  port: number,
  input: Uint8Array | string,
  code: string,
): Promise<string> {
  using client = await TestClient.connect(port);
  await client.write(input);
  const line = await client.readLine();
  assert.match(
    line,
    new RegExp(`^ERR ${code} \\S`),
    `reply to ${JSON.stringify(String(input).slice(0, 40))}`,
  );
  assert.equal((await client.readToEnd()).length, 0, "nothing after the ERR line");
  return line;
}

Deno.test("bad input gets ERR bad-request and the server keeps serving", async (t) => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  using survivor = await TestClient.connect(proxy.port);
  await survivor.hello("NEW");

  const cases: [string, string | Uint8Array][] = [
    ["an empty line", "\n"],
    ["a bare CR LF", "\r\n"],
    ["garbage words", "hello there\n"],
    ["a lower-case verb", "new\n"],
    ["NEW with arguments", "NEW please\n"],
    ["RESUME without a secret", "RESUME abc\n"],
    ["RESUME with two spaces", "RESUME  abc AAAAAAAAAAAAAAAAAAAAAAAA\n"],
    ["a secret too short", "RESUME abc short\n"],
    ["an id with a slash", "RESUME a/b AAAAAAAAAAAAAAAAAAAAAAAA\n"],
    ["a negative ack", "RESUME abc AAAAAAAAAAAAAAAAAAAAAAAA -1\n"],
    ["an ack beyond 2^53", "RESUME abc AAAAAAAAAAAAAAAAAAAAAAAA 99999999999999999\n"],
    ["a NUL byte", "NEW\0\n"],
    ["Latin-1 text", encoder.encode("RÉSUMÉ\n")],
    ["binary junk with a LF", Uint8Array.of(...randomBytes(200, 7).filter((b) => b !== 10), 10)],
  ];
  for (const [name, input] of cases) {
    await t.step(name, async () => {
      await expectError(proxy.port, input, "bad-request");
    });
  }

  await t.step("a hello of 513 bytes, LF included, is too long", async () => {
    const line = await expectError(proxy.port, "NEW" + " ".repeat(509) + "\n", "bad-request");
    assert.match(line, /longer than 512 bytes/);
  });

  await t.step("a hello of exactly 512 bytes, LF included, is read and parsed", async () => {
    const line = await expectError(proxy.port, "NEW" + " ".repeat(508) + "\n", "bad-request");
    assert.match(line, /NEW takes framed, to= and from=/);
  });

  await t.step("512 bytes without a LF, answered without waiting for more", async () => {
    await expectError(proxy.port, "X".repeat(512), "bad-request");
  });

  await t.step("binary junk without any LF", async () => {
    await expectError(
      proxy.port,
      randomBytes(4096, 11).map((b) => (b === 10 ? 0 : b)),
      "bad-request",
    );
  });

  await t.step("an HTTP request, answered in a way a person would understand", async () => {
    const line = await expectError(
      proxy.port,
      "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n",
      "bad-request",
    );
    assert.match(line, /unknown verb "GET": this port speaks socketproxy, not HTTP/);
  });

  await t.step("the session opened before all this still works", async () => {
    await survivor.write("still alive\n");
    assert.equal(await survivor.readLine(), "still alive");
  });
});

Deno.test("a peer that connects and resets at once leaves nothing behind", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  for (let i = 0; i < 20; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    await conn.write(encoder.encode("NE")); // unread by the time of close: a reset
    conn.close();
  }
  using client = await TestClient.connect(proxy.port);
  await client.hello("NEW");
  await client.write("ok\n");
  assert.equal(decoder.decode(await client.readExactly(3)), "ok\n");
});

Deno.test("a peer that half-closes before finishing its hello is let go", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  using client = await TestClient.connect(proxy.port);
  await client.write("RESUME abc");
  await client.conn.closeWrite();
  assert.equal((await client.readToEnd()).length, 0);
  await proxy.logs.waitFor("handshake.aborted");
  assert.equal(proxy.server.store.size, 0);
});
