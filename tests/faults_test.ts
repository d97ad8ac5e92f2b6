/**
 * Fault injection: clients killed at random points, thousands of times,
 * while output and input both flow; destinations that reset, never read,
 * or never answer. Every byte must arrive exactly once, and the server
 * must go on serving.
 *
 * `deno task faults` runs the long version (FAULTS_MIB=64); SEED=n replays.
 */

import assert from "node:assert/strict";
import { writeAll } from "../lib/_io.ts";
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
  WAIT_MS,
  withDeadline,
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
  let inputFault: unknown = null;
  const allArrived = Promise.withResolvers<void>();
  const inputEnded = Promise.withResolvers<void>();
  const outputWritten = Promise.withResolvers<void>();
  await using destination = new Destination((conn) => {
    // Writes all output, as fast as the proxy takes it.
    (async () => {
      for (let at = 0; at < total; at += 16384) {
        await writeAll(conn, output.subarray(at, at + 16384));
      }
    })().then(outputWritten.resolve, outputWritten.reject);
    // Reads input to the end of the stream: a byte past `total` is a byte repeated.
    (async () => {
      const buffer = new Uint8Array(65536);
      while (true) {
        const count = await conn.read(buffer);
        if (count === null) return;
        if (arrivedCount + count > total) {
          throw new RangeError(
            `seed ${SEED}: the destination received ${arrivedCount + count} bytes of input, ` +
              `more than the ${total} sent`,
          );
        }
        arrived.set(buffer.subarray(0, count), arrivedCount);
        arrivedCount += count;
        if (arrivedCount === total) allArrived.resolve();
      }
    })().then(inputEnded.resolve, (error) => {
      inputFault = error;
      inputEnded.reject(error);
      allArrived.reject(error);
    });
  });
  // Each is awaited below; these only keep an early failure from going unhandled meanwhile.
  for (const { promise } of [allArrived, inputEnded, outputWritten]) promise.catch(() => {});
  await using proxy = startServer(destination.port, { bufferSize: 64 * 1024 });
  const first = await TestClient.connect(proxy.port);
  const session = await first.hello("NEW");
  first.close();

  let ack = 0;
  let confirmed = 0; // input the server says it has
  let lingering: TestClient | null = null;
  let readAfterHalfClose = 0;
  const kills = {
    reset: 0,
    "half-close": 0,
    "half-close, reading on": 0,
    "input cut": 0,
    takeover: 0,
    "half hello": 0,
  };
  let attachments = 0;
  while (ack < total || confirmed < total) {
    if (inputFault) throw inputFault;
    // About 1 000 attachments move a MiB each way; 25 times that is no progress.
    assert.ok(++attachments < 25_000 * MIB, `seed ${SEED}: no progress`);
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
    // (Acknowledged delivery sends up to --buffer beyond the ack, and more output keeps coming.)
    const want = Math.min(total - ack, Math.floor(random() * 2048));
    let chunk: Uint8Array;
    if (kill >= 0.45 && kill < 0.6) {
      // Done sending, still reading: the server sends what it has, then closes.
      await client.conn.closeWrite();
      chunk = await readUpTo(client, want);
      readAfterHalfClose += chunk.length;
    } else {
      chunk = await client.readExactly(want);
    }
    received.set(chunk, ack);
    ack += chunk.length;
    if (kill < 0.3) {
      client.close(); // in the middle of its input: a reset if output was unread
      kills["input cut"]++;
    } else if (kill < 0.45) {
      await client.conn.closeWrite().catch(() => {});
      client.close();
      kills["half-close"]++;
    } else if (kill < 0.6) {
      client.close();
      kills["half-close, reading on"]++;
    } else if (kill < 0.75) {
      lingering = client; // left open: the next hello takes it over
      kills.takeover++;
    } else {
      client.close();
      kills.reset++;
    }
  }
  lingering?.close();
  await withDeadline(allArrived.promise, WAIT_MS, `all ${total} bytes of input at the destination`);
  await withDeadline(outputWritten.promise, WAIT_MS, "the end of the destination's output");
  // Ending the session closes the destination's connection: its input reader sees the end.
  using closer = await TestClient.connect(proxy.port);
  await closer.write(`CLOSE ${session.id} ${session.secret}\n`);
  assert.equal(await closer.readLine(), `BYE ${session.id}`);
  await withDeadline(inputEnded.promise, WAIT_MS, "the end of the input stream at the destination");
  assert.equal(arrivedCount, total, `seed ${SEED}: input bytes at the destination`);
  assert.equal(firstDifference(received, output), -1, `seed ${SEED}: output differs`);
  assert.equal(firstDifference(arrived, input), -1, `seed ${SEED}: input differs`);
  assert.ok(attachments >= 1000 * MIB, `only ${attachments} attachments`);
  for (const [how, count] of Object.entries(kills)) assert.ok(count > 0, `no ${how}`);
  assert.ok(readAfterHalfClose > 0, "no output was read after a half-close");
});

