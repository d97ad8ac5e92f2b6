/**
 * The proxy server against the protocol: every hello, both delivery modes,
 * every error code and the guarantees, with a destination the test drives.
 */

import assert from "node:assert/strict";
import { formatHostPort } from "../lib/address.ts";
import { concatBytes } from "../lib/bytes.ts";
import { writeAll } from "../lib/_io.ts";
import { ProtocolError, type Reply } from "../lib/protocol.ts";
import { FakeConn } from "./_fake_conn.ts";
import {
  decoder,
  Destination,
  echoDestination,
  encoder,
  poll,
  pollUntilPending,
  startServer,
  TestClient,
  type TestServer,
} from "./_helpers.ts";

const SECRET_LIKE = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/** A proxy in front of a destination the test drives, with one session open. */
interface OpenSession extends AsyncDisposable {
  destination: Destination;
  proxy: TestServer;
  /** The client that opened the session with NEW, still attached. */
  client: TestClient;
  session: Reply;
  /** The destination's end of the session's connection. */
  dest: TestClient;
}

/**
 * Starts a proxy in front of a destination the test drives, and opens a
 * session; disposing closes it all, the last opened first.
 */
async function openSession(
  overrides: Parameters<typeof startServer>[1] = {},
): Promise<OpenSession> {
  await using stack = new AsyncDisposableStack();
  const destination = stack.use(new Destination());
  const proxy = stack.use(startServer(destination.port, overrides));
  const client = stack.use(await TestClient.connect(proxy.port));
  const session = await client.hello("NEW");
  const dest = stack.use(new TestClient(await destination.accepted()));
  const owned = stack.move();
  return {
    destination,
    proxy,
    client,
    session,
    dest,
    [Symbol.asyncDispose]: () => owned.disposeAsync(),
  };
}

Deno.test("NEW answers OK with a fresh id and secret and relays both ways", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  using client = await TestClient.connect(proxy.port);
  await client.write("NEW\n");
  const line = await client.readLine();
  assert.match(line, /^OK [A-Za-z0-9_-]{1,64} [A-Za-z0-9_-]{22,64} 0 0 0 open$/);
  await client.write("ping\r\n");
  assert.equal(decoder.decode(await client.readExactly(6)), "ping\r\n");
});

Deno.test("NEW sessions get distinct ids and secrets", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  using first = await TestClient.connect(proxy.port);
  using second = await TestClient.connect(proxy.port);
  const a = await first.hello("NEW");
  const b = await second.hello("NEW");
  assert.notEqual(a.id, b.id);
  assert.notEqual(a.secret, b.secret);
  assert.equal(proxy.server.store.size, 2);
});

Deno.test("RESUME without ack sends the output no client has been sent yet", async () => {
  await using opened = await openSession();
  const { proxy, client, session, dest } = opened;
  await dest.write("one");
  assert.equal(decoder.decode(await client.readExactly(3)), "one");
  client.close();
  await proxy.logs.waitFor("session.detached");
  await dest.write("two");
  using again = await TestClient.connect(proxy.port);
  const reply = await again.hello(`RESUME ${session.id} ${session.secret}`);
  assert.equal(reply.from, 3);
  assert.equal(decoder.decode(await again.readExactly(3)), "two");
});

Deno.test("RESUME with ack resends from the acknowledged offset, pending exact", async () => {
  await using opened = await openSession();
  const { proxy, client, session, dest } = opened;
  await dest.write("abcdef");
  assert.equal(decoder.decode(await client.readExactly(6)), "abcdef");
  client.close();
  const { reply, data } = await poll(proxy.port, session, 2);
  assert.deepEqual([reply.from, reply.pending, reply.state], [2, 4, "open"]);
  assert.equal(decoder.decode(data), "cdef");
});

Deno.test("a poll reads exactly the pending bytes and the same poll again gets them again", async () => {
  await using opened = await openSession();
  const { proxy, client, session, dest } = opened;
  client.close();
  await dest.write("hello world");
  const first = await pollUntilPending(proxy.port, session, 0, 11);
  const second = await poll(proxy.port, session, 0);
  assert.equal(decoder.decode(first.data), "hello world");
  assert.equal(decoder.decode(second.data), "hello world");
  const third = await poll(proxy.port, session, 11);
  assert.deepEqual([third.reply.from, third.reply.pending], [11, 0]);
});

