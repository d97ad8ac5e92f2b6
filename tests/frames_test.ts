/**
 * The version 2 vocabulary on its own: the framed hellos and the 8-field
 * reply (lib/protocol.ts), and the frame codec and reader (lib/frames.ts).
 */

import assert from "node:assert/strict";
import {
  checkFrameHeader,
  encodeFrame,
  END_REASONS,
  type Frame,
  FrameError,
  FrameReader,
  LARGEST_FRAME_BYTES,
  MAX_DATA_PAYLOAD,
} from "../lib/frames.ts";
import {
  formatHello,
  formatReply,
  parseHello,
  parseReply,
  ProtocolError,
} from "../lib/protocol.ts";

const ID = "AbC-123_xyz";
const SECRET = "0123456789abcdefghijkl";

/** A source that hands out `chunks`, one per read, then EOF; counts reads. */
function source(chunks: Uint8Array[]) {
  const queue = [...chunks];
  return {
    reads: 0,
    read(buffer: Uint8Array): Promise<number | null> {
      this.reads++;
      const next = queue.shift();
      if (!next) return Promise.resolve(null);
      const count = Math.min(next.length, buffer.length);
      if (count < next.length) queue.unshift(next.subarray(count));
      buffer.set(next.subarray(0, count));
      return Promise.resolve(count);
    },
  };
}

Deno.test("parseHello reads the framed hellos and refuses the forms the protocol does not have", () => {
  assert.deepEqual(parseHello("NEW framed"), { verb: "NEW", framed: true });
  assert.deepEqual(parseHello(`RESUME ${ID} ${SECRET} 42 framed\r`), {
    verb: "RESUME",
    id: ID,
    secret: SECRET,
    ack: 42,
    framed: true,
  });
  for (
    const line of [
      `RESUME ${ID} ${SECRET} framed`,
      `CLOSE ${ID} ${SECRET} framed`,
      "NEW framed framed",
      "NEW Framed",
      `RESUME ${ID} ${SECRET} 1 framed x`,
      `RESUME ${ID} ${SECRET} 1 streamed`,
    ]
  ) {
    assert.throws(
      () => parseHello(line),
      (error: unknown) => error instanceof ProtocolError && error.code === "bad-request",
      line,
    );
  }
});

Deno.test("formatHello writes framed hellos that parse back", () => {
  for (
    const hello of [
      { verb: "NEW", framed: true },
      { verb: "RESUME", id: ID, secret: SECRET, ack: 7, framed: true },
    ] as const
  ) {
    assert.deepEqual(parseHello(formatHello(hello).slice(0, -1)), hello);
  }
  assert.throws(
    () => formatHello({ verb: "RESUME", id: ID, secret: SECRET, framed: true }),
    TypeError,
  );
});

Deno.test("the framed reply has an eighth field, <window>, and parses back", () => {
  const reply = {
    id: ID,
    secret: SECRET,
    in: 3,
    from: 4,
    pending: 5,
    state: "open",
    window: 65536,
  } as const;
  const line = formatReply(reply);
  assert.equal(line, `OK ${ID} ${SECRET} 3 4 5 open 65536\n`);
  assert.deepEqual(parseReply(line.slice(0, -1)), reply);
  assert.throws(() => parseReply(`OK ${ID} ${SECRET} 3 4 5 open 0`), SyntaxError);
  assert.throws(() => parseReply(`OK ${ID} ${SECRET} 3 4 5 open x`), SyntaxError);
});

