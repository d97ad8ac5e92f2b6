/**
 * Backpressure: memory stays within --buffer and nothing is lost, because
 * the server stops reading whichever side is ahead.
 */

import assert from "node:assert/strict";
import {
  Destination,
  firstDifference,
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
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  using client = await TestClient.connect(proxy.port);
  const session = await client.hello("NEW");
  using dest = new TestClient(await destination.accepted());
  const input = randomBytes(FLOOD, 65);
  let sent = false;
  const sending = client.write(input).then(() => sent = true);
  sending.catch(() => {});
  // The destination reads nothing yet. No event marks the moment the flood
  // stalls, so watch the server's input count until it stops moving.
  const stats = () => proxy.server.store.get(session.id)?.stats().bytesIn ?? -1;
  let last = -1;
  for (let unchanged = 0, round = 0; unchanged < 5; round++) {
    assert.ok(round < 500, "input never stalled");
    await new Promise((resolve) => setTimeout(resolve, 20));
    unchanged = stats() === last ? unchanged + 1 : 0;
    last = stats();
  }
  assert.equal(sent, false, "the client's write is held back by TCP");
  assert.ok(last < FLOOD / 2, `server took ${last} bytes of input the destination never read`);
  const received = await dest.readExactly(FLOOD);
  await sending;
  assert.equal(firstDifference(received, input), -1);
});
