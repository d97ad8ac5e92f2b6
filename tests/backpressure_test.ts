/**
 * Backpressure: memory stays within --buffer and nothing is lost, because
 * the server stops reading whichever side is ahead.
 */

import assert from "node:assert/strict";
import { newCounters } from "../lib/proxy/counters.ts";
import { Session } from "../lib/proxy/session.ts";
import { FakeConn } from "./_fake_conn.ts";
import {
  Destination,
  firstDifference,
  LogCapture,
  poll,
  randomBytes,
  startServer,
  TestClient,
} from "./_helpers.ts";

const FLOOD = 32 * 1024 * 1024;

Deno.test("with --buffer=64k a flooding destination is pushed back and nothing is lost", async () => {
  const bufferSize = 64 * 1024;
  await using destination = new Destination();
  await using proxy = startServer(destination.port, { bufferSize });
  const client = await TestClient.connect(proxy.port);
  const session = await client.hello("NEW");
  client.close();
  await proxy.logs.waitFor("session.detached");
  using dest = new TestClient(await destination.accepted());
  const output = randomBytes(FLOOD, 64);
  let flooded = false;
  const flooding = dest.write(output).then(() => flooded = true);
  flooding.catch(() => {});

  await proxy.logs.waitFor("destination.paused");
  const stats = proxy.server.store.get(session.id)?.stats();
  assert.ok(stats);
  assert.equal(stats.buffered, bufferSize, "the buffer is full");
  assert.equal(stats.bytesOut, bufferSize, "and the server read no more than that");
  assert.equal(flooded, false, "the destination's write is held back by TCP");

  const received = new Uint8Array(FLOOD);
  let ack = 0;
  while (ack < FLOOD) {
    const { reply, data } = await poll(proxy.port, session, ack);
    assert.ok(reply.pending <= bufferSize);
    const retained = proxy.server.store.get(session.id)?.stats().buffered ?? 0;
    assert.ok(retained <= bufferSize, `retained ${retained} > ${bufferSize}`);
    received.set(data, ack);
    ack += data.length;
  }
  await flooding;
  assert.equal(firstDifference(received, output), -1);
});

Deno.test("input is read no faster than the destination takes it", async () => {
  // A client whose input is always there to read at once, and a destination
  // that takes each write only after a turn of the event loop: a session
  // that read ahead without limit would read all of the flood meanwhile.
  const leftover = randomBytes(300, 66);
  const input = randomBytes(FLOOD, 65);
  const client = new FakeConn();
  client.feed(input);
  const destination = new FakeConn();
  destination.beforeWrite = () => new Promise((resolve) => setTimeout(resolve, 0));
  // The session holds input in two buffers of at most 512 KiB
  // (MAX_INPUT_CHUNK in lib/proxy/session.ts), one being written to the
  // destination and one being read into, after the hello's leftover: that
  // is all it may have read that the destination has not taken.
  const allowed = leftover.length + 2 * 512 * 1024;
  let ahead = 0;
  client.onRead = () => {
    ahead = Math.max(ahead, leftover.length + client.readBytes - destination.writtenBytes);
  };
  const session = new Session({
    id: "flooded",
    secret: "not-a-real-secret-at-all",
    destination: destination.conn,
    bufferSize: 64 * 1024,
    logger: new LogCapture().logger,
    counters: newCounters(),
    events: { attached() {}, detached() {}, ended() {} },
  });
  try {
    session.attach(client.conn, { peer: "127.0.0.1:1", leftover });
    await destination.waitForWritten(leftover.length + FLOOD);
    assert.ok(ahead <= allowed, `read ${ahead} bytes ahead of the destination, allowed ${allowed}`);
    const expected = new Uint8Array(leftover.length + FLOOD);
    expected.set(leftover);
    expected.set(input, leftover.length);
    assert.equal(firstDifference(destination.output(), expected), -1);
    assert.equal(session.stats().bytesIn, expected.length);
  } finally {
    session.close("test over");
    await session.settled();
  }
});