Deno.test("acknowledged delivery sends at most --buffer bytes beyond the ack", async () => {
  await using opened = await openSession({ bufferSize: 1024 });
  const { proxy, client, session, dest } = opened;
  client.close();
  await proxy.logs.waitFor("session.detached");
  const output = new Uint8Array(3000).map((_, i) => i % 251);
  await dest.write(output);
  await proxy.logs.waitFor("destination.paused");
  const first = await pollUntilPending(proxy.port, session, 0, 1024);
  assert.equal(first.reply.pending, 1024);
  assert.deepEqual(first.data, output.subarray(0, 1024));
  const second = await pollUntilPending(proxy.port, session, 1024, 1024);
  assert.deepEqual(second.data, output.subarray(1024, 2048));
  const third = await pollUntilPending(proxy.port, session, 2048, 952);
  assert.deepEqual(third.data, output.subarray(2048));
});

Deno.test("output sent to a streaming client that left is kept, even when the destination floods", async () => {
  await using opened = await openSession({ bufferSize: 64 * 1024 });
  const { proxy, client, session, dest } = opened;
  const output = new Uint8Array(1024 * 1024).map((_, i) => (i * 7) % 256);
  await dest.write(output.subarray(0, 10_000));
  await client.readExactly(10_000); // received, then lost in a crash
  client.close();
  await proxy.logs.waitFor("session.detached");
  const flooding = dest.write(output.subarray(10_000));
  let ack = 0;
  while (ack < output.length) {
    const { reply, data } = await poll(proxy.port, session, ack);
    assert.equal(reply.from, ack);
    assert.deepEqual(data, output.subarray(ack, ack + data.length));
    ack += data.length;
  }
  await flooding;
});

Deno.test("<in> counts input from every connection so a client can resend the rest", async () => {
  await using opened = await openSession();
  const { proxy, client, session, dest } = opened;
  await client.write("abc");
  assert.equal(decoder.decode(await dest.readExactly(3)), "abc");
  client.close();
  using again = await TestClient.connect(proxy.port);
  const reply = await again.hello(`RESUME ${session.id} ${session.secret} 0`);
  assert.equal(reply.in, 3);
  await again.write("de");
  assert.equal(decoder.decode(await dest.readExactly(2)), "de");
});

Deno.test("bytes pipelined after the hello in the same segment are input", async (t) => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);

  await t.step("after NEW", async () => {
    using client = await TestClient.connect(proxy.port);
    await client.write("NEW\nfirst input");
    using dest = new TestClient(await destination.accepted());
    const reply = parseOk(await client.readLine());
    assert.equal(reply.in, 0);
    assert.equal(decoder.decode(await dest.readExactly(11)), "first input");
  });

  await t.step("after RESUME, counted in the next reply's <in>", async () => {
    using client = await TestClient.connect(proxy.port);
    await client.write("NEW\n");
    const session = parseOk(await client.readLine());
    using dest = new TestClient(await destination.accepted());
    client.close();
    using again = await TestClient.connect(proxy.port);
    await again.write(`RESUME ${session.id} ${session.secret} 0\r\nsecond`);
    assert.equal(parseOk(await again.readLine()).in, 0);
    assert.equal(decoder.decode(await dest.readExactly(6)), "second");
    again.close();
    const { reply } = await poll(proxy.port, session, 0);
    assert.equal(reply.in, 6);
  });
});

Deno.test("input sent before a half-close is forwarded and counted, even while the destination is busy", async () => {
  const destination = new FakeConn();
  destination.hold(); // a destination that does not read yet
  await using proxy = startServer(0, { connect: () => Promise.resolve(destination.conn) });
  const client = await TestClient.connect(proxy.port);
  const session = await client.hello("NEW");
  await client.write("first"); // forwarded, and held by the destination
  client.close();
  await proxy.logs.waitFor("session.detached", (fields) => fields.peer === peerOf(client));
  // A poll carrying input in the hello's segment, then closing its side (`nc -N`).
  using poller = await TestClient.connect(proxy.port);
  await poller.write(`RESUME ${session.id} ${session.secret} 0\nMARKER`);
  await poller.conn.closeWrite();
  assert.equal(parseOk(await poller.readLine()).in, 5);
  assert.equal((await poller.readToEnd()).length, 0, "detached once its input was forwarded");
  const { reply } = await poll(proxy.port, session, 0);
  assert.equal(reply.in, 11, "MARKER counted");
  destination.release();
  await destination.waitForWritten(11);
  assert.equal(decoder.decode(destination.output()), "firstMARKER");
});

