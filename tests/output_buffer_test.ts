import assert from "node:assert/strict";
import { concatBytes } from "../lib/bytes.ts";
import { OutputBuffer } from "../lib/proxy/output_buffer.ts";
import { prng, randomBytes } from "./_helpers.ts";

/**
 * Simulates one destination read: reserves room, writes up to all of `bytes`
 * into it and commits what fit.
 *
 * @returns Bytes written, or `null` when reserve() found the buffer full.
 */
function readInto(buffer: OutputBuffer, bytes: Uint8Array): number | null {
  const region = buffer.reserve();
  if (region === null) return null;
  assert.ok(region.length > 0, "a reserved region is never empty");
  const count = Math.min(region.length, bytes.length);
  region.set(bytes.subarray(0, count));
  buffer.commit(count);
  return count;
}

/** Reads all of `bytes` in as many reads as the ring's regions take. */
function readAllInto(buffer: OutputBuffer, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) {
    const count = readInto(buffer, bytes.subarray(at));
    assert.ok(count !== null, "room for all of it");
    at += count;
  }
}

/** Reads destination output until reserve() returns null; returns the bytes written. */
function fillUntilFull(buffer: OutputBuffer, seed = 1): Uint8Array {
  const written: Uint8Array[] = [];
  while (true) {
    const chunk = randomBytes(buffer.limit, seed + written.length);
    const count = readInto(buffer, chunk);
    if (count === null) return concatBytes(written);
    written.push(chunk.subarray(0, count));
  }
}

/** Reads everything retained from `offset` to `end` by following view() from each view's end. */
function readBack(buffer: OutputBuffer, offset: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let at = offset; at < buffer.end;) {
    const part = buffer.view(at);
    assert.ok(part.length > 0, `view(${at}) is empty before end ${buffer.end}`);
    parts.push(part.slice());
    at += part.length;
  }
  assert.equal(buffer.view(buffer.end).length, 0);
  return concatBytes(parts);
}

