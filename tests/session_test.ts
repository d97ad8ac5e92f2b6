/**
 * One session with connections in memory: the moments a socket cannot be
 * made to hit on cue (a destination write held, a client's input ready at
 * once).
 */

import assert from "node:assert/strict";
import { newCounters } from "../lib/proxy/counters.ts";
import { Session, type SessionOptions } from "../lib/proxy/session.ts";
import { FakeConn } from "./_fake_conn.ts";
import { decoder, encoder, LogCapture, randomBytes, withDeadline } from "./_helpers.ts";

/** A session over `destination`, its logs, and its detach and end events as promises. */
function sessionOver(destination: FakeConn, options: Partial<SessionOptions> = {}) {
  const logs = new LogCapture();
  const ended = Promise.withResolvers<void>();
  const detaches: (() => void)[] = [];
  const session = new Session({
    id: "session-under-test",
    secret: "not-a-real-secret-at-all",
    destination: destination.conn,
    bufferSize: 64 * 1024,
    logger: logs.logger,
    counters: newCounters(),
    events: {
      attached() {},
      detached() {
        for (const detach of detaches.splice(0)) detach();
      },
      ended: () => ended.resolve(),
    },
    ...options,
  });
  return {
    session,
    logs,
    ended: withDeadline(ended.promise, 10_000, "session end"),
    /** Calls `then` at the next detach. */
    onDetach(then: () => void): void {
      detaches.push(then);
    },
    async [Symbol.asyncDispose]() {
      session.close("test over");
      await session.settled();
    },
  };
}

Deno.test("a detached session whose destination closed ends after the closed timeout", async () => {
  const destination = new FakeConn();
  // The store has no idle timeout to end it (--idle-timeout=0).
  await using under = sessionOver(destination, { closedTimeout: 10 });
  const client = new FakeConn();
  under.session.attach(client.conn, { peer: "127.0.0.1:1" });
  destination.feed(encoder.encode("bye"));
  destination.end();
  // A streaming client is sent the rest and disconnected; nothing says it got it.
  await under.logs.waitFor("session.detached", (fields) => fields.reason === "destination closed");
  assert.ok(decoder.decode(client.output()).endsWith(" open\nbye"));
  await under.ended;
  const [closed] = under.logs.events("session.closed");
  assert.equal(closed?.fields.reason, "destination closed, end not acknowledged");
});

Deno.test("a closed destination's output no client was sent is kept past the closed timeout", async () => {
  // Closed first, so its timer, had it one, would fire before the other's.
  const unsent = new FakeConn();
  await using kept = sessionOver(unsent, { closedTimeout: 10 });
  unsent.feed(encoder.encode("never sent"));
  unsent.end();
  await kept.logs.waitFor("destination.closed");
  const sent = new FakeConn();
  await using ended = sessionOver(sent, { closedTimeout: 10 });
  ended.session.attach(new FakeConn().conn, { peer: "127.0.0.1:1" });
  sent.end();
  await ended.ended;
  assert.equal(kept.session.ended, false, "still there for a client to collect");
  assert.equal(kept.session.stats().buffered, "never sent".length);
});

Deno.test("destination events name the attached client", async () => {
  const destination = new FakeConn();
  await using under = sessionOver(destination);
  under.session.attach(new FakeConn().conn, { peer: "127.0.0.1:1", leftover: encoder.encode("x") });
  destination.beforeWrite = () => Promise.reject(new Deno.errors.ConnectionReset("reset"));
  const error = await under.logs.waitFor("destination.error");
  assert.equal(error.fields.peer, "127.0.0.1:1");
  const closed = await under.logs.waitFor("destination.closed");
  assert.equal(closed.fields.peer, "127.0.0.1:1");
});

Deno.test("a client that closes its side stays until its input fits what waits for the destination", async () => {
  const destination = new FakeConn();
  destination.hold();
  await using under = sessionOver(destination);
  // Each stands for a hello's leftover and two full reads: all a receiver holds.
  const first = randomBytes(600 * 1024, 1);
  const second = randomBytes(600 * 1024, 2);
  const one = new FakeConn();
  one.end();
  const oneLeft = Promise.withResolvers<number>();
  under.onDetach(() => oneLeft.resolve(destination.writtenBytes));
  under.session.attach(one.conn, { peer: "127.0.0.1:1", ack: 0, leftover: first });
  assert.equal(await oneLeft.promise, 0, "forwarded at once while the destination is idle");
  const two = new FakeConn();
  two.end();
  const twoLeft = Promise.withResolvers<number>();
  under.onDetach(() => twoLeft.resolve(destination.writtenBytes));
  under.session.attach(two.conn, { peer: "127.0.0.1:2", ack: 0, leftover: second });
  // Nothing marks that the session has seen this EOF and kept the client:
  // one turn of the event loop lets a session that would not wait show it.
  await new Promise((resolve) => setTimeout(resolve, 0));
  destination.release();
  assert.equal(await twoLeft.promise, first.length, "detached once the first input was taken");
  await destination.waitForWritten(first.length + second.length);
  assert.deepEqual(destination.output(), new Uint8Array([...first, ...second]));
  assert.equal(under.session.stats().bytesIn, first.length + second.length);
});

Deno.test("a client attached a while gets TCP keep-alive and is moved onto node:net; a poll-long one neither", async () => {
  const destination = new FakeConn();
  await using under = sessionOver(destination);
  const client = new FakeConn();
  under.session.attach(client.conn, { peer: "127.0.0.1:1", ack: 0 });
  const attachedAt = performance.now();
  under.session.keepAlive(attachedAt, 1000);
  assert.deepEqual([client.keptAlive, client.madeFair], [false, false], "just attached");
  under.session.keepAlive(attachedAt + 1500, 1000);
  assert.deepEqual([client.keptAlive, client.madeFair], [true, true], "attached 1.5 s");
});

Deno.test("a streaming or framed client is moved onto node:net as it attaches; an acknowledged one is not", async () => {
  for (
    const [options, moved] of [[{}, true], [{ ack: 0, framed: true }, true], [
      { ack: 0 },
      false,
    ]] as const
  ) {
    const destination = new FakeConn();
    await using under = sessionOver(destination);
    const client = new FakeConn();
    under.session.attach(client.conn, { peer: "127.0.0.1:1", ...options });
    assert.equal(client.madeFair, moved, JSON.stringify(options));
  }
});