/** Reads up to `max` bytes, fewer if the connection ends first. */
async function readUpTo(client: TestClient, max: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let got = 0;
  while (got < max) {
    const chunk = await client.readSome(max - got);
    if (chunk === null) break;
    chunks.push(chunk);
    got += chunk.length;
  }
  const bytes = new Uint8Array(got);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}

Deno.test("a destination that resets: the output it sent is kept, the session ends cleanly, the server serves on", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  using client = await TestClient.connect(proxy.port);
  const session = await client.hello("NEW");
  const dest = new TestClient(await destination.accepted());
  await dest.write("last words");
  await client.write("unread by the destination");
  // Closing with input unread (or still to come) makes the destination's
  // side send a reset (RST), not a FIN: so read one byte of the input first,
  // and leave the rest. (Deno reads a reset as the end of the stream, so the
  // server cannot tell the two apart; what it must do is lose nothing.)
  const one = await withDeadline(dest.conn.read(new Uint8Array(1)), WAIT_MS, "input");
  assert.equal(one, 1);
  dest.close();
  await proxy.logs.waitFor("destination.closed", (fields) => fields.id === session.id);
  // The attached client gets the last words, then the end.
  assert.equal(decoder.decode(await client.readToEnd()), "last words");
  // So does a client that resumes from the start: nothing lost.
  const { reply, data } = await poll(proxy.port, session, 0);
  assert.deepEqual([reply.state, reply.in, decoder.decode(data)], [
    "closed",
    "unread by the destination".length,
    "last words",
  ]);
  // Acknowledging the last byte ends the session.
  const last = await poll(proxy.port, session, data.length);
  assert.deepEqual([last.reply.state, last.reply.pending], ["closed", 0]);
  await proxy.logs.waitFor("session.closed", (fields) => fields.id === session.id);
  assert.equal(proxy.server.store.get(session.id), undefined);
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

/**
 * Opens `count` connections (100 at a time) that each send the start of a
 * hello and never finish it.
 */
async function stallHellos(port: number, count: number): Promise<TestClient[]> {
  const stalled: TestClient[] = [];
  try {
    for (let opened = 0; opened < count; opened += 100) {
      const batch = await Promise.allSettled(
        Array.from({ length: Math.min(100, count - opened) }, async () => {
          const client = await TestClient.connect(port);
          stalled.push(client);
          await client.write("RESUME partial");
        }),
      );
      const failed = batch.find((result) => result.status === "rejected");
      if (failed) throw failed.reason;
    }
    return stalled;
  } catch (error) {
    for (const client of stalled) client.close();
    throw error;
  }
}

Deno.test("2 000 connections stalled in their hello do not delay another session", async () => {
  await using destination = echoDestination();
  // Far longer than the test takes: all 2 000 stay pending while the session is served.
  await using proxy = startServer(destination.port, { handshakeTimeout: 60_000 });
  const stalled = await stallHellos(proxy.port, 2000);
  // A read on each shows whether the server answered or closed it meanwhile.
  let answered = 0;
  const reads = stalled.map((client) =>
    client.conn.read(new Uint8Array(1)).then(() => answered++, () => {})
  );
  try {
    using healthy = await TestClient.connect(proxy.port);
    await healthy.hello("NEW");
    for (let i = 0; i < 10; i++) {
      await healthy.write(`line ${i}\n`);
      assert.equal(await healthy.readLine(), `line ${i}`);
    }
    assert.equal(proxy.logs.events("handshake.failed").length, 0, "a stalled hello failed early");
    assert.equal(answered, 0, "a stalled connection was answered or closed early");
  } finally {
    for (const client of stalled) client.close();
    await Promise.all(reads);
  }
  // The server lets go of every one of them.
  const aborted = () => proxy.logs.events("handshake.aborted").length;
  await proxy.logs.waitFor("handshake.aborted", () => aborted() >= 2000);
  assert.equal(aborted(), 2000);
});

Deno.test("2 000 connections that never finish a hello all get ERR timeout", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port, { handshakeTimeout: 1000 });
  const stalled = await stallHellos(proxy.port, 2000);
  try {
    let timedOut = 0;
    for (const client of stalled) {
      if (/^ERR timeout /.test(await client.readLine())) timedOut++;
    }
    assert.equal(timedOut, 2000);
  } finally {
    for (const client of stalled) client.close();
  }
  const failed = proxy.logs.events("handshake.failed");
  assert.equal(failed.filter((record) => record.fields.code === "timeout").length, 2000);
});