/** Asserts byte-for-byte equality, reporting the first differing index. */
function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      assert.fail(`${what}: byte ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

// Construction and growth

Deno.test("OutputBuffer rejects a limit that is not a positive integer", () => {
  for (const limit of [0, -1, 1.5, NaN, Infinity, 2 ** 53]) {
    assert.throws(() => new OutputBuffer(limit), RangeError, `limit ${limit}`);
  }
  assert.equal(new OutputBuffer(1).limit, 1);
});

Deno.test("OutputBuffer allocates no storage before the first reserve", () => {
  const buffer = new OutputBuffer(1024 ** 2);
  assert.equal(buffer.capacity, 0);
  assert.deepEqual([buffer.floor, buffer.end, buffer.sent, buffer.retained], [0, 0, 0, 0]);
});

Deno.test("the first reserve allocates small storage, no larger than the limit", () => {
  const big = new OutputBuffer(1024 ** 2);
  const region = big.reserve();
  assert.ok(region !== null);
  assert.ok(big.capacity > 0 && big.capacity <= 64 * 1024, `capacity ${big.capacity}`);
  assert.equal(region.length, big.capacity);

  const tiny = new OutputBuffer(100);
  assert.equal(tiny.reserve()?.length, 100);
  assert.equal(tiny.capacity, 100);
});

Deno.test("the storage grows by doubling up to the limit and never beyond", () => {
  const limit = 20_000;
  const buffer = new OutputBuffer(limit);
  const capacities: number[] = [];
  let written = 0;
  while (true) {
    const count = readInto(buffer, new Uint8Array(limit));
    if (capacities.at(-1) !== buffer.capacity) capacities.push(buffer.capacity);
    assert.ok(buffer.capacity <= limit, `capacity ${buffer.capacity} beyond limit`);
    if (count === null) break;
    written += count;
  }
  assert.equal(capacities.at(-1), limit);
  assert.ok(capacities.length >= 3, `capacities ${capacities}`);
  for (let i = 1; i < capacities.length; i++) {
    assert.equal(capacities[i], Math.min(limit, 2 * (capacities[i - 1] ?? 0)), `${capacities}`);
  }
  assert.equal(written, limit);
  assert.equal(buffer.retained, limit);
});

Deno.test("growing the storage keeps the retained bytes in order, even when wrapped", () => {
  const buffer = new OutputBuffer(64 * 1024);
  const data = randomBytes(5000, 7);
  readAllInto(buffer, data.subarray(0, 3000)); // the ring has grown to 4 KiB
  buffer.markSent(3000);
  buffer.acknowledge(2500); // the 4 KiB ring holds 2500..3000 at storage index 2500
  assert.equal(readInto(buffer, data.subarray(3000, 4096)), 1096);
  assert.equal(readInto(buffer, data.subarray(4096, 4796)), 700);
  assert.equal(buffer.capacity, 4096);
  assert.ok(buffer.view(2500).length < buffer.retained, "retained output wraps");
  assert.equal(readInto(buffer, data.subarray(4796)), 204); // grows first
  assert.equal(buffer.capacity, 8192);
  assert.equal(buffer.view(2500).length, buffer.retained);
  assertSameBytes(readBack(buffer, 2500), data.subarray(2500), "after growth");
});

// Backpressure and retention

Deno.test("reserve returns null when the buffer is full of unsent bytes", () => {
  const buffer = new OutputBuffer(10_000);
  const written = fillUntilFull(buffer);
  assert.equal(written.length, 10_000);
  assert.equal(buffer.retained, buffer.limit);
  assert.equal(buffer.reserve(), null);
  assertSameBytes(readBack(buffer, 0), written, "retained output");
});

Deno.test("reserve returns null when full of sent bytes whose release was not allowed", () => {
  const buffer = new OutputBuffer(4096);
  fillUntilFull(buffer);
  buffer.markSent(buffer.end);
  assert.equal(buffer.reserve(), null);
  assert.equal(buffer.floor, 0);
});

Deno.test("reserve returns null when full of bytes pinned by acknowledge", () => {
  const buffer = new OutputBuffer(10_000);
  fillUntilFull(buffer);
  buffer.markSent(buffer.end);
  buffer.acknowledge(0);
  assert.equal(buffer.reserve(), null);
  assert.equal(buffer.floor, 0);
  assert.equal(buffer.retained, buffer.limit);
});

Deno.test("markSent only ever raises the sent offset", () => {
  const buffer = new OutputBuffer(4096);
  readInto(buffer, new Uint8Array(100));
  buffer.markSent(60);
  buffer.markSent(30);
  assert.equal(buffer.sent, 60);
});

Deno.test("allowRelease releases nothing by itself", () => {
  const buffer = new OutputBuffer(4096);
  fillUntilFull(buffer);
  buffer.markSent(buffer.end);
  buffer.allowRelease(buffer.end);
  assert.equal(buffer.floor, 0);
  assert.equal(buffer.retained, 4096);
});

Deno.test("in streaming mode a full buffer releases the oldest sent bytes, only as many as a read needs", () => {
  const limit = 256 * 1024;
  const buffer = new OutputBuffer(limit);
  const written = fillUntilFull(buffer);
  buffer.markSent(buffer.end);
  buffer.allowRelease(buffer.end);
  const region = buffer.reserve();
  assert.ok(region !== null);
  assert.ok(buffer.floor > 0 && buffer.floor < buffer.end, `floor ${buffer.floor}`);
  // Exactly the released bytes became room for the read.
  assert.equal(region.length, buffer.floor);
  assert.equal(buffer.retained + region.length, limit);
  assertSameBytes(readBack(buffer, buffer.floor), written.subarray(buffer.floor), "kept output");
});

Deno.test("in streaming mode reserve never releases bytes that were not sent", () => {
  const buffer = new OutputBuffer(4096);
  fillUntilFull(buffer);
  buffer.markSent(1000);
  buffer.allowRelease(buffer.end); // clamped to what was sent
  for (let reads = 0; reads < 100 && readInto(buffer, new Uint8Array(4096)) !== null; reads++);
  assert.equal(buffer.floor, 1000);
  assert.equal(buffer.reserve(), null);
});

Deno.test("a full streaming buffer releases a quarter of itself at a time, at most 512 KiB", () => {
  for (const [limit, slice] of [[64 * 1024, 16 * 1024], [4 << 20, 512 * 1024]] as const) {
    const buffer = new OutputBuffer(limit);
    fillUntilFull(buffer);
    buffer.markSent(buffer.end);
    buffer.allowRelease(buffer.end);
    const region = buffer.reserve();
    assert.equal(region?.length, slice, `limit ${limit}`);
    assert.equal(buffer.retained, limit - slice, "most sent output is still retained");
  }
});

// Regression: before the growth-first change to reserve(), a ring smaller than
// 2 * READ_CHUNK released all releasable output on every reserve, so a streaming
// client that kept up retained nothing to resume from with <ack>.
Deno.test("in streaming mode reserve keeps sent bytes while the buffer has room under its limit", () => {
  const buffer = new OutputBuffer(256 * 1024);
  const data = randomBytes(1000, 3);
  readAllInto(buffer, data);
  buffer.markSent(1000);
  buffer.allowRelease(1000);
  assert.ok(buffer.reserve() !== null);
  assert.equal(buffer.floor, 0, "released sent output though 255 KiB of the limit were free");
  assertSameBytes(readBack(buffer, 0), data, "sent output");
});

Deno.test("acknowledge releases everything before its offset at once", () => {
  const buffer = new OutputBuffer(4096);
  const data = randomBytes(1000, 5);
  readAllInto(buffer, data);
  buffer.markSent(1000);
  buffer.acknowledge(600);
  assert.equal(buffer.floor, 600);
  assert.equal(buffer.retained, 400);
  assertSameBytes(readBack(buffer, 600), data.subarray(600), "kept output");
});

Deno.test("acknowledge pins the bytes from its offset on against later reserves", () => {
  const buffer = new OutputBuffer(4096);
  fillUntilFull(buffer);
  buffer.markSent(4096);
  buffer.acknowledge(1000);
  assert.equal(buffer.reserve()?.length, 1000);
  buffer.commit(1000);
  assert.equal(buffer.reserve(), null);
  assert.equal(buffer.floor, 1000);
});

Deno.test("acknowledge throws RangeError outside floor..sent", () => {
  const buffer = new OutputBuffer(4096);
  readInto(buffer, new Uint8Array(1000));
  buffer.markSent(800);
  assert.throws(() => buffer.acknowledge(801), RangeError);
  assert.throws(() => buffer.acknowledge(1000), RangeError);
  assert.throws(() => buffer.acknowledge(-1), RangeError);
  buffer.acknowledge(300);
  assert.throws(() => buffer.acknowledge(299), RangeError);
  buffer.acknowledge(300);
  buffer.acknowledge(800);
  assert.equal(buffer.floor, 800);
});

// Views

Deno.test("view() across the ring's wrap point returns the first part, then the rest", () => {
  const buffer = new OutputBuffer(4096);
  const data = randomBytes(5596, 11);
  readAllInto(buffer, data.subarray(0, 3000)); // the ring has grown to 4 KiB
  buffer.markSent(3000);
  buffer.acknowledge(2000); // the ring now holds 2000..3000 at storage index 2000
  assert.equal(readInto(buffer, data.subarray(3000)), 1096); // up to the ring's end
  assert.equal(readInto(buffer, data.subarray(4096)), 1500); // wrapped to its start
  assert.equal(buffer.capacity, 4096);

  const first = buffer.view(2000);
  assert.equal(first.length, 2096);
  assertSameBytes(first, data.subarray(2000, 4096), "first part");
  const rest = buffer.view(2000 + first.length);
  assertSameBytes(rest, data.subarray(4096, 5596), "rest");
  assertSameBytes(buffer.view(3000), data.subarray(3000, 4096), "view from the middle");
  assertSameBytes(buffer.view(5000), data.subarray(5000, 5596), "view after the wrap");
});

/**
 * Streams `total` pseudo-random bytes through a small ring: random read sizes on
 * the destination side, random write sizes on the client side. Returns what the
 * client received and how many views stopped at the ring's wrap point.
 */
function streamThrough(mode: "acknowledged" | "streaming", total: number, seed: number) {
  const random = prng(seed);
  const data = randomBytes(total, seed);
  const buffer = new OutputBuffer(5000);
  const received = new Uint8Array(total);
  let read = 0;
  let delivered = 0;
  let splitViews = 0;
  while (delivered < total) {
    if (read < total && random() < 0.6) {
      const want = 1 + Math.floor(random() * 3000);
      read += readInto(buffer, data.subarray(read, Math.min(total, read + want))) ?? 0;
    } else if (delivered < buffer.end) {
      const view = buffer.view(delivered);
      if (view.length < buffer.end - delivered) splitViews++;
      const count = Math.min(view.length, 1 + Math.floor(random() * 2000));
      received.set(view.subarray(0, count), delivered);
      delivered += count;
      buffer.markSent(delivered);
      if (mode === "streaming") buffer.allowRelease(delivered);
      else if (random() < 0.5) buffer.acknowledge(delivered);
    } else if (mode === "acknowledged") {
      buffer.acknowledge(delivered); // a poll with nothing new to send
    }
    assert.ok(buffer.retained <= buffer.limit);
  }
  return { data, received, splitViews };
}

Deno.test("a long pseudo-random sequence reads back byte for byte through a wrapping ring (acknowledged)", () => {
  const { data, received, splitViews } = streamThrough("acknowledged", 1_000_000, 21);
  assert.ok(splitViews > 10, `only ${splitViews} views met the wrap point`);
  assertSameBytes(received, data, "received");
});

Deno.test("a long pseudo-random sequence reads back byte for byte through a wrapping ring (streaming)", () => {
  const { data, received, splitViews } = streamThrough("streaming", 1_000_000, 22);
  assert.ok(splitViews > 10, `only ${splitViews} views met the wrap point`);
  assertSameBytes(received, data, "received");
});

Deno.test("view() throws RangeError outside floor..end", () => {
  const buffer = new OutputBuffer(4096);
  assert.equal(buffer.view(0).length, 0);
  assert.throws(() => buffer.view(1), RangeError);
  readAllInto(buffer, new Uint8Array(1000));
  buffer.markSent(1000);
  buffer.acknowledge(400);
  assert.throws(() => buffer.view(399), RangeError);
  assert.throws(() => buffer.view(1001), RangeError);
  assert.throws(() => buffer.view(-1), RangeError);
  assert.equal(buffer.view(400).length, 600);
  assert.equal(buffer.view(1000).length, 0);
});

Deno.test("dispose() frees the storage and retains nothing", () => {
  const buffer = new OutputBuffer(10_000);
  fillUntilFull(buffer);
  assert.equal(buffer.capacity, 10_000);
  buffer.dispose();
  assert.equal(buffer.capacity, 0);
  assert.equal(buffer.retained, 0);
  assert.equal(buffer.floor, buffer.end);
  assert.equal(buffer.view(buffer.end).length, 0);
});

// Randomized model

/**
 * Runs random operations against the buffer and a model holding every byte
 * ever written, checking after each step that everything from floor to end
 * reads back through view() and that the limits hold.
 */
function runModel(
  seed: number,
  limit: number,
  steps: number,
  maxRead: number,
): { fullReserves: number; releasingReserves: number } {
  const random = prng(seed);
  const between = (low: number, high: number): number =>
    low + Math.floor(random() * (high - low + 1));
  const buffer = new OutputBuffer(limit);
  let model = new Uint8Array(1024);
  let sent = 0;
  let releasable = 0; // what the model allows to be released
  let lastFloor = 0;
  let fullReserves = 0;
  let releasingReserves = 0;
  for (let step = 0; step < steps; step++) {
    const op = random();
    const where = `seed ${seed} step ${step}`;
    if (op < 0.45) {
      const floor = buffer.floor;
      const region = buffer.reserve();
      if (buffer.floor > floor) {
        releasingReserves++;
        assert.equal(buffer.capacity, limit, `${where}: released before growing to the limit`);
      }
      if (region === null) {
        fullReserves++;
        assert.equal(buffer.retained, limit, `${where}: null while not full`);
      } else {
        assert.ok(region.length > 0, `${where}: empty region`);
        const count = random() < 0.3 ? region.length : between(0, Math.min(maxRead, region.length));
        const end = buffer.end;
        if (end + count > model.length) {
          const grown = new Uint8Array(Math.max(model.length * 2, end + count));
          grown.set(model);
          model = grown;
        }
        for (let i = 0; i < count; i++) {
          const byte = Math.floor(random() * 256);
          region[i] = byte;
          model[end + i] = byte;
        }
        buffer.commit(count);
      }
    } else if (op < 0.7) {
      sent = between(sent, buffer.end);
      buffer.markSent(sent);
    } else if (op < 0.85) {
      const offset = between(buffer.floor, sent + 10); // sometimes beyond sent: clamped
      buffer.allowRelease(offset);
      releasable = Math.max(buffer.floor, Math.min(offset, sent));
    } else {
      const offset = between(buffer.floor, sent);
      buffer.acknowledge(offset);
      releasable = offset;
    }

    assert.equal(buffer.sent, sent, where);
    assert.ok(buffer.retained <= limit, `${where}: retained ${buffer.retained}`);
    assert.ok(buffer.capacity <= limit, `${where}: capacity ${buffer.capacity}`);
    assert.ok(buffer.floor >= lastFloor, `${where}: floor went back`);
    assert.ok(buffer.floor <= releasable, `${where}: released bytes not allowed`);
    lastFloor = buffer.floor;
    for (let offset = buffer.floor; offset < buffer.end; offset++) {
      const view = buffer.view(offset);
      if (view[0] !== model[offset]) {
        assert.fail(`${where}: view(${offset})[0] is ${view[0]}, expected ${model[offset]}`);
      }
    }
    assertSameBytes(
      readBack(buffer, buffer.floor),
      model.subarray(buffer.floor, buffer.end),
      where,
    );
  }
  assert.ok(buffer.end > 10 * limit, `only ${buffer.end} bytes went through`);
  return { fullReserves, releasingReserves };
}

/** Asserts that a model run went through both backpressure and lazy release. */
function assertExercised(stats: { fullReserves: number; releasingReserves: number }): void {
  assert.ok(stats.fullReserves > 0, "reserve never found the buffer full");
  assert.ok(stats.releasingReserves > 0, "reserve never released output");
}

Deno.test("random operations keep every retained byte readable within a small limit", () => {
  assertExercised(runModel(1, 6000, 3000, 2500));
  assertExercised(runModel(2, 777, 3000, 500));
});

Deno.test("random operations keep every retained byte readable with a limit of 100 kB and reads of up to 70 kB", () => {
  assertExercised(runModel(3, 100_000, 800, 70_000));
});
