/**
 * The client library against a real server: sessions, polls, streams,
 * reconnects that resend in both directions, and every typed error.
 */

import assert from "node:assert/strict";
import {
  AckError,
  AuthError,
  BadRequestError,
  BusyError,
  ClientSession,
  ConnectionLostError,
  GapError,
  HandshakeTimeoutError,
  ProxyUnavailableError,
  SessionEndedError,
  UnreachableError,
} from "../lib/client/mod.ts";
import { parseReply } from "../lib/protocol.ts";
import { writeAll } from "../lib/_io.ts";
import {
  decoder,
  Destination,
  echoDestination,
  encoder,
  firstDifference,
  issuedSecrets,
  prng,
  randomBytes,
  ServerProcess,
  startServer,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";
import { FakeConn } from "./_fake_conn.ts";

function at(port: number) {
  return { proxy: { hostname: "127.0.0.1", port } };
}

async function created(port: number): Promise<ClientSession> {
  const session = await ClientSession.create(at(port));
  issuedSecrets.add(session.secret);
  return session;
}

Deno.test("a session created by the library is polled exactly, with input sent along", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const session = await created(proxy.port);
  assert.match(session.id, /^[A-Za-z0-9_-]{1,64}$/);
  assert.equal(session.state, "open");
  using dest = new TestClient(await destination.accepted());
  await dest.write("banner\n");
  // The banner came while no client was attached: the first poll has it.
  assert.equal(decoder.decode(await session.poll({ wait: WAIT_MS })), "banner\n");
  assert.equal(session.received, 7);
  session.send("look\n");
  assert.equal(session.unconfirmed, 5);
  await session.poll();
  assert.equal(decoder.decode(await dest.readExactly(5)), "look\n");
  await session.poll(); // its reply confirms the input
  assert.equal(session.unconfirmed, 0);
  await session.close();
});

Deno.test("create() with readFirstOutput false leaves after the reply: the first poll reads from 0", async () => {
  const destination = new FakeConn();
  destination.feed(encoder.encode("banner\n")); // said at once, before any client reads
  await using proxy = startServer(0, { connect: () => Promise.resolve(destination.conn) });
  const session = await ClientSession.create({ ...at(proxy.port), readFirstOutput: false });
  issuedSecrets.add(session.secret);
  assert.equal(session.received, 0);
  assert.equal(decoder.decode(await session.poll()), "banner\n");
  // Nothing was held from NEW's connection: the poll itself asked for offset 0.
  const polled = proxy.logs.events("session.attached").at(-1)?.fields;
  assert.equal(polled?.mode, "acknowledged");
  assert.equal(polled?.from, 0);
  assert.equal(session.received, 7);
  await session.close();
});

Deno.test("poll with wait returns as soon as output arrives", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const session = await created(proxy.port);
  using dest = new TestClient(await destination.accepted());
  const polling = session.poll({ wait: 10_000 });
  await proxy.logs.waitFor("session.attached", (fields) => fields.mode === "acknowledged");
  await dest.write("now");
  assert.equal(decoder.decode(await polling), "now");
  assert.equal(session.received, 3);
});

Deno.test("poll until the deadline collects everything that arrives in the wait", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  const session = await created(proxy.port);
  session.send("one\n");
  const output = await session.poll({ wait: 300, until: "deadline" });
  assert.equal(decoder.decode(output), "one\n");
});

Deno.test("stream yields output as it arrives and a signal detaches it", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const session = await created(proxy.port);
  using dest = new TestClient(await destination.accepted());
  const stop = new AbortController();
  const chunks: string[] = [];
  await dest.write("first ");
  for await (const chunk of session.stream({ signal: stop.signal })) {
    chunks.push(decoder.decode(chunk));
    const text = chunks.join("");
    if (text === "first ") await dest.write("second");
    if (text === "first second") stop.abort();
  }
  assert.equal(chunks.join(""), "first second");
  await proxy.logs.waitFor("session.detached");
  assert.equal(proxy.server.store.size, 1, "detaching leaves the session alive");
});