Deno.test("every frame type encodes as the protocol's table says and reads back", async () => {
  const frames: Frame[] = [
    { type: "D", payload: Uint8Array.of(1, 2, 3) },
    { type: "A", offset: 2 ** 53 - 1 },
    { type: "I", count: 258 },
    { type: "E", in: 1, sent: 2, reason: "destination-closed" },
    { type: "C" },
  ];
  const bytes = frames.map(encodeFrame);
  assert.deepEqual([...(bytes[2] ?? [])], [0x49, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 2]);
  assert.deepEqual([...(bytes[4] ?? [])], [0x43, 0, 0, 0, 0]);
  const toServer = new FrameReader(source([bytes[0], bytes[1], bytes[4]] as Uint8Array[]), {
    direction: "to-server",
  });
  const toClient = new FrameReader(source([bytes[0], bytes[2], bytes[3]] as Uint8Array[]), {
    direction: "to-client",
  });
  // One at a time: a D payload is a view, valid until the next read.
  for (const expected of [frames[0], frames[1], frames[4], null]) {
    assert.deepEqual(await toServer.next(), expected);
  }
  for (const expected of [frames[0], frames[2], frames[3], null]) {
    assert.deepEqual(await toClient.next(), expected);
  }
  assert.deepEqual(END_REASONS, [
    "taken-over",
    "destination-closed",
    "closed",
    "server-stopping",
    "protocol-error",
  ]);
});

Deno.test("the reader reads frames split anywhere and many in one read, starting with the leftover", async () => {
  const payload = new Uint8Array(MAX_DATA_PAYLOAD).map((_, i) => i % 253);
  const stream = new Uint8Array([
    ...encodeFrame({ type: "A", offset: 9 }),
    ...encodeFrame({ type: "D", payload }),
    ...encodeFrame({ type: "D", payload: Uint8Array.of(7) }),
    ...encodeFrame({ type: "C" }),
  ]);
  const chunks: Uint8Array[] = [];
  for (let at = 3, size = 1; at < stream.length; at += size, size = size * 3 + 1) {
    chunks.push(stream.subarray(at, at + size));
  }
  const reader = new FrameReader(source(chunks), {
    direction: "to-server",
    leftover: stream.subarray(0, 3),
  });
  assert.deepEqual(await reader.next(), { type: "A", offset: 9 });
  const big = await reader.next();
  assert.ok(big?.type === "D");
  assert.deepEqual(big.payload, payload);
  assert.deepEqual(await reader.next(), { type: "D", payload: Uint8Array.of(7) });
  assert.deepEqual(await reader.next(), { type: "C" });
  assert.equal(await reader.next(), null);
});

Deno.test("reads that fill the buffer grow it to one largest frame, or to largestBuffer when that is larger", async () => {
  const frame = encodeFrame({ type: "D", payload: new Uint8Array(MAX_DATA_PAYLOAD) });
  for (
    const [largestBuffer, expected] of [
      [undefined, LARGEST_FRAME_BYTES],
      [1024, LARGEST_FRAME_BYTES],
      [2 * LARGEST_FRAME_BYTES, 2 * LARGEST_FRAME_BYTES],
    ] as const
  ) {
    const sizes: number[] = [];
    // Eight largest frames, each read filling the buffer it is given.
    const stream = new Uint8Array(8 * frame.length);
    for (let at = 0; at < stream.length; at += frame.length) stream.set(frame, at);
    const from = source([stream]);
    const read = from.read.bind(from);
    from.read = (buffer: Uint8Array) => (sizes.push(buffer.length), read(buffer));
    const reader = new FrameReader(from, {
      direction: "to-server",
      dataInPieces: true,
      ...(largestBuffer === undefined ? {} : { largestBuffer }),
    });
    let taken = 0;
    for (let frame = await reader.next(); frame; frame = await reader.next()) {
      assert.ok(frame.type === "D");
      taken += frame.payload.length;
    }
    assert.equal(taken, 8 * MAX_DATA_PAYLOAD);
    assert.equal(reader.bufferLength, expected, `largestBuffer ${largestBuffer}`);
    assert.equal(Math.max(...sizes), expected, "no read asks for more");
  }
});

