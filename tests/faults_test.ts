/**
 * Fault injection: clients killed at random points, thousands of times,
 * while output and input both flow; destinations that reset, never read,
 * or never answer. Every byte must arrive exactly once, and the server
 * must go on serving.
 *
 * `deno task faults` runs the long version (FAULTS_MIB=64); SEED=n replays.
 */

import assert from "node:assert/strict";
import {
  decoder,
  Destination,
  echoDestination,
  firstDifference,
  poll,
  prng,
  randomBytes,
  startServer,
  TestClient,
} from "./_helpers.ts";

const SEED = Number(Deno.env.get("SEED") ?? 8);
const MIB = Number(Deno.env.get("FAULTS_MIB") ?? 2);

Deno.test(`clients killed thousands of times in both directions: every byte once (seed ${SEED}, ${MIB} MiB)`, async () => {
  const random = prng(SEED);
  const total = MIB * 1024 * 1024;
  const output = randomBytes(total, SEED);
  const input = randomBytes(total, SEED + 1);
  const received = new Uint8Array(total);
  const arrived = new Uint8Array(total);
  let arrivedCount = 0;
  const allArrived = Promise.withResolvers<void>();
  await using destination = new Destination((conn) => {
    // Writes all output (as fast as the proxy takes it) and reads all input.
    (async () => {
      for (let at = 0; at < total; at += 16384) await conn.write(output.subarray(at, at + 16384));
    })().catch(() => {});
    (async () => {
      const buffer = new Uint8Array(65536);
      while (arrivedCount < total) {
        const count = await conn.read(buffer);
        if (count === null) break;
        arrived.set(buffer.subarray(0, count), arrivedCount);
        arrivedCount += count;
      }
      allArrived.resolve();
    })().catch(() => {});
  });
  await using proxy = startServer(destination.port, { bufferSize: 64 * 1024 });
  const first = await TestClient.connect(proxy.port);
  const session = await first.hello("NEW");
  first.close();

  let ack = 0;
  let confirmed = 0; // input the server says it has
  let lingering: TestClient | null = null;
  const kills = {
    reset: 0,
    "half-close": 0,
    "input cut": 0,
    takeover: 0,
    "half hello": 0,
  };
  let attachments = 0;
  while (ack < total || confirmed < total) {
    assert.ok(++attachments < 50_000, `seed ${SEED}: no progress`);
    const kill = random();
    if (kill < 0.05) {
      // A connection that dies in its hello changes nothing.
      const half = await TestClient.connect(proxy.port);
      await half.write(`RESUME ${session.id} ${session.secret.slice(0, 5)}`);
      half.close();
      kills["half hello"]++;
    }
    const client = await TestClient.connect(proxy.port);
    const reply = await client.hello(`RESUME ${session.id} ${session.secret} ${ack}`);
    assert.equal(reply.from, ack);
    assert.ok(reply.in >= confirmed, "input confirmed never goes back");
    confirmed = reply.in;
    lingering?.close(); // taken over by now
    lingering = null;
    // Input: resend from what the server confirms, and a little more.
    const inputTo = Math.min(total, reply.in + Math.floor(random() * 2048));
    const cut = kill < 0.3 ? reply.in + Math.floor((inputTo - reply.in) / 2) : inputTo;
    if (cut > reply.in) await client.write(input.subarray(reply.in, cut));
    // Output: read some of what comes.
    const want = Math.min(total - ack, Math.floor(random() * 2048));
    // (Acknowledged delivery sends up to --buffer beyond the ack, and more output keeps coming.)
    const chunk = await client.readExactly(want);
    received.set(chunk, ack);
    ack += chunk.length;
    if (kill < 0.3) {
      client.close(); // in the middle of its input: a reset if output was unread
      kills["input cut"]++;
    } else if (kill < 0.55) {
      await client.conn.closeWrite().catch(() => {});
      client.close();
      kills["half-close"]++;
    } else if (kill < 0.75) {
      lingering = client; // left open: the next hello takes it over
      kills.takeover++;
    } else {
      client.close();
      kills.reset++;
    }
  }
  lingering?.close();
  await allArrived.promise;
  assert.equal(firstDifference(received, output), -1, `seed ${SEED}: output differs`);
  assert.equal(firstDifference(arrived, input), -1, `seed ${SEED}: input differs`);
  assert.ok(attachments >= 1000 * MIB, `only ${attachments} attachments`);
  for (const [how, count] of Object.entries(kills)) assert.ok(count > 0, `no ${how}`);
});