Deno.test("output lost with a dropped connection is fetched again, exactly", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const session = await created(proxy.port);
  using dest = new TestClient(await destination.accepted());
  // Another connection of this client is sent output, then dies with it.
  using doomed = await TestClient.connect(proxy.port);
  await doomed.hello(`RESUME ${session.id} ${session.secret}`);
  await dest.write("lost in transit");
  await doomed.readExactly(15);
  doomed.close();
  // Streaming: the library sees the server's offset ahead and fetches the gap first.
  const output: string[] = [];
  const stop = new AbortController();
  for await (const chunk of session.stream({ signal: stop.signal })) {
    output.push(decoder.decode(chunk));
    if (output.join("") === "lost in transit") stop.abort();
  }
  assert.equal(output.join(""), "lost in transit");
  assert.equal(session.received, 15);
});

Deno.test("a stream behind a small, full buffer resumes exactly where this client stands: no gap of its own", async () => {
  const total = 256 * 1024;
  const output = randomBytes(total, 23);
  await using destination = new Destination();
  await using proxy = startServer(destination.port, { bufferSize: 4096 });
  const session = await created(proxy.port);
  using dest = new TestClient(await destination.accepted());
  // A destination that keeps sending: the buffer fills, and the rest waits on it.
  const writing = dest.write(output);
  writing.catch(() => {}); // reported where awaited
  // Another connection of this client is sent output past what the library has, then dies.
  using doomed = await TestClient.connect(proxy.port);
  await doomed.hello(`RESUME ${session.id} ${session.secret} 0`);
  await doomed.readExactly(1000);
  doomed.close();
  const received = new Uint8Array(total);
  const stop = new AbortController();
  await withDeadline(
    (async () => {
      for await (const chunk of session.stream({ signal: stop.signal })) {
        received.set(chunk, session.received - chunk.length);
        if (session.received === total) stop.abort();
      }
    })(),
    WAIT_MS,
    "all output",
  );
  assert.equal(session.received, total);
  assert.equal(firstDifference(received, output), -1, "output");
  assert.equal(proxy.server.counters.gaps, 0);
  await writing;
});

Deno.test("input given while another client has the session is kept, and resent once", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const session = await created(proxy.port);
  using dest = new TestClient(await destination.accepted());
  const stream = session.stream();
  const first = stream.next(); // attaches
  await proxy.logs.waitFor("session.attached", (fields) => fields.mode === "framed");
  // Another client takes over: the server tells the stream so, and it ends.
  using thief = await TestClient.connect(proxy.port);
  await thief.hello(`RESUME ${session.id} ${session.secret}`);
  const ended = await first;
  assert.deepEqual(ended, { done: true, value: "taken-over" });
  assert.equal(session.streamEnd, "taken-over");
  session.send("must arrive once");
  await session.flush();
  thief.close();
  await proxy.logs.waitFor(
    "session.detached",
    (fields) => fields.peer === `127.0.0.1:${thief.conn.localAddr.port}`,
  );
  const reply = await session.poll();
  assert.equal(reply.length, 0);
  assert.equal(decoder.decode(await dest.readExactly(16)), "must arrive once");
  await session.poll();
  assert.equal(session.unconfirmed, 0);
});

Deno.test("a poll cut short hands out what it read and counts only that", async () => {
  const id = "abcdefghijklmnop";
  const secret = "S".repeat(32);
  await using fake = replyingWith(`OK ${id} ${secret} 0 0 10 open\nABCD`);
  const session = ClientSession.resume({ id, secret }, { ...at(fake.port), ack: 0 });
  assert.equal(decoder.decode(await session.poll()), "ABCD");
  assert.equal(session.received, 4);
  const again = ClientSession.resume({ id, secret }, { ...at(fake.port), ack: 0 });
  const connection = await again.connect();
  await assert.rejects(connection.readExactly(10), ConnectionLostError);
  assert.equal(again.received, 0, "nothing counted that was not handed out");
  const held = await connection.read();
  assert.equal(decoder.decode(held ?? new Uint8Array()), "ABCD");
  assert.equal(again.received, 4);
});

Deno.test("a poll with an aborted signal does not connect", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const session = await created(proxy.port);
  const attached = proxy.logs.events("session.attached").length;
  assert.equal((await session.poll({ wait: WAIT_MS, signal: AbortSignal.abort() })).length, 0);
  assert.equal(proxy.logs.events("session.attached").length, attached);
});

Deno.test("a poll whose input the destination does not take returns, keeping the input", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const session = await created(proxy.port);
  using _dest = new TestClient(await destination.accepted()); // never reads
  session.send(new Uint8Array(32 * 1024 * 1024));
  await withDeadline(session.poll(), WAIT_MS, "the poll");
  assert.ok(session.unconfirmed > 0);
});