// deno-lint-ignore no-explicit-any
const gc = (globalThis as any).gc as (() => void) | undefined;

/** Bytes of JavaScript heap and of memory outside it (buffers), after a collection. */
async function usedMemory(): Promise<number> {
  gc?.();
  // The memory of collected buffers is given back on a later turn of the event loop.
  await new Promise((resolve) => setTimeout(resolve, 0));
  gc?.();
  const { heapUsed, external } = Deno.memoryUsage();
  return heapUsed + external;
}

Deno.test({
  name: "memory stays bounded by --buffer x sessions while 100 destinations flood" +
    (gc ? "" : " (process memory not measured: needs --v8-flags=--expose-gc)"),
  async fn() {
    const bufferSize = 64 * 1024;
    const flood = new Uint8Array(4 * 1024 * 1024);
    let floodsDone = 0;
    await using destination = new Destination((conn) => {
      (async () => {
        for (let i = 0; i < 8; i++) await writeAll(conn, flood);
        floodsDone++;
      })().catch(() => {});
    });
    await using proxy = startServer(destination.port, { bufferSize });
    const before = await usedMemory();
    const sessions = [];
    for (let i = 0; i < 100; i++) {
      using client = await TestClient.connect(proxy.port);
      sessions.push(await client.hello("NEW"));
    }
    // Every session's buffer fills and pushes back: 100 paused readers.
    const paused = () =>
      new Set(proxy.logs.events("destination.paused").map((record) => record.fields.id)).size;
    await proxy.logs.waitFor("destination.paused", () => paused() >= 100);
    const grown = await usedMemory() - before;
    // 32 MiB each is more than loopback's socket buffers hold: every destination is held back.
    assert.equal(floodsDone, 0, "a destination sent all its output: it was not paused");
    let buffered = 0;
    for (const session of sessions) {
      const stats = proxy.server.store.get(session.id)?.stats();
      assert.ok(stats);
      assert.ok(stats.buffered <= bufferSize, `${stats.buffered} > ${bufferSize}`);
      assert.ok(stats.bytesOut <= bufferSize, "the server read no more than it could keep");
      buffered += stats.buffered;
    }
    assert.equal(buffered, 100 * bufferSize);
    if (gc) {
      // The buffers, twice over for anything copied, and a fixed allowance for
      // 100 sessions' objects, 200 connections and the captured log.
      const bound = 2 * 100 * bufferSize + 4 * 1024 * 1024;
      assert.ok(grown < bound, `heap and external memory grew by ${grown} bytes (bound ${bound})`);
    }
    const { data } = await poll(proxy.port, sessions[0] ?? { id: "", secret: "" }, 0);
    assert.equal(data.length, bufferSize);
    assert.equal(decoder.decode(data.subarray(0, 1)), "\0");
  },
});