function parseOk(line: string): { id: string; secret: string; in: number } {
  const [word, id = "", secret = "", input = ""] = line.split(" ");
  assert.equal(word, "OK", line);
  return { id, secret, in: Number(input) };
}

Deno.test("CLOSE answers BYE, closes the destination and forgets the session", async () => {
  await using opened = await openSession();
  const { proxy, client, session, dest } = opened;
  client.close();
  using closer = await TestClient.connect(proxy.port);
  await closer.write(`CLOSE ${session.id} ${session.secret}\n`);
  assert.equal(await closer.readLine(), `BYE ${session.id}`);
  assert.equal((await closer.readToEnd()).length, 0);
  assert.equal((await dest.readToEnd()).length, 0, "destination sees EOF");
  assert.equal(proxy.server.store.size, 0);
  await assert.rejects(poll(proxy.port, session, 0), isError("auth"));
});

Deno.test("CLOSE disconnects the attached client", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  using attached = await TestClient.connect(proxy.port);
  const session = await attached.hello("NEW");
  using closer = await TestClient.connect(proxy.port);
  await closer.write(`CLOSE ${session.id} ${session.secret}\n`);
  assert.equal(await closer.readLine(), `BYE ${session.id}`);
  assert.equal((await attached.readToEnd()).length, 0);
});

function isError(code: string, offset?: number): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof ProtocolError, String(error));
    assert.equal(error.code, code, error.message);
    if (offset !== undefined) assert.equal(error.offset, offset);
    return true;
  };
}

/** Sends a raw hello and returns the server's one reply line, then checks it closed. */
async function answerTo(port: number, hello: string | Uint8Array): Promise<string> {
  using client = await TestClient.connect(port);
  await client.write(hello);
  const line = await client.readLine();
  assert.equal((await client.readToEnd()).length, 0, "connection closed after the reply");
  return line;
}

Deno.test("ERR auth for an unknown id and for a wrong secret, indistinguishably", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  using client = await TestClient.connect(proxy.port);
  const session = await client.hello("NEW");
  const unknown = await answerTo(proxy.port, `RESUME nosuchsession ${session.secret} 0\n`);
  const wrong = await answerTo(proxy.port, `RESUME ${session.id} ${SECRET_LIKE}\n`);
  const wrongClose = await answerTo(proxy.port, `CLOSE ${session.id} ${SECRET_LIKE}\n`);
  assert.match(unknown, /^ERR auth /);
  assert.equal(wrong, unknown);
  assert.equal(wrongClose, unknown);
  assert.equal(proxy.server.counters.authFailures, 3);
  assert.equal(proxy.server.store.size, 1, "the session survives failed attempts");
  // The log names the session whose secret was wrong, and no id it does not know.
  const failures = proxy.logs.events("auth.failed").map((record) => record.fields);
  assert.deepEqual(failures.map((fields) => [fields.id, fields.reason]), [
    [undefined, "unknown session"],
    [session.id, "wrong secret"],
    [session.id, "wrong secret"],
  ]);
});

Deno.test("a secret sent in place of the id never reaches the log", async () => {
  await using destination = echoDestination();
  // The server's disposal fails the test if an issued secret is in its log.
  await using proxy = startServer(destination.port);
  using client = await TestClient.connect(proxy.port);
  const session = await client.hello("NEW");
  const swapped = await answerTo(proxy.port, `RESUME ${session.secret} ${session.id} 0\n`);
  const twice = await answerTo(proxy.port, `RESUME ${session.secret} ${session.secret}\n`);
  assert.match(swapped, /^ERR bad-request /, "an id is too short for a secret");
  assert.match(twice, /^ERR auth /);
  const [failed] = proxy.logs.events("auth.failed");
  assert.equal(failed?.fields.reason, "unknown session");
  assert.equal(failed?.fields.id, undefined);
});