Deno.test("ready says whether the next frame is read already: whole frames, or any piece with dataInPieces", async () => {
  const a = encodeFrame({ type: "A", offset: 1 });
  const d = encodeFrame({ type: "D", payload: Uint8Array.of(1, 2, 3) });
  // An A and the first byte of a D's payload, in one read, then the rest of the D.
  const whole = new FrameReader(
    source([new Uint8Array([...a, ...d.subarray(0, 6)]), d.subarray(6)]),
    {
      direction: "to-server",
    },
  );
  assert.equal(whole.ready, false, "nothing read yet");
  assert.equal((await whole.next())?.type, "A");
  assert.equal(whole.ready, false, "the D is not whole");
  assert.equal((await whole.next())?.type, "D");
  assert.equal(whole.ready, false);
  const pieces = new FrameReader(
    source([new Uint8Array([...a, ...d.subarray(0, 6)]), d.subarray(6)]),
    {
      direction: "to-server",
      dataInPieces: true,
    },
  );
  assert.equal((await pieces.next())?.type, "A");
  assert.equal(pieces.ready, true, "the D's header is in: its first piece is ready");
  assert.equal((await pieces.next())?.type, "D");
  assert.equal(pieces.ready, false, "the rest of its payload is not read yet");
  assert.equal((await pieces.next())?.type, "D");
  assert.equal(pieces.ready, false);
});

Deno.test("the reader judges a length from the header alone, before reading the payload", async () => {
  for (
    const [type, length] of [["D", MAX_DATA_PAYLOAD + 1], ["D", 0], ["A", 9], ["C", 1]] as const
  ) {
    const header = Uint8Array.of(type.charCodeAt(0), 0, 0, 0, 0);
    new DataView(header.buffer).setUint32(1, length);
    const from = source([header]);
    const reader = new FrameReader(from, { direction: "to-server" });
    await assert.rejects(reader.next(), FrameError, `${type} ${length}`);
    assert.equal(from.reads, 1, "no read after the header");
  }
  assert.throws(() => checkFrameHeader(0x49, 8, "to-server"), FrameError);
  assert.throws(() => checkFrameHeader(0x41, 8, "to-client"), FrameError);
  assert.throws(() => checkFrameHeader(0x5a, 0, "to-client"), FrameError);
});

Deno.test("with dataInPieces, a D payload comes as it arrives: a first piece with the length, then the rest, reads never cut short", async () => {
  const payload = new Uint8Array(100_000).map((_, i) => i % 251);
  const stream = new Uint8Array([
    ...encodeFrame({ type: "D", payload }),
    ...encodeFrame({ type: "A", offset: 5 }),
    ...encodeFrame({ type: "D", payload: Uint8Array.of(1, 2, 3) }),
  ]);
  const sizes: number[] = [];
  const from = source([stream.subarray(0, 3), stream.subarray(3, 40_000), stream.subarray(40_000)]);
  const read = from.read.bind(from);
  from.read = (buffer: Uint8Array) => (sizes.push(buffer.length), read(buffer));
  const reader = new FrameReader(from, { direction: "to-server", dataInPieces: true });
  const first = await reader.next();
  assert.ok(first?.type === "D");
  assert.equal(first.length, payload.length, "the first piece says the frame's length");
  const pieces = [first.payload.slice()];
  let taken = first.payload.length;
  while (taken < payload.length) {
    const piece = await reader.next();
    assert.ok(piece?.type === "D" && piece.length === undefined, "later pieces have no length");
    pieces.push(piece.payload.slice());
    taken += piece.payload.length;
  }
  assert.equal(taken, payload.length);
  assert.deepEqual(new Uint8Array(pieces.flatMap((piece) => [...piece])), payload);
  assert.deepEqual(await reader.next(), { type: "A", offset: 5 });
  assert.deepEqual(await reader.next(), { type: "D", payload: Uint8Array.of(1, 2, 3), length: 3 });
  assert.equal(await reader.next(), null);
  // Pieces came before the frame was whole, and every read had the buffer
  // but for a header's few bytes: no frame was kept back in it.
  assert.ok(pieces.length > 1 && first.payload.length < payload.length);
  assert.ok(sizes.every((size) => size >= 16 * 1024 - 5), `reads of ${sizes}`);
  const cut = new FrameReader(source([encodeFrame({ type: "D", payload }).subarray(0, 9)]), {
    direction: "to-server",
    dataInPieces: true,
  });
  assert.deepEqual(await cut.next(), {
    type: "D",
    payload: Uint8Array.of(0, 1, 2, 3),
    length: 100_000,
  });
  await assert.rejects(cut.next(), (error: unknown) => {
    assert.ok(error instanceof FrameError && error.truncated);
    return true;
  });
});