Deno.test(
  "random drops in both directions: every byte arrives exactly once (seed 7)",
  async () => {
    const random = prng(7);
    const total = 1024 * 1024;
    const output = randomBytes(total, 70);
    const input = randomBytes(total, 71);
    await using destination = new Destination();
    await using proxy = startServer(destination.port, { bufferSize: 2 * total });
    const session = await created(proxy.port);
    using dest = new TestClient(await destination.accepted());
    const writing = dest.write(output);
    const reading = dest.readExactly(total);
    // Reported where awaited; a failed assertion must not leave them unhandled.
    writing.catch(() => {});
    reading.catch(() => {});
    const received = new Uint8Array(total);
    let sent = 0;
    for (
      let round = 0;
      round < 5000 && (session.received < total || session.unconfirmed > 0);
      round++
    ) {
      if (sent < total) {
        const size = Math.min(total - sent, 1 + Math.floor(random() * 32 * 1024));
        session.send(input.subarray(sent, sent + size));
        sent += size;
      }
      const before = session.received;
      // All output is on its way: whatever the connection does not have yet, it will be sent.
      const want = Math.min(total - before, Math.floor(random() * 48 * 1024));
      if (want > 0 && random() < 0.5) {
        // A stream, stopped abruptly once it has handed out about what was wanted.
        const stop = new AbortController();
        for await (const chunk of session.stream({ signal: stop.signal })) {
          received.set(chunk, session.received - chunk.length);
          if (session.received - before >= want) stop.abort();
          else if (random() < 0.5) await session.flush();
        }
        continue;
      }
      const connection = await session.connect();
      assert.equal(session.received, before, "what the library holds back is not received yet");
      const chunk = await connection.readExactly(want);
      received.set(chunk, before);
      if (random() < 0.5) await session.flush();
      connection.close(); // often with output unread: a reset
    }
    assert.equal(session.received, total);
    assert.equal(session.unconfirmed, 0);
    assert.equal(firstDifference(received, output), -1, "output");
    assert.equal(firstDifference(await reading, input), -1, "input");
    await writing;
  },
);

Deno.test("every ERR becomes its typed error", async (t) => {
  await t.step("AuthError for an unknown session", async () => {
    await using destination = echoDestination();
    await using proxy = startServer(destination.port);
    const stranger = ClientSession.resume({ id: "nobody", secret: "A".repeat(32) }, at(proxy.port));
    await assert.rejects(stranger.poll(), AuthError);
    await assert.rejects(stranger.close(), AuthError);
  });

  await t.step("GapError with the lowest offset", async () => {
    await using destination = new Destination();
    await using proxy = startServer(destination.port, { bufferSize: 1024 });
    // A streaming client reads 8 KiB; the server keeps only the last 1 KiB.
    using streaming = await TestClient.connect(proxy.port);
    const session = await streaming.hello("NEW");
    using dest = new TestClient(await destination.accepted());
    await dest.write(new Uint8Array(8192));
    await streaming.readExactly(8192);
    const behind = ClientSession.resume(session, { ...at(proxy.port), ack: 0 });
    const error = await behind.poll().catch((caught) => caught);
    assert.ok(error instanceof GapError, String(error));
    assert.ok(error.lowest >= 8192 - 1024 && error.lowest <= 8192, `lowest ${error.lowest}`);
    behind.skipGap(error);
    assert.equal(behind.received, error.lowest);
    assert.equal((await behind.poll()).length, 8192 - error.lowest);
  });

  await t.step("AckError beyond what was sent", async () => {
    await using destination = echoDestination();
    await using proxy = startServer(destination.port);
    const session = await created(proxy.port);
    const ahead = ClientSession.resume(session, { ...at(proxy.port), ack: 99 });
    const error = await ahead.poll().catch((caught) => caught);
    assert.ok(error instanceof AckError);
    assert.equal(error.sent, 0);
  });

  await t.step("BusyError at the session limit", async () => {
    await using destination = echoDestination();
    await using proxy = startServer(destination.port, { maxSessions: 1 });
    await created(proxy.port);
    await assert.rejects(ClientSession.create(at(proxy.port)), BusyError);
  });

  await t.step("UnreachableError when the destination refuses", async () => {
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    closed.close();
    await using proxy = startServer(closed.addr.port);
    await assert.rejects(ClientSession.create(at(proxy.port)), UnreachableError);
  });

  await t.step(
    "HandshakeTimeoutError and BadRequestError, from a server that sends them",
    async () => {
      for (
        const [line, type] of [["ERR timeout slow", HandshakeTimeoutError], [
          "ERR bad-request no",
          BadRequestError,
        ]] as const
      ) {
        await using fake = replyingWith(`${line}\n`);
        await assert.rejects(ClientSession.create(at(fake.port)), type);
      }
    },
  );

  await t.step("ProxyUnavailableError when nothing listens", async () => {
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    closed.close();
    await assert.rejects(
      ClientSession.create(at(closed.addr.port)),
      (error: unknown) =>
        error instanceof ProxyUnavailableError &&
        error.message ===
          `no socketproxy server answering on 127.0.0.1:${closed.addr.port}: connection refused`,
    );
  });

  await t.step("ConnectionLostError for a peer that hangs up or is not a socketproxy", async () => {
    for (const answer of ["", "HTTP/1.1 400 Bad Request\r\n\r\n"]) {
      await using fake = replyingWith(answer);
      await assert.rejects(ClientSession.create(at(fake.port)), ConnectionLostError);
    }
  });

  await t.step("ConnectionLostError when no reply comes in time", async () => {
    await using fake = replyingWith(null);
    await assert.rejects(
      ClientSession.create({ ...at(fake.port), timeout: 100 }),
      (error: unknown) =>
        error instanceof ConnectionLostError && /within 100 ms/.test(error.message),
    );
  });
});