Deno.test("ERR gap names the lowest offset a streaming client can resume from", async () => {
  await using opened = await openSession({ bufferSize: 1024 });
  const { proxy, client, session, dest } = opened;
  const output = new Uint8Array(4096).map((_, i) => i % 256);
  await dest.write(output);
  assert.deepEqual(await client.readExactly(4096), output);
  client.close();
  await proxy.logs.waitFor("session.detached");
  const line = await answerTo(proxy.port, `RESUME ${session.id} ${session.secret} 0\n`);
  const match = /^ERR gap (\d+) /.exec(line);
  assert.ok(match, line);
  const lowest = Number(match[1]);
  assert.ok(lowest >= 4096 - 1024 && lowest <= 4096, `lowest ${lowest}`);
  const { reply, data } = await poll(proxy.port, session, lowest);
  assert.equal(reply.from, lowest);
  assert.deepEqual(data, output.subarray(lowest));
  await proxy.logs.waitFor("session.gap", (fields) => fields.lowest === lowest);
});

Deno.test("ERR ack when the ack is beyond what was ever sent", async () => {
  await using opened = await openSession();
  const { proxy, client, session, dest } = opened;
  await dest.write("12345");
  await client.readExactly(5);
  client.close();
  assert.match(
    await answerTo(proxy.port, `RESUME ${session.id} ${session.secret} 6\n`),
    /^ERR ack 5 /,
  );
  const { reply } = await poll(proxy.port, session, 5);
  assert.equal(reply.from, 5, "the session is unharmed");
});

Deno.test("ERR busy at --max-sessions, and NEW works again once one closes", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port, { maxSessions: 1 });
  using first = await TestClient.connect(proxy.port);
  const session = await first.hello("NEW");
  assert.match(await answerTo(proxy.port, "NEW\n"), /^ERR busy /);
  assert.equal(
    await answerTo(proxy.port, `CLOSE ${session.id} ${session.secret}\n`),
    `BYE ${session.id}`,
  );
  using again = await TestClient.connect(proxy.port);
  await again.hello("NEW");
});

Deno.test("ERR unreachable when the destination refuses, and no session exists", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = closed.addr.port;
  closed.close();
  await using proxy = startServer(port);
  assert.match(await answerTo(proxy.port, "NEW\n"), /^ERR unreachable /);
  assert.equal(proxy.server.store.size, 0);
  await proxy.logs.waitFor("destination.unreachable");
});

Deno.test("ERR unreachable when the destination does not answer within --connect-timeout", async () => {
  const started = Promise.withResolvers<void>();
  await using proxy = startServer(1, {
    connectTimeout: 50,
    connect: (_destination, signal) => {
      started.resolve();
      const { promise, reject } = Promise.withResolvers<Deno.Conn>();
      signal.addEventListener("abort", () => reject(signal.reason));
      return promise;
    },
  });
  const line = await answerTo(proxy.port, "NEW\n");
  await started.promise;
  assert.match(line, /^ERR unreachable .*timed out after 50 ms/);
  assert.equal(proxy.server.store.size, 0);
});

Deno.test("ERR timeout when no complete hello arrives within --handshake-timeout", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port, { handshakeTimeout: 100 });
  assert.match(await answerTo(proxy.port, "RESUME half-a-hel"), /^ERR timeout /);
  assert.match(await answerTo(proxy.port, ""), /^ERR timeout /);
});

Deno.test("takeover: a second attachment closes the first, the newest wins", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  using first = await TestClient.connect(proxy.port);
  const session = await first.hello("NEW");
  using second = await TestClient.connect(proxy.port);
  await second.hello(`RESUME ${session.id} ${session.secret}`);
  assert.equal((await first.readToEnd()).length, 0, "first connection closed by the server");
  await second.write("still here");
  assert.equal(decoder.decode(await second.readExactly(10)), "still here");
  await proxy.logs.waitFor("session.taken_over");
});