Deno.test("a destination that resets: the session ends cleanly, the server serves on", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  using client = await TestClient.connect(proxy.port);
  const session = await client.hello("NEW");
  const dest = await destination.accepted();
  await client.write("unread by the destination");
  await new TestClient(dest).write("last words");
  // Closing with unread input makes the destination's side send a reset.
  dest.close();
  await proxy.logs.waitFor("destination.closed", (fields) => fields.id === session.id);
  assert.equal(proxy.server.store.get(session.id)?.state, "closed");
  await using healthy = echoDestination();
  await using other = startServer(healthy.port);
  using fine = await TestClient.connect(other.port);
  await fine.hello("NEW");
  await fine.write("ok\n");
  assert.equal(await fine.readLine(), "ok");
  using another = await TestClient.connect(proxy.port);
  assert.equal((await another.hello("NEW")).state, "open", "the server still makes sessions");
  await destination.accepted();
});

Deno.test("a destination that accepts and never answers: sessions open, polls come back empty", async () => {
  await using destination = new Destination(); // accepts, never writes, never reads
  await using proxy = startServer(destination.port);
  using client = await TestClient.connect(proxy.port);
  const session = await client.hello("NEW");
  client.close();
  await destination.accepted();
  const { reply, data } = await poll(proxy.port, session, 0);
  assert.deepEqual([reply.state, data.length], ["open", 0]);
});

Deno.test("2 000 connections that never finish a hello time out while others are served", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port, { handshakeTimeout: 1500 });
  const stalled: TestClient[] = [];
  try {
    for (let i = 0; i < 2000; i++) {
      const conn = await TestClient.connect(proxy.port);
      stalled.push(conn);
      await conn.write("RESUME partial");
    }
    // Meanwhile a session works normally.
    using healthy = await TestClient.connect(proxy.port);
    await healthy.hello("NEW");
    for (let i = 0; i < 10; i++) {
      await healthy.write(`line ${i}\n`);
      assert.equal(await healthy.readLine(), `line ${i}`);
    }
    // Every stalled connection is answered ERR timeout and closed.
    let timedOut = 0;
    for (const conn of stalled) {
      if (/^ERR timeout /.test(await conn.readLine())) timedOut++;
    }
    assert.equal(timedOut, 2000);
  } finally {
    for (const conn of stalled) conn.close();
  }
});

Deno.test("memory stays bounded by --buffer x sessions while 100 destinations flood", async () => {
  const bufferSize = 64 * 1024;
  const flood = new Uint8Array(4 * 1024 * 1024);
  await using destination = new Destination((conn) => {
    (async () => {
      for (let i = 0; i < 8; i++) await conn.write(flood);
    })().catch(() => {});
  });
  await using proxy = startServer(destination.port, { bufferSize });
  const sessions = [];
  for (let i = 0; i < 100; i++) {
    using client = await TestClient.connect(proxy.port);
    sessions.push(await client.hello("NEW"));
  }
  // Every session's buffer fills and pushes back: 100 paused readers.
  const paused = () =>
    new Set(proxy.logs.events("destination.paused").map((record) => record.fields.id)).size;
  await proxy.logs.waitFor("destination.paused", () => paused() >= 100);
  let buffered = 0;
  for (const session of sessions) {
    const stats = proxy.server.store.get(session.id)?.stats();
    assert.ok(stats);
    assert.ok(stats.buffered <= bufferSize, `${stats.buffered} > ${bufferSize}`);
    assert.ok(stats.bytesOut <= bufferSize, "the server read no more than it could keep");
    buffered += stats.buffered;
  }
  assert.equal(buffered, 100 * bufferSize);
  const { data } = await poll(proxy.port, sessions[0] ?? { id: "", secret: "" }, 0);
  assert.equal(data.length, bufferSize);
  assert.equal(decoder.decode(data.subarray(0, 1)), "\0");
});