/** A fake proxy that answers every connection with `answer` and closes (`null`: never answers). */
function replyingWith(answer: string | null): AsyncDisposable & { port: number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open: Deno.Conn[] = [];
  const loop = (async () => {
    for await (const conn of listener) {
      open.push(conn);
      if (answer === null) continue;
      await conn.read(new Uint8Array(512)).catch(() => null);
      await writeAll(conn, encoder.encode(answer)).catch(() => {});
      conn.close();
      open.splice(open.indexOf(conn), 1);
    }
  })();
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const conn of open) conn.close();
      await loop.catch(() => {});
    },
  };
}

Deno.test("close ends the session on the server", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const session = await created(proxy.port);
  using dest = new TestClient(await destination.accepted());
  await session.close();
  assert.equal(session.state, "closed");
  assert.equal((await dest.readToEnd()).length, 0);
  await assert.rejects(session.poll(), AuthError);
});

Deno.test("a session resumed without an offset starts at what no client was sent", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const first = await created(proxy.port);
  using dest = new TestClient(await destination.accepted());
  await dest.write("seen");
  assert.equal(decoder.decode(await first.poll({ wait: 10_000 })), "seen");
  // Both the NEW connection and the poll have left.
  await proxy.logs.waitFor(
    "session.detached",
    () => proxy.logs.events("session.detached").length === 2,
  );
  await dest.write(" unseen");
  const later = ClientSession.resume(first, at(proxy.port));
  assert.equal(decoder.decode(await later.poll({ wait: 10_000 })), " unseen");
  assert.equal(later.received, 11);
});

Deno.test("create misses nothing a destination says at once, even with a small buffer", async () => {
  const greeting = randomBytes(18_890, 3);
  const writes: Promise<void>[] = [];
  await using destination = new Destination((conn) => {
    writes.push(writeAll(conn, greeting).catch(() => {}));
  });
  // A server of its own process: it streams to the connection NEW opened
  // while this one is still reading the reply, as a real one does.
  await using server = new ServerProcess([
    "--proxy=127.0.0.1:0",
    "--admin=off",
    "--buffer=1k",
    `127.0.0.1:${destination.port}`,
  ]);
  const port = await server.port;
  for (let run = 0; run < 8; run++) {
    const session = await created(port);
    const received = new Uint8Array(greeting.length);
    // Acknowledged polls get at most --buffer beyond the ack each: a bounded number of them.
    for (let round = 0; round < 100 && session.received < greeting.length; round++) {
      const at = session.received;
      const output = await session.poll({ wait: WAIT_MS });
      received.set(output, at);
    }
    assert.equal(session.received, greeting.length, `run ${run}`);
    assert.equal(firstDifference(received, greeting), -1, `run ${run}`);
    await session.close();
  }
  await Promise.all(writes);
});