Deno.test("a session persists across many connections", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  const client = await TestClient.connect(proxy.port);
  const session = await client.hello("NEW");
  client.close();
  let received = 0;
  for (let i = 0; i < 50; i++) {
    using conn = await TestClient.connect(proxy.port);
    const reply = await conn.hello(`RESUME ${session.id} ${session.secret} ${received}`);
    assert.equal(reply.in, i * 4);
    received += (await conn.readExactly(reply.pending)).length;
    await conn.write(`${i}`.padStart(4, "0"));
    received += (await conn.readExactly(4)).length;
  }
  assert.equal(received, 200);
});

Deno.test("a destination that closes: output delivered, client closed, session ends on the final ack", async (t) => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);

  await t.step(
    "attached streaming client: output delivered, session kept until acknowledged",
    async () => {
      using client = await TestClient.connect(proxy.port);
      const session = await client.hello("NEW");
      const dest = await destination.accepted();
      await writeAll(dest, encoder.encode("goodbye"));
      dest.close();
      assert.equal(decoder.decode(await client.readToEnd()), "goodbye");
      await proxy.logs.waitFor("session.detached", (fields) => fields.id === session.id);
      // A dropped connection could have lost it: the session still has it.
      const again = await poll(proxy.port, session, 0);
      assert.deepEqual([again.reply.state, decoder.decode(again.data)], ["closed", "goodbye"]);
      const last = await poll(proxy.port, session, 7);
      assert.deepEqual([last.reply.pending, last.reply.state], [0, "closed"]);
      await proxy.logs.waitFor("session.closed", (fields) => fields.id === session.id);
      await assert.rejects(poll(proxy.port, session, 7), isError("auth"));
    },
  );

  await t.step("streaming client gone before the last output: the session waits", async () => {
    const client = await TestClient.connect(proxy.port);
    const session = await client.hello("NEW");
    client.close();
    const dest = await destination.accepted();
    await writeAll(dest, encoder.encode("unseen"));
    dest.close();
    await proxy.logs.waitFor("destination.closed", (fields) => fields.id === session.id);
    await proxy.logs.waitFor("session.detached", (fields) => fields.id === session.id);
    const { reply, data } = await poll(proxy.port, session, 0);
    assert.deepEqual([reply.state, decoder.decode(data)], ["closed", "unseen"]);
    const last = await poll(proxy.port, session, 6);
    assert.deepEqual([last.reply.pending, last.reply.state], [0, "closed"]);
    await proxy.logs.waitFor("session.closed", (fields) => fields.id === session.id);
  });

  await t.step("detached session: state closed on resume, ended by the final ack", async () => {
    const client = await TestClient.connect(proxy.port);
    const session = await client.hello("NEW");
    client.close();
    await proxy.logs.waitFor("session.detached", (fields) => fields.id === session.id);
    const dest = await destination.accepted();
    await writeAll(dest, encoder.encode("last words"));
    dest.close();
    await proxy.logs.waitFor("destination.closed", (fields) => fields.id === session.id);
    using again = await TestClient.connect(proxy.port);
    const reply = await again.hello(`RESUME ${session.id} ${session.secret}`);
    assert.deepEqual([reply.from, reply.pending, reply.state], [0, 10, "closed"]);
    assert.equal(decoder.decode(await again.readToEnd()), "last words");
    const last = await poll(proxy.port, session, 10);
    assert.deepEqual([last.reply.pending, last.reply.state], [0, "closed"]);
    await proxy.logs.waitFor("session.closed", (fields) => fields.id === session.id);
  });

  await t.step(
    "acknowledged client: session kept until the last byte is acknowledged",
    async () => {
      const client = await TestClient.connect(proxy.port);
      const session = await client.hello("NEW");
      client.close();
      const dest = await destination.accepted();
      await writeAll(dest, encoder.encode("bye"));
      dest.close();
      await proxy.logs.waitFor("destination.closed", (fields) => fields.id === session.id);
      using first = await TestClient.connect(proxy.port);
      const reply = await first.hello(`RESUME ${session.id} ${session.secret} 0`);
      assert.deepEqual([reply.pending, reply.state], [3, "closed"]);
      assert.equal(decoder.decode(await first.readToEnd()), "bye");
      // The response might have been lost: the same poll still works.
      const repeat = await poll(proxy.port, session, 0);
      assert.equal(decoder.decode(repeat.data), "bye");
      using last = await TestClient.connect(proxy.port);
      const final = await last.hello(`RESUME ${session.id} ${session.secret} 3`);
      assert.deepEqual([final.from, final.pending, final.state], [3, 0, "closed"]);
      assert.equal((await last.readToEnd()).length, 0);
      await assert.rejects(poll(proxy.port, session, 3), isError("auth"));
    },
  );
});

