/**
 * Randomized, seeded runs that stream several MiB through a session while
 * the client connection is dropped abruptly at random points and resumed
 * with the true ack (output) or from the server's `<in>` (input). The
 * received stream must equal the sent one byte for byte.
 *
 * Set SEED=n to replay a run.
 */

import assert from "node:assert/strict";
import { writeAll } from "../lib/_io.ts";
import {
  Destination,
  firstDifference,
  prng,
  randomBytes,
  startServer,
  TestClient,
} from "./_helpers.ts";

const SEED = Number(Deno.env.get("SEED") ?? 20261125);
const TOTAL = 4 * 1024 * 1024;
const MAX_ATTACHMENTS = 2000;

/** Ends a client connection in one of the ways a real one dies. */
async function drop(client: TestClient, random: () => number): Promise<void> {
  const way = random();
  if (way < 0.4) {
    client.close(); // with unread output in flight this is a reset
  } else if (way < 0.7) {
    await client.conn.closeWrite().catch(() => {});
    client.close();
  } else {
    await client.write("unread input, so close() resets").catch(() => {});
    client.close();
  }
}

function assertStreamsEqual(received: Uint8Array, expected: Uint8Array, seed: number): void {
  const at = firstDifference(received, expected);
  assert.equal(at, -1, `seed ${seed}: streams differ at byte ${at} of ${expected.length}`);
}

Deno.test(`output survives random drops with acknowledged resumes (seed ${SEED})`, async () => {
  const random = prng(SEED);
  const output = randomBytes(TOTAL, SEED);
  await using destination = new Destination();
  const bufferSize = 256 * 1024;
  await using proxy = startServer(destination.port, { bufferSize });
  const first = await TestClient.connect(proxy.port);
  const session = await first.hello("NEW");
  first.close();
  const dest = await destination.accepted();
  const flooding = writeAll(dest, output);
  flooding.catch(() => {}); // reported where awaited; a failed test must not leave it unhandled
  const received = new Uint8Array(TOTAL);
  let ack = 0;
  let attachments = 0;
  while (ack < TOTAL) {
    assert.ok(++attachments <= MAX_ATTACHMENTS, `seed ${SEED}: too many attachments`);
    const client = await TestClient.connect(proxy.port);
    const reply = await client.hello(`RESUME ${session.id} ${session.secret} ${ack}`);
    assert.equal(reply.from, ack);
    assert.ok(reply.pending <= bufferSize, "never more than --buffer beyond the ack");
    const want = Math.min(TOTAL - ack, 1 + Math.floor(random() * 64 * 1024));
    const chunk = await client.readExactly(want);
    received.set(chunk, ack);
    ack += chunk.length;
    await drop(client, random);
  }
  await flooding;
  dest.close();
  assertStreamsEqual(received, output, SEED);
  for (const line of proxy.logs.lines) {
    assert.ok(!line.includes(session.secret), "secret in a log line");
  }
});

Deno.test(`output survives random drops of streaming attachments (seed ${SEED + 1})`, async () => {
  const seed = SEED + 1;
  const random = prng(seed);
  const output = randomBytes(TOTAL, seed);
  await using destination = new Destination();
  // Larger than the whole output: streaming retains all it sent, so every
  // resume with the true ack succeeds.
  await using proxy = startServer(destination.port, { bufferSize: 2 * TOTAL });
  let client = await TestClient.connect(proxy.port);
  const session = await client.hello("NEW");
  const dest = await destination.accepted();
  const flooding = writeAll(dest, output);
  flooding.catch(() => {}); // reported where awaited; a failed test must not leave it unhandled
  const received = new Uint8Array(TOTAL);
  let ack = 0;
  for (let attachments = 1; ack < TOTAL; attachments++) {
    assert.ok(attachments <= MAX_ATTACHMENTS, `seed ${seed}: too many attachments`);
    const want = Math.min(TOTAL - ack, 1 + Math.floor(random() * 128 * 1024));
    const chunk = await client.readExactly(want);
    received.set(chunk, ack);
    ack += chunk.length;
    await drop(client, random);
    client = await TestClient.connect(proxy.port);
    // Resume exactly, then sometimes continue in streaming mode.
    const reply = await client.hello(`RESUME ${session.id} ${session.secret} ${ack}`);
    assert.equal(reply.from, ack);
    if (random() < 0.5 && ack < TOTAL) {
      const exact = await client.readExactly(reply.pending);
      received.set(exact, ack);
      ack += exact.length;
      client.close();
      client = await TestClient.connect(proxy.port);
      const streaming = await client.hello(`RESUME ${session.id} ${session.secret}`);
      // Output sent to the closed connection after the pending bytes is
      // not repeated in streaming mode: take it from the retained output.
      if (streaming.from > ack) {
        client.close();
        client = await TestClient.connect(proxy.port);
        await client.hello(`RESUME ${session.id} ${session.secret} ${ack}`);
      }
    }
  }
  client.close();
  await flooding;
  dest.close();
  assertStreamsEqual(received, output, seed);
});

Deno.test(`input survives random drops, resent from <in> (seed ${SEED + 2})`, async () => {
  const seed = SEED + 2;
  const random = prng(seed);
  const input = randomBytes(TOTAL, seed);
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  const first = await TestClient.connect(proxy.port);
  const session = await first.hello("NEW");
  first.close();
  using dest = new TestClient(await destination.accepted());
  const draining = dest.readExactly(TOTAL);
  let confirmed = 0;
  for (let attachments = 1; confirmed < TOTAL; attachments++) {
    assert.ok(attachments <= MAX_ATTACHMENTS, `seed ${seed}: too many attachments`);
    using client = await TestClient.connect(proxy.port);
    const ack = random() < 0.5 ? " 0" : "";
    const reply = await client.hello(`RESUME ${session.id} ${session.secret}${ack}`);
    assert.ok(reply.in >= confirmed && reply.in <= TOTAL, `in ${reply.in}`);
    confirmed = reply.in;
    const end = Math.min(TOTAL, confirmed + 1 + Math.floor(random() * 128 * 1024));
    const split = confirmed + Math.floor(random() * (end - confirmed));
    await client.write(input.subarray(confirmed, split));
    await client.write(input.subarray(split, end));
    if (random() < 0.5) await client.conn.closeWrite();
    client.close();
  }
  const received = await draining;
  assertStreamsEqual(received, input, seed);
});