Deno.test("skipGap hands out the output held below the gap before jumping", async () => {
  const id = "abcdefghijklmnop";
  const secret = "S".repeat(32);
  await using fake = replyingWith(`OK ${id} ${secret} 0 0 10 open\nABCD`);
  const session = ClientSession.resume({ id, secret }, { ...at(fake.port), ack: 0 });
  const connection = await session.connect();
  // Cut short: the four bytes read are held for the next reader.
  await assert.rejects(connection.readExactly(10), ConnectionLostError);
  assert.equal(session.skipGap(new GapError("released", 100)), 96);
  assert.equal(session.received, 0, "the held bytes are not handed out yet");
  assert.equal(decoder.decode(await connection.read() ?? new Uint8Array()), "ABCD");
  assert.equal(session.received, 100, "then the jump");
  assert.equal(session.skipGap(new GapError("older", 50)), 0);
  assert.equal(session.received, 100);
});

Deno.test("resume refuses an id, secret or offset that is not well-formed", () => {
  const secret = "S".repeat(32);
  for (const id of ["has space", "line\nfeed", "", "x".repeat(65), "semi;colon"]) {
    assert.throws(
      () => ClientSession.resume({ id, secret }),
      (error: unknown) =>
        error instanceof TypeError && /a session id is 1 to 64/.test(error.message),
      JSON.stringify(id),
    );
  }
  for (const bad of ["short", `${secret} 0`, `${secret}\nNEW`]) {
    assert.throws(
      () => ClientSession.resume({ id: "abc", secret: bad }),
      (error: unknown) =>
        error instanceof TypeError && /a secret is 22 to 64/.test(error.message) &&
        !error.message.includes(bad),
    );
  }
  for (const ack of [-1, 1.5, 2 ** 60]) {
    assert.throws(() => ClientSession.resume({ id: "abc", secret }, { ack }), RangeError);
  }
});

Deno.test("a session the destination ends is ended once all output is taken: no more hellos", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const session = await created(proxy.port);
  const dest = await destination.accepted();
  await writeAll(dest, encoder.encode("bye"));
  dest.close();
  await proxy.logs.waitFor("destination.closed");
  session.send("too late");
  assert.equal(decoder.decode(await session.poll()), "bye");
  assert.equal(session.state, "closed");
  assert.equal(session.undelivered, 8, "input the server never received is given up");
  assert.equal(session.unconfirmed, 0);
  assert.equal(session.ended, false, "the server keeps it until the output is acknowledged");
  await session.poll(); // acknowledges "bye": the server ends the session
  assert.equal(session.ended, true);
  await proxy.logs.waitFor("session.closed");
  const attached = proxy.logs.events("session.attached").length;
  await assert.rejects(session.poll(), SessionEndedError);
  await assert.rejects(session.close(), SessionEndedError);
  session.send("and later");
  assert.equal(session.undelivered, 17);
  assert.equal(proxy.logs.events("session.attached").length, attached, "no hello was sent");
  assert.equal(proxy.server.counters.authFailures, 0);
});