Deno.test("a detached session is closed after --idle-timeout", async () => {
  await using opened = await openSession({ idleTimeout: 50 });
  const { proxy, client, session, dest } = opened;
  client.close();
  const expired = await proxy.logs.waitFor("session.expired", (fields) => fields.id === session.id);
  assert.equal(expired.fields.peer, peerOf(client), "the last client's address");
  assert.equal((await dest.readToEnd()).length, 0, "destination connection closed");
  assert.equal(proxy.server.counters.sessionsExpired, 1);
  await assert.rejects(poll(proxy.port, session, 0), isError("auth"));
});

Deno.test("input is forwarded in order across a takeover", async () => {
  await using opened = await openSession();
  const { proxy, client: first, session, dest } = opened;
  await first.write("1111");
  assert.equal(decoder.decode(await dest.readExactly(4)), "1111");
  using second = await TestClient.connect(proxy.port);
  await second.write(`RESUME ${session.id} ${session.secret}\n2222`);
  const reply = parseOk(await second.readLine());
  assert.equal(reply.in, 4);
  await second.write("3333");
  assert.equal(decoder.decode(await dest.readExactly(8)), "22223333");
});

Deno.test("a stalled client and a hostile connection never delay another session", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port, { bufferSize: 64 * 1024 });
  // A client that sends a flood its echo cannot return, and never reads.
  using stalled = await TestClient.connect(proxy.port);
  await stalled.hello("NEW");
  const flood = stalled.write(new Uint8Array(8 * 1024 * 1024)).catch(() => {});
  // A connection that never finishes its hello, and one sending junk.
  using silent = await TestClient.connect(proxy.port);
  await silent.write("RESUME ");
  using junk = await TestClient.connect(proxy.port);
  await junk.write(new Uint8Array(300).fill(0xff));
  // Meanwhile another session works normally.
  using healthy = await TestClient.connect(proxy.port);
  await healthy.hello("NEW");
  for (let i = 0; i < 20; i++) {
    await healthy.write(`round ${i}\n`);
    assert.equal(await healthy.readLine(), `round ${i}`);
  }
  stalled.close();
  await flood;
});

Deno.test("a client reset mid-transfer detaches without harm and the output waits", async () => {
  await using opened = await openSession();
  const { proxy, client, session, dest } = opened;
  const output = new Uint8Array(256 * 1024).map((_, i) => i % 253);
  const writing = dest.write(output);
  await client.readExactly(1000);
  await client.write("unread input makes close() send a reset");
  client.close();
  await proxy.logs.waitFor("session.detached", (fields) => fields.id === session.id);
  await writing;
  const collected: Uint8Array[] = [];
  let ack = 1000;
  while (ack < output.length) {
    const { data } = await poll(proxy.port, session, ack);
    collected.push(data);
    ack += data.length;
  }
  assert.deepEqual(concatBytes(collected), output.subarray(1000));
});

Deno.test("closing the server closes every client and destination connection", async () => {
  await using destination = new Destination();
  const proxy = startServer(destination.port);
  using attached = await TestClient.connect(proxy.port);
  await attached.hello("NEW");
  using dest = new TestClient(await destination.accepted());
  using handshaking = await TestClient.connect(proxy.port);
  await handshaking.write("RES");
  await proxy.server.close();
  assert.equal((await attached.readToEnd()).length, 0);
  assert.equal((await dest.readToEnd()).length, 0);
  // Its "RES" may still be unread when the server closes it, and Linux
  // then resets rather than ends the connection: closed either way.
  const rest = await handshaking.readToEnd().catch((error) => {
    assert.ok(error instanceof Deno.errors.ConnectionReset, String(error));
    return new Uint8Array(0);
  });
  assert.equal(rest.length, 0);
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: proxy.port }));
});