Deno.test("after keep, the pieces read into the kept buffer stay as they were, and the reader goes on in the next buffer, a frame begun taken along", async () => {
  const payloadOf = (length: number, seed: number) =>
    new Uint8Array(length).map((_, i) => (i * 7 + seed) % 251);
  const first = payloadOf(3000, 1);
  const second = payloadOf(3000, 2);
  const third = payloadOf(3000, 3);
  const frames = [first, second, third].map((payload) => encodeFrame({ type: "D", payload }));
  const stream = new Uint8Array(frames.flatMap((frame) => [...frame]));
  const firstFrame = encodeFrame({ type: "D", payload: first }).length;
  // One read holds the first frame whole and the second frame's start.
  const from = source([
    stream.subarray(0, firstFrame + 1000),
    stream.subarray(firstFrame + 1000),
  ]);
  const offered: Uint8Array[] = [];
  const reader = new FrameReader(from, {
    direction: "to-server",
    dataInPieces: true,
    nextBuffer: (size) => {
      const buffer = new Uint8Array(size);
      offered.push(buffer);
      return buffer;
    },
  });
  const a = await reader.next();
  assert.ok(a?.type === "D" && a.length === first.length);
  reader.keep();
  const kept = a.payload;
  const b = await reader.next();
  assert.ok(b?.type === "D" && b.length === second.length);
  assert.equal(b.payload.buffer, kept.buffer, "the rest of the read comes from the kept buffer");
  const keptStart = b.payload.slice();
  const pieces = [keptStart];
  for (let taken = b.payload.length; taken < second.length;) {
    const piece = await reader.next();
    assert.ok(piece?.type === "D");
    assert.equal(offered.length, 1, "the next read went into the buffer offered");
    assert.equal(piece.payload.buffer, offered[0]?.buffer);
    pieces.push(piece.payload.slice());
    taken += piece.payload.length;
  }
  assert.deepEqual(new Uint8Array(pieces.flatMap((piece) => [...piece])), second);
  const c = await reader.next();
  assert.ok(c?.type === "D");
  const rest = [c.payload.slice()];
  for (let taken = c.payload.length; taken < third.length;) {
    const piece = await reader.next();
    assert.ok(piece?.type === "D");
    rest.push(piece.payload.slice());
    taken += piece.payload.length;
  }
  assert.deepEqual(new Uint8Array(rest.flatMap((piece) => [...piece])), third);
  assert.equal(await reader.next(), null);
  assert.deepEqual(kept, first, "the kept piece was not overwritten by later reads");
  assert.deepEqual(b.payload, keptStart, "nor the second frame's start in the kept buffer");
  assert.equal(offered.length, 1, "one buffer per keep");
});

Deno.test("the reader tells a stream that ended inside a frame, and integers from 2^53 on", async () => {
  const truncated = new FrameReader(
    source([encodeFrame({ type: "A", offset: 1 }).subarray(0, 7)]),
    {
      direction: "to-server",
    },
  );
  await assert.rejects(truncated.next(), (error: unknown) => {
    assert.ok(error instanceof FrameError && error.truncated);
    return true;
  });
  const huge = Uint8Array.of(0x41, 0, 0, 0, 8, 0, 0x20, 0, 0, 0, 0, 0, 0);
  const reader = new FrameReader(source([huge]), { direction: "to-server" });
  await assert.rejects(reader.next(), FrameError);
  assert.throws(() => encodeFrame({ type: "A", offset: 2 ** 53 }), RangeError);
  assert.throws(() => encodeFrame({ type: "E", in: 0, sent: 0, reason: "" }), RangeError);
});