Deno.test("a poll tells when the server ended it early, and whether it dropped the poll before any output", async (t) => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);

  await t.step("the destination closes with a last word: the session waits for it", async () => {
    const session = await created(proxy.port);
    const dest = await destination.accepted();
    const polling = session.poll({ wait: WAIT_MS, until: "deadline" });
    await proxy.logs.waitFor(
      "session.attached",
      (fields) => fields.id === session.id && fields.mode === "acknowledged",
    );
    await writeAll(dest, encoder.encode("bye"));
    dest.close();
    assert.equal(decoder.decode(await polling), "bye");
    assert.equal(session.detachedByServer, true);
    assert.equal(session.state, "open", "the reply came before the destination closed");
    assert.equal(session.droppedByServer, false, "it was sent output");
    await session.poll();
    assert.equal(session.state, "closed");
    assert.equal(session.detachedByServer, false);
    assert.equal(session.ended, true);
  });

  await t.step(
    "the destination closes without a word: dropped, and the next hello learns closed",
    async () => {
      const session = await created(proxy.port);
      const dest = await destination.accepted();
      const polling = session.poll({ wait: WAIT_MS, until: "deadline" });
      await proxy.logs.waitFor(
        "session.attached",
        (fields) => fields.id === session.id && fields.mode === "acknowledged",
      );
      dest.close();
      assert.equal((await polling).length, 0);
      assert.equal(session.detachedByServer, true);
      assert.equal(session.droppedByServer, true);
      assert.equal(session.mayHaveEnded, true, "the deprecated name says the same");
      assert.equal(session.ended, false);
      // The server keeps the session until a hello is told it closed: the next poll learns it.
      assert.equal(proxy.server.store.list().find((s) => s.id === session.id)?.state, "closed");
      await session.poll();
      assert.equal(session.state, "closed");
      assert.equal(session.ended, true);
      await proxy.logs.waitFor("session.closed", (fields) => fields.id === session.id);
    },
  );

  await t.step("a takeover looks the same from the poll", async () => {
    const session = await created(proxy.port);
    using _dest = new TestClient(await destination.accepted());
    const polling = session.poll({ wait: WAIT_MS, until: "deadline" });
    await proxy.logs.waitFor(
      "session.attached",
      (fields) => fields.id === session.id && fields.mode === "acknowledged",
    );
    using thief = await TestClient.connect(proxy.port);
    await thief.hello(`RESUME ${session.id} ${session.secret}`);
    assert.equal((await polling).length, 0);
    assert.equal(session.droppedByServer, true);
    assert.equal(proxy.server.store.size, 1);
    thief.close();
  });
  assert.equal(proxy.server.counters.authFailures, 0);
});

Deno.test("a wrong secret on a live session is one auth failure, not one per attempt", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  const owner = await created(proxy.port);
  const guesser = ClientSession.resume({ id: owner.id, secret: "W".repeat(32) }, at(proxy.port));
  await assert.rejects(guesser.poll(), AuthError);
  assert.equal(guesser.ended, true);
  await assert.rejects(guesser.poll(), SessionEndedError);
  assert.equal(proxy.server.counters.authFailures, 1);
  owner.send("still mine\n");
  assert.equal(decoder.decode(await owner.poll({ wait: WAIT_MS })), "still mine\n");
});

Deno.test("ERR bad-request and ERR timeout from the real server parse to their typed errors", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port, { handshakeTimeout: 50 });
  {
    using raw = await TestClient.connect(proxy.port);
    await raw.write("RESUME bad/id AAAAAAAAAAAAAAAAAAAAAAAA 0\n");
    const line = await raw.readLine();
    assert.throws(() => parseReply(line), BadRequestError);
  }
  {
    using raw = await TestClient.connect(proxy.port);
    await raw.write("RESUME"); // and nothing more
    const line = await raw.readLine();
    assert.throws(() => parseReply(line), HandshakeTimeoutError);
  }
});

Deno.test("a long stream keeps its input within one window, on one connection, and output exact", async () => {
  const total = 4 * 1024 * 1024;
  const chunk = 16 * 1024;
  const window = 256 * 1024;
  const input = randomBytes(total, 11);
  await using destination = echoDestination();
  await using proxy = startServer(destination.port, { bufferSize: window });
  const session = await created(proxy.port);
  const received = new Uint8Array(total);
  let most = 0;
  const stop = new AbortController();
  const stream = session.stream({ signal: stop.signal });
  // The first chunk asked for starts the attach, so flush() below waits for it.
  let next = stream.next();
  const sending = (async () => {
    for (let at = 0; at < total; at += chunk) {
      session.send(input.subarray(at, at + chunk));
      most = Math.max(most, session.unconfirmed);
      await session.flush();
    }
  })();
  try {
    for (let result = await next; !result.done; result = await next) {
      received.set(result.value, session.received - result.value.length);
      if (session.received === total) stop.abort();
      next = stream.next();
    }
  } finally {
    await stream.return("detached");
  }
  await sending;
  assert.equal(session.received, total);
  assert.equal(firstDifference(received, input), -1, "output");
  assert.ok(most <= window + chunk, `unconfirmed input reached ${most} bytes`);
  const attached = proxy.logs.events("session.attached");
  assert.equal(attached.length, 2, "create, then one framed connection");
  assert.equal(attached[1]?.fields.mode, "framed");
  assert.equal(proxy.server.counters.gaps, 0);
});