Deno.test("takeovers on a quiet session leave no pumps behind", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const first = await TestClient.connect(proxy.port);
  const clients = [first];
  try {
    const session = await first.hello("NEW");
    using _dest = new TestClient(await destination.accepted());
    for (let i = 0; i < 100; i++) {
      const client = await TestClient.connect(proxy.port);
      clients.push(client);
      await client.hello(`RESUME ${session.id} ${session.secret}`);
    }
    const last = clients[clients.length - 1] ?? first;
    await proxy.logs.waitFor("session.taken_over", (fields) => fields.by === peerOf(last));
    const stats = proxy.server.store.get(session.id)?.stats();
    // The destination reader and the last client's two pumps; the others ended.
    assert.ok(stats && stats.tasks <= 3, `tasks ${stats?.tasks}`);
  } finally {
    for (const client of clients) client.close();
  }
});

/** The client's address as the server logs it (its `peer`). */
function peerOf(client: TestClient): string {
  return formatHostPort(client.conn.localAddr);
}

/** Sends input the destination never reads until the way there is full; never settles. */
function clog(client: TestClient): void {
  client.write(new Uint8Array(64 * 1024 * 1024)).catch(() => {});
}

Deno.test("a client that leaves while the destination does not read is detached and expires", async () => {
  await using opened = await openSession({ idleTimeout: 50 });
  const { proxy, client: first, session } = opened; // the destination never reads
  clog(first);
  const client = await TestClient.connect(proxy.port);
  await client.hello(`RESUME ${session.id} ${session.secret}`);
  await client.write("one more line\n");
  client.close();
  await proxy.logs.waitFor("session.detached", (fields) => fields.peer === peerOf(client));
  await proxy.logs.waitFor("session.expired", (fields) => fields.id === session.id);
});

Deno.test("polls carrying input to a destination that does not read each detach", async () => {
  await using opened = await openSession();
  const { proxy, client: first, session } = opened; // the destination never reads
  clog(first);
  let last: TestClient | undefined;
  for (let i = 0; i < 50; i++) {
    using client = await TestClient.connect(proxy.port);
    await client.write(`RESUME ${session.id} ${session.secret} 0\n${"x".repeat(1000)}`);
    await client.readLine();
    last = client;
  }
  assert.ok(last);
  await proxy.logs.waitFor("session.detached", (fields) => fields.peer === peerOf(last));
  const stats = proxy.server.store.get(session.id)?.stats();
  assert.ok(stats && !stats.attached && stats.tasks <= 1, `tasks ${stats?.tasks}`);
});

Deno.test("a small buffer still keeps most of what it streamed, for a resume a little way back", async () => {
  await using opened = await openSession({ bufferSize: 64 * 1024 });
  const { proxy, client, session, dest } = opened;
  const output = new Uint8Array(1024 * 1024).map((_, i) => (i * 13) % 256);
  const writing = dest.write(output);
  assert.deepEqual(await client.readExactly(output.length), output);
  await writing;
  client.close();
  const { reply, data } = await poll(proxy.port, session, output.length - 32 * 1024);
  assert.equal(reply.pending, 32 * 1024);
  assert.deepEqual(data, output.subarray(output.length - 32 * 1024));
});

Deno.test("a poll's attach and detach are logged at debug level, a stream's at info", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const session = await (async () => {
    using client = await TestClient.connect(proxy.port);
    return await client.hello("NEW");
  })();
  await proxy.logs.waitFor("session.detached");
  {
    using polled = await TestClient.connect(proxy.port);
    await polled.hello(`RESUME ${session.id} ${session.secret} 0`);
  }
  await proxy.logs.waitFor(
    "session.detached",
    (fields) => proxy.logs.events("session.detached").length === 2 && fields.id === session.id,
  );
  const levels = (event: string) => proxy.logs.events(event).map((record) => record.level);
  assert.deepEqual(levels("session.attached"), ["info", "debug"]);
  assert.deepEqual(levels("session.detached"), ["info", "debug"]);
  assert.deepEqual(levels("session.created"), ["info"]);
});
