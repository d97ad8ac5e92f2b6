/**
 * The proxy server against version 2 of the protocol (framed attachments):
 * the hellos and their reply, every frame type, the window both ways, and
 * every end reason, with a destination the test drives.
 */

import assert from "node:assert/strict";
import { encodeFrame, type EndReason, type Frame, MAX_DATA_PAYLOAD } from "../lib/frames.ts";
import { FramedConnection } from "../lib/client/framed.ts";
import type { Reply } from "../lib/protocol.ts";
import { FakeConn } from "./_fake_conn.ts";
import {
  decoder,
  Destination,
  echoDestination,
  encoder,
  firstDifference,
  issuedSecrets,
  poll,
  randomBytes,
  startServer,
  startService,
  TestClient,
  type TestServer,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";

const DEFAULT_WINDOW = 1024 ** 2;

/** A frame as read off the wire by the test, decoded without lib/frames.ts. */
type Received =
  | { type: "D"; payload: Uint8Array }
  | { type: "I"; count: number }
  | { type: "E"; in: number; sent: number; reason: string }
  | { type: "?"; code: number; payload: Uint8Array };

/** A raw framed client: hello and reply as lines, then frames. */
class FramedClient implements Disposable {
  readonly raw: TestClient;
  reply!: Reply;
  /** Output received so far, as an offset. */
  offset = 0;

  constructor(raw: TestClient) {
    this.raw = raw;
  }

  /** Connects, sends `hello` (a framed one) and reads the reply. */
  static async open(port: number, hello: string): Promise<FramedClient> {
    const client = new FramedClient(await TestClient.connect(port));
    client.reply = await client.raw.hello(hello);
    client.offset = client.reply.from;
    return client;
  }

  send(frame: Frame): Promise<void> {
    return this.raw.write(encodeFrame(frame));
  }

  async next(): Promise<Received> {
    const header = await this.raw.readExactly(5);
    const length = new DataView(header.buffer).getUint32(1);
    const payload = await this.raw.readExactly(length);
    const code = header[0] ?? 0;
    const view = new DataView(payload.buffer);
    const u64 = (at: number): number => view.getUint32(at) * 2 ** 32 + view.getUint32(at + 4);
    switch (String.fromCharCode(code)) {
      case "D":
        this.offset += payload.length;
        return { type: "D", payload };
      case "I":
        assert.equal(length, 8);
        return { type: "I", count: u64(0) };
      case "E":
        assert.ok(length >= 17 && length <= 80, `E of ${length} bytes`);
        return {
          type: "E",
          in: u64(0),
          sent: u64(8),
          reason: decoder.decode(payload.subarray(16)),
        };
      default:
        return { type: "?", code, payload };
    }
  }

  /** Reads frames until `E`; returns the output and the last input count on the way. */
  async untilEnd(): Promise<{ end: Received & { type: "E" }; data: Uint8Array; count: number }> {
    const parts: Uint8Array[] = [];
    let count = -1;
    for (let frames = 0; frames < 100_000; frames++) {
      const frame = await this.next();
      if (frame.type === "D") parts.push(frame.payload);
      else if (frame.type === "I") count = frame.count;
      else if (frame.type === "E") {
        return { end: frame, data: concat(parts), count };
      } else throw new Error(`unexpected frame type ${frame.code}`);
    }
    throw new Error("no E within 100000 frames");
  }

  /** Reads `D` frames (skipping `I`) until `bytes` of output have come. */
  async output(bytes: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let got = 0;
    for (let frames = 0; got < bytes && frames < 100_000; frames++) {
      const frame = await this.next();
      if (frame.type === "D") {
        parts.push(frame.payload);
        got += frame.payload.length;
      } else if (frame.type !== "I") throw new Error(`unexpected ${JSON.stringify(frame)}`);
    }
    assert.equal(got, bytes);
    return concat(parts);
  }

  /** Reads frames until an `I` of at least `count`; fails on anything but `D` and `I`. */
  async inputCount(count: number): Promise<number> {
    for (let frames = 0; frames < 100_000; frames++) {
      const frame = await this.next();
      if (frame.type === "I" && frame.count >= count) return frame.count;
      if (frame.type !== "I" && frame.type !== "D") {
        throw new Error(`unexpected ${JSON.stringify(frame)}`);
      }
    }
    throw new Error(`no I ${count}`);
  }

  /** Reads until the server closes the connection; returns what came. */
  async closed(): Promise<Uint8Array> {
    return await this.raw.readToEnd();
  }

  close(): void {
    this.raw.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A proxy, a destination the test drives, and one framed session open. */
async function openFramed(overrides: Parameters<typeof startServer>[1] = {}) {
  await using stack = new AsyncDisposableStack();
  const destination = stack.use(new Destination());
  const proxy: TestServer = stack.use(startServer(destination.port, overrides));
  const client = stack.use(await FramedClient.open(proxy.port, "NEW framed"));
  const dest = stack.use(new TestClient(await destination.accepted()));
  const owned = stack.move();
  return {
    destination,
    proxy,
    client,
    session: client.reply,
    dest,
    [Symbol.asyncDispose]: () => owned.disposeAsync(),
  };
}

function resumeFramed(session: Reply, ack: number): string {
  return `RESUME ${session.id} ${session.secret} ${ack} framed`;
}

function assertEnd(frame: Received, reason: EndReason, values?: { in?: number; sent?: number }) {
  assert.equal(frame.type, "E", `expected E ${reason}, got ${JSON.stringify(frame)}`);
  if (frame.type !== "E") return;
  assert.equal(frame.reason, reason);
  if (values?.in !== undefined) assert.equal(frame.in, values.in, "E in");
  if (values?.sent !== undefined) assert.equal(frame.sent, values.sent, "E sent");
}

// Hellos and the reply

Deno.test("NEW framed answers OK with eight fields, the window being --buffer", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port, { bufferSize: 65536 });
  using client = await TestClient.connect(proxy.port);
  await client.write("NEW framed\n");
  using _dest = new TestClient(await destination.accepted());
  const line = await client.readLine();
  assert.match(line, /^OK [A-Za-z0-9_-]{1,64} [A-Za-z0-9_-]{22,64} 0 0 0 open 65536$/);
  issuedSecrets.add(line.split(" ")[2] ?? "");
  assert.equal(proxy.server.store.list()[0]?.stats().mode, "framed");
});

Deno.test("framed hellos the protocol does not have are ERR bad-request, and v1 hellos stay as they were", async () => {
  await using opened = await openFramed();
  const { proxy, session } = opened;
  for (
    const hello of [
      `RESUME ${session.id} ${session.secret} framed`,
      `CLOSE ${session.id} ${session.secret} framed`,
      `RESUME ${session.id} ${session.secret} 0 framed framed`,
      `RESUME ${session.id} ${session.secret} 0 FRAMED`,
      "NEW framed now",
    ]
  ) {
    using client = await TestClient.connect(proxy.port);
    await client.write(hello + "\n");
    assert.match(await client.readLine(), /^ERR bad-request /, hello);
  }
  using v1 = await TestClient.connect(proxy.port);
  const reply = await v1.hello(`RESUME ${session.id} ${session.secret} 0`);
  assert.equal(reply.window, undefined, "a v1 reply has seven fields");
});

Deno.test("a framed RESUME gets version 1 errors as lines: auth, gap, ack", async () => {
  await using opened = await openFramed({ bufferSize: 1024 });
  const { proxy, client, session, dest } = opened;
  await dest.write(new Uint8Array(1024));
  await client.output(1024);
  await client.send({ type: "A", offset: 1024 });
  await dest.write(new Uint8Array(10));
  await client.output(10);
  client.close();
  await proxy.logs.waitFor("session.detached");
  const errors: [string, RegExp][] = [
    [resumeFramed(session, 0), /^ERR gap 1024 /],
    [resumeFramed(session, 5000), /^ERR ack 1034 /],
    [`RESUME ${session.id} ${"x".repeat(32)} 1024 framed`, /^ERR auth /],
  ];
  for (const [hello, expected] of errors) {
    using again = await TestClient.connect(proxy.port);
    await again.write(hello + "\n");
    assert.match(await again.readLine(), expected);
    assert.equal((await again.readToEnd()).length, 0, "no frame after an ERR line");
  }
});

// Frames both ways

Deno.test("output comes as D frames, input goes as D frames and is confirmed by I", async () => {
  await using opened = await openFramed();
  const { client, dest } = opened;
  await dest.write("hello");
  assert.deepEqual(await client.next(), { type: "D", payload: encoder.encode("hello") });
  await client.send({ type: "D", payload: encoder.encode("abc") });
  assert.equal(decoder.decode(await dest.readExactly(3)), "abc");
  assert.deepEqual(await client.next(), { type: "I", count: 3 });
  await client.send({ type: "D", payload: encoder.encode("de") });
  assert.equal(decoder.decode(await dest.readExactly(2)), "de");
  assert.deepEqual(await client.next(), { type: "I", count: 5 });
});

Deno.test("frames pipelined after a framed hello are frames, and the pending output comes as D frames", async () => {
  await using opened = await openFramed();
  const { proxy, client, session, dest } = opened;
  await dest.write("0123456789");
  await client.output(10);
  client.close();
  await proxy.logs.waitFor("session.detached");
  using again = new FramedClient(await TestClient.connect(proxy.port));
  await again.raw.write(
    concat([
      encoder.encode(resumeFramed(session, 4) + "\n"),
      encodeFrame({ type: "D", payload: encoder.encode("in") }),
    ]),
  );
  again.reply = parseOkLine(await again.raw.readLine());
  assert.deepEqual(
    [again.reply.in, again.reply.from, again.reply.pending, again.reply.window],
    [0, 4, 6, DEFAULT_WINDOW],
  );
  assert.equal(decoder.decode(await again.output(6)), "456789");
  assert.equal(decoder.decode(await dest.readExactly(2)), "in");
  assert.equal(await again.inputCount(2), 2);
});

function parseOkLine(line: string): Reply {
  const [, id = "", secret = "", input, from, pending, state, window] = line.split(" ");
  issuedSecrets.add(secret);
  return {
    id,
    secret,
    in: Number(input),
    from: Number(from),
    pending: Number(pending),
    state: state === "closed" ? "closed" : "open",
    window: Number(window),
  };
}

Deno.test("A releases output at once, an A below the latest is ignored", async () => {
  await using opened = await openFramed();
  const { proxy, client, session, dest } = opened;
  await dest.write("abcdef");
  await client.output(6);
  const stats = () => proxy.server.store.get(session.id)?.stats();
  assert.equal(stats()?.floor, 0);
  await client.send({ type: "A", offset: 4 });
  await client.send({ type: "A", offset: 2 });
  // A round trip through the destination: the A frames were read before the D after them.
  await client.send({ type: "D", payload: encoder.encode("x") });
  await dest.readExactly(1);
  await client.inputCount(1);
  assert.equal(stats()?.floor, 4);
  assert.equal(stats()?.buffered, 2);
});

// The window

Deno.test("a client that never acknowledges gets exactly one window, and the destination is paused", async () => {
  const window = 64 * 1024;
  await using opened = await openFramed({ bufferSize: window });
  const { proxy, client, session, dest } = opened;
  const output = randomBytes(4 * window, 7);
  const flooding = dest.write(output);
  flooding.catch(() => {});
  assert.deepEqual(await client.output(window), output.subarray(0, window));
  await proxy.logs.waitFor("destination.paused");
  const stats = proxy.server.store.get(session.id)?.stats();
  assert.equal(stats?.bytesOut, window, "the server read no more than the window");
  assert.equal(stats?.sent, window);
  // Nothing more comes until an A: a D frame now would arrive before this I.
  await client.send({ type: "D", payload: encoder.encode("?") });
  await dest.readExactly(1);
  assert.deepEqual(await client.next(), { type: "I", count: 1 });
  // Each acknowledgement opens the window by as much.
  let ack = 0;
  const received: Uint8Array[] = [output.subarray(0, window)];
  while (client.offset < output.length) {
    ack = client.offset;
    await client.send({ type: "A", offset: ack });
    received.push(await client.output(Math.min(window, output.length - client.offset)));
  }
  await flooding;
  assert.equal(firstDifference(concat(received), output), -1);
});

Deno.test("an echoing destination and a paste far larger than the window do not deadlock", async () => {
  const window = 64 * 1024;
  await using destination = echoDestination();
  await using proxy = startServer(destination.port, { bufferSize: window });
  using client = await FramedClient.open(proxy.port, "NEW framed");
  const paste = randomBytes(4 * 1024 * 1024, 11);
  let confirmed = 0;
  let sentInput = 0;
  const received: Uint8Array[] = [];
  let acked = 0;
  const deadline = Date.now() + WAIT_MS * 3;
  // One loop, one frame read at a time: send what the input window allows,
  // acknowledge half windows, read the next frame.
  while (client.offset < paste.length || confirmed < paste.length) {
    assert.ok(Date.now() < deadline, "the paste did not get through in time");
    const room = Math.min(confirmed + window - sentInput, paste.length - sentInput, 16 * 1024);
    if (room > 0) {
      await client.send({ type: "D", payload: paste.subarray(sentInput, sentInput + room) });
      sentInput += room;
    }
    const frame = await client.next();
    if (frame.type === "D") received.push(frame.payload);
    else if (frame.type === "I") confirmed = frame.count;
    else throw new Error(`unexpected ${JSON.stringify(frame)}`);
    if (client.offset - acked >= window / 2 || client.offset === paste.length) {
      acked = client.offset;
      await client.send({ type: "A", offset: acked });
    }
  }
  assert.equal(firstDifference(concat(received), paste), -1);
  await client.send({ type: "C" });
  assertEnd(await client.next(), "closed", { in: paste.length, sent: paste.length });
  await destination.settled();
});

Deno.test("A and C get through while the destination takes no input, and input beyond the window is a protocol error", async (t) => {
  const window = 8 * 1024;
  const destinations: FakeConn[] = [];
  await using proxy = startServer(1, {
    bufferSize: window,
    connect: () => {
      const destination = new FakeConn();
      destination.hold(); // takes no input
      destinations.push(destination);
      return Promise.resolve(destination.conn);
    },
  });

  await t.step("A and C", async () => {
    using client = await FramedClient.open(proxy.port, "NEW framed");
    const destination = destinations[0];
    assert.ok(destination);
    destination.feed(encoder.encode("out"));
    await client.output(3);
    // A whole window of input: the first write is held, the rest waits in the server.
    for (let at = 0; at < window; at += 1024) {
      await client.send({ type: "D", payload: new Uint8Array(1024) });
    }
    await client.send({ type: "A", offset: 3 });
    await client.send({ type: "C" });
    const { end } = await client.untilEnd();
    assertEnd(end, "closed", { sent: 3 });
    assert.ok(end.in <= window);
    assert.equal(proxy.server.store.size, 0);
  });

  await t.step("input beyond the window", async () => {
    using client = await FramedClient.open(proxy.port, "NEW framed");
    await client.send({ type: "D", payload: new Uint8Array(window) });
    await client.send({ type: "D", payload: new Uint8Array(1) });
    const { end } = await client.untilEnd();
    assertEnd(end, "protocol-error");
    assert.equal(proxy.server.store.size, 1, "the session stays open");
  });
});

/**
 * A destination whose writes each wait for the test: `started` resolves
 * with the write's size once it has begun; `finish()` lets the oldest held
 * write complete. Its bytes count as written only once complete.
 */
function gatedDestination(): {
  destination: FakeConn;
  started(): Promise<number>;
  finish(): void;
  open(): void;
} {
  const destination = new FakeConn();
  const starts: PromiseWithResolvers<number>[] = [];
  const gates: PromiseWithResolvers<void>[] = [];
  let writes = 0;
  let taken = 0;
  let gated = true;
  const nth = (index: number) => (starts[index] ??= Promise.withResolvers<number>());
  const write = destination.write.bind(destination);
  destination.write = async (bytes: Uint8Array) => {
    if (gated) {
      const gate = Promise.withResolvers<void>();
      gates.push(gate);
      nth(writes++).resolve(bytes.length);
      await gate.promise;
    }
    return await write(bytes);
  };
  return {
    destination,
    started: () => withDeadline(nth(taken++).promise, WAIT_MS, "a destination write"),
    finish: () => gates.shift()?.resolve(),
    open: () => {
      gated = false;
      for (const gate of gates.splice(0)) gate.resolve();
    },
  };
}

/**
 * Makes sure the server has read every frame sent so far: with exactly one
 * window of output unacknowledged, an `A` for it lets the last `tail` bytes
 * come, and frames are read in order.
 */
async function acknowledgeThrough(client: FramedClient, tail: number): Promise<void> {
  await client.send({ type: "A", offset: client.offset });
  await client.output(tail);
}

/** Reads frames until an `I` of `count`; every `I` on the way must not exceed what the destination has. */
async function confirmedWithin(
  client: FramedClient,
  destination: FakeConn,
  count: number,
): Promise<number[]> {
  const counts: number[] = [];
  for (let frames = 0; frames < 10_000; frames++) {
    const frame = await client.next();
    if (frame.type !== "I") throw new Error(`unexpected ${JSON.stringify(frame)}`);
    assert.ok(
      frame.count <= destination.writtenBytes,
      `I ${frame.count} with ${destination.writtenBytes} bytes written`,
    );
    counts.push(frame.count);
    if (frame.count >= count) return counts;
  }
  throw new Error(`no I ${count}`);
}

Deno.test("D frames that arrive during a destination write go out together in the next, under one cumulative I", async () => {
  const gated = gatedDestination();
  await using proxy = startServer(1, { connect: () => Promise.resolve(gated.destination.conn) });
  using client = await FramedClient.open(proxy.port, "NEW framed");
  gated.destination.feed(new Uint8Array(DEFAULT_WINDOW + 4));
  await client.output(DEFAULT_WINDOW);
  await client.send({ type: "D", payload: encoder.encode("one") });
  assert.equal(await gated.started(), 3);
  for (const word of ["two", "three", "four"]) {
    await client.send({ type: "D", payload: encoder.encode(word) });
  }
  await acknowledgeThrough(client, 4);
  gated.finish();
  assert.equal(await gated.started(), 12, "two, three and four in one write");
  gated.finish();
  const counts = await confirmedWithin(client, gated.destination, 15);
  assert.ok(counts.every((count) => count === 3 || count === 15), `I frames ${counts}`);
  assert.equal(counts.at(-1), 15);
  assert.equal(gated.destination.written.length, 2);
  assert.equal(decoder.decode(gated.destination.output()), "onetwothreefour");
});

Deno.test("held input goes out a chunk at a time, each write confirmed by I while the rest waits", async () => {
  const gated = gatedDestination();
  await using proxy = startServer(1, { connect: () => Promise.resolve(gated.destination.conn) });
  using client = await FramedClient.open(proxy.port, "NEW framed");
  gated.destination.feed(new Uint8Array(DEFAULT_WINDOW + 4));
  await client.output(DEFAULT_WINDOW);
  const input = randomBytes(1 + 3 * 200_000, 21);
  await client.send({ type: "D", payload: input.subarray(0, 1) });
  assert.equal(await gated.started(), 1);
  for (let at = 1; at < input.length; at += 200_000) {
    await client.send({ type: "D", payload: input.subarray(at, at + 200_000) });
  }
  await acknowledgeThrough(client, 4);
  gated.finish();
  assert.deepEqual(await confirmedWithin(client, gated.destination, 1), [1]);
  // The next write is what the first chunk holds after the byte written: not all that is held.
  const second = await gated.started();
  assert.ok(second < input.length - 1, `a write of ${second} bytes`);
  gated.finish();
  assert.deepEqual(await confirmedWithin(client, gated.destination, 1 + second), [1 + second]);
  assert.equal(gated.destination.writtenBytes, 1 + second, "the rest is still held");
  gated.open();
  await confirmedWithin(client, gated.destination, input.length);
  assert.equal(firstDifference(gated.destination.output(), input), -1);
});

Deno.test("input held for an attachment is dropped, not counted, when another attaches", async () => {
  const destination = new FakeConn();
  const writing = Promise.withResolvers<void>();
  const gate = Promise.withResolvers<void>();
  destination.beforeWrite = () => {
    writing.resolve();
    return gate.promise;
  };
  await using proxy = startServer(1, { connect: () => Promise.resolve(destination.conn) });
  using first = await FramedClient.open(proxy.port, "NEW framed");
  // One write of a frame longer than the server's first read (16 KiB): what
  // that read holds of it goes to the destination (whose write is held, so
  // it counts), and the rest of it and "two" are held behind it.
  const one = new Uint8Array(20_000).fill(111);
  await first.raw.write(concat([
    encodeFrame({ type: "D", payload: one }),
    encodeFrame({ type: "D", payload: encoder.encode("two") }),
  ]));
  await withDeadline(writing.promise, WAIT_MS, "the destination write");
  using second = await FramedClient.open(proxy.port, resumeFramed(first.reply, 0));
  const counted = second.reply.in;
  assert.ok(counted > 0 && counted < one.length, `${counted} bytes counted, the first write's`);
  assertEnd((await first.untilEnd()).end, "taken-over", { in: counted, sent: 0 });
  destination.beforeWrite = null;
  gate.resolve();
  await second.send({ type: "D", payload: encoder.encode("TWO") });
  assert.equal(await second.inputCount(counted + 3), counted + 3);
  assert.equal(decoder.decode(destination.output()), "o".repeat(counted) + "TWO");
});

// End reasons

Deno.test("E taken-over when a newer framed or version 1 attachment takes the session", async () => {
  await using opened = await openFramed();
  const { proxy, client, session, dest } = opened;
  await dest.write("abc");
  await client.output(3);
  await client.send({ type: "D", payload: encoder.encode("xy") });
  await dest.readExactly(2);
  await client.inputCount(2);

  // By a framed resume.
  using second = await FramedClient.open(proxy.port, resumeFramed(session, 1));
  assertEnd((await client.untilEnd()).end, "taken-over", { in: 2, sent: 3 });
  assert.equal((await client.closed()).length, 0, "nothing after E");
  assert.deepEqual([second.reply.in, second.reply.from, second.reply.pending], [2, 1, 2]);
  assert.equal(decoder.decode(await second.output(2)), "bc");

  // By a version 1 resume.
  using third = await TestClient.connect(proxy.port);
  const reply = await third.hello(`RESUME ${session.id} ${session.secret} 3`);
  assert.equal(reply.window, undefined);
  assertEnd((await second.untilEnd()).end, "taken-over", { in: 2, sent: 3 });
  await dest.write("d");
  assert.equal(decoder.decode(await third.readExactly(1)), "d");
});

Deno.test("E destination-closed once all output is sent; the last A ends the session", async () => {
  await using opened = await openFramed();
  const { proxy, client, session, dest } = opened;
  await dest.write("last words");
  dest.close();
  const { end, data } = await client.untilEnd();
  assertEnd(end, "destination-closed", { in: 0, sent: 10 });
  assert.equal(decoder.decode(data), "last words");
  assert.equal(proxy.server.store.size, 1, "the session waits for the acknowledgement");
  await client.send({ type: "A", offset: 10 });
  await proxy.logs.waitFor("session.closed", (fields) => fields.id === session.id);
  assert.equal(proxy.server.store.size, 0);
  assert.equal((await client.closed()).length, 0);
});

Deno.test("after E destination-closed without a last A the session waits in state closed, as in version 1", async () => {
  await using opened = await openFramed({ bufferSize: 16 });
  const { proxy, client, session, dest } = opened;
  await dest.write("0123456789abcdefXYZ");
  dest.close();
  // More than the window: E waits until all of it was sent.
  assert.equal(decoder.decode(await client.output(16)), "0123456789abcdef");
  await client.send({ type: "A", offset: 16 });
  const { end, data } = await client.untilEnd();
  assertEnd(end, "destination-closed", { sent: 19 });
  assert.equal(decoder.decode(data), "XYZ");
  // Input after the destination closed is discarded, neither counted nor judged.
  await client.send({ type: "D", payload: new Uint8Array(100) });
  client.close();
  await proxy.logs.waitFor("session.detached");
  const { reply, data: again } = await poll(proxy.port, session, 16);
  assert.deepEqual([reply.in, reply.pending, reply.state], [0, 3, "closed"]);
  assert.equal(decoder.decode(again), "XYZ");
  using last = await FramedClient.open(proxy.port, resumeFramed(session, 19));
  assertEnd((await last.untilEnd()).end, "destination-closed", { sent: 19 });
  await proxy.logs.waitFor("session.closed", (fields) => fields.id === session.id);
});

Deno.test("E closed for C, for a CLOSE hello and for the admin API", async (t) => {
  await using destination = echoDestination();
  await using service = await startService(destination.port);

  await t.step("C on this connection", async () => {
    using client = await FramedClient.open(service.port, "NEW framed");
    await client.send({ type: "C" });
    assertEnd(await client.next(), "closed", { in: 0, sent: 0 });
    assert.equal((await client.closed()).length, 0);
    await service.logs.waitFor("session.closed", (fields) => fields.id === client.reply.id);
  });

  await t.step("CLOSE from another connection", async () => {
    using client = await FramedClient.open(service.port, "NEW framed");
    await client.send({ type: "D", payload: encoder.encode("hi") });
    assert.equal(decoder.decode(await client.output(2)), "hi");
    using closer = await TestClient.connect(service.port);
    await closer.write(`CLOSE ${client.reply.id} ${client.reply.secret}\n`);
    assert.equal(await closer.readLine(), `BYE ${client.reply.id}`);
    const { end } = await client.untilEnd();
    assertEnd(end, "closed", { in: 2, sent: 2 });
  });

  await t.step("the admin API", async () => {
    using client = await FramedClient.open(service.port, "NEW framed");
    const response = await fetch(`${service.admin}/sessions/${client.reply.id}`, {
      method: "DELETE",
    });
    await response.body?.cancel();
    assert.equal(response.status < 300, true, `DELETE answered ${response.status}`);
    assertEnd((await client.untilEnd()).end, "closed");
  });
  await destination.settled();
});

Deno.test("E server-stopping when the server shuts down", async () => {
  await using destination = new Destination();
  const proxy = startServer(destination.port);
  try {
    using client = await FramedClient.open(proxy.port, "NEW framed");
    using _dest = new TestClient(await destination.accepted());
    const stopping = proxy.server.close();
    assertEnd((await client.untilEnd()).end, "server-stopping", { in: 0, sent: 0 });
    client.close();
    await withDeadline(stopping, WAIT_MS, "server close");
  } finally {
    await proxy[Symbol.asyncDispose]();
  }
});

Deno.test("E protocol-error for every malformed frame, and the session stays open", async (t) => {
  await using opened = await openFramed();
  const { proxy, session, client, dest } = opened;
  await dest.write("abc");
  await client.output(3);
  client.close();
  await proxy.logs.waitFor("session.detached");
  const header = (type: string, length: number) =>
    Uint8Array.of(
      type.charCodeAt(0),
      length >>> 24,
      (length >>> 16) & 255,
      (length >>> 8) & 255,
      length & 255,
    );
  const cases: [string, Uint8Array][] = [
    ["an unknown type", header("Z", 0)],
    ["an empty D", header("D", 0)],
    ["a D length over 262144 (the payload never sent)", header("D", 262_145)],
    ["an A of 7 bytes", concat([header("A", 7), new Uint8Array(7)])],
    ["an A of 9 bytes (the payload never sent)", header("A", 9)],
    ["an A beyond what was sent", encodeFrame({ type: "A", offset: 4 })],
    ["an I from the client", concat([header("I", 8), new Uint8Array(8)])],
    ["an E from the client", concat([header("E", 17), new Uint8Array(17)])],
    ["a C with a payload", concat([header("C", 1), new Uint8Array(1)])],
  ];
  for (const [name, bytes] of cases) {
    await t.step(name, async () => {
      using client = await FramedClient.open(proxy.port, resumeFramed(session, 0));
      await client.raw.write(bytes);
      const { end, data } = await client.untilEnd();
      assertEnd(end, "protocol-error", { in: 0 });
      assert.equal(end.sent, data.length);
      assert.equal((await client.closed()).length, 0, "nothing after E");
      assert.equal(proxy.server.store.size, 1, "the session stays open");
    });
  }
});

Deno.test("after E the server sends nothing and discards D frames", async () => {
  await using opened = await openFramed();
  const { proxy, client, session, dest } = opened;
  await client.send({ type: "D", payload: encoder.encode("?") });
  await dest.readExactly(1);
  await client.inputCount(1);
  // Another attachment ends this one; what this one sends after is dropped.
  using second = await FramedClient.open(proxy.port, resumeFramed(session, 0));
  assertEnd((await client.untilEnd()).end, "taken-over", { in: 1 });
  await client.send({ type: "D", payload: encoder.encode("dropped") });
  await second.send({ type: "D", payload: encoder.encode("kept") });
  assert.equal(decoder.decode(await dest.readExactly(4)), "kept");
  assert.equal(await second.inputCount(5), 5);
  assert.equal((await client.closed()).length, 0);
});

Deno.test("the status report shows a framed attachment's mode", async () => {
  await using opened = await openFramed();
  const { proxy, session } = opened;
  const stats = proxy.server.store.get(session.id)?.stats();
  assert.equal(stats?.mode, "framed");
  assert.equal(stats?.attached, true);
});

// The client library's FramedConnection against the server

/** A proxy, a destination the test drives, and a FramedConnection on a new session. */
async function openLibrary() {
  await using stack = new AsyncDisposableStack();
  const destination = stack.use(new Destination());
  const proxy: TestServer = stack.use(startServer(destination.port));
  const framed = await FramedConnection.open(
    { proxy: { hostname: "127.0.0.1", port: proxy.port } },
    { verb: "NEW" },
  );
  stack.defer(() => framed.close());
  const dest = stack.use(new TestClient(await destination.accepted()));
  const owned = stack.move();
  return { framed, dest, [Symbol.asyncDispose]: () => owned.disposeAsync() };
}

/** The next output event of `framed`, skipping input counts. */
async function nextOutput(framed: FramedConnection, copy: boolean): Promise<Uint8Array> {
  for (let events = 0; events < 1000; events++) {
    const event = await framed.next({ copy });
    if (event?.type === "output") return event.bytes;
    if (event?.type !== "input") throw new Error(`unexpected ${JSON.stringify(event)}`);
  }
  throw new Error("no output");
}

Deno.test("FramedConnection.next copies output by default, and lends a view of its read buffer with copy false", async () => {
  await using opened = await openLibrary();
  const { framed, dest } = opened;
  await dest.write("abc");
  const kept = await nextOutput(framed, true);
  await dest.write("def");
  const lent = await nextOutput(framed, false);
  await dest.write("ghi");
  const lentAgain = await nextOutput(framed, false);
  assert.equal(decoder.decode(kept), "abc");
  assert.equal(decoder.decode(lentAgain), "ghi");
  assert.equal(lent.buffer, lentAgain.buffer, "both views of the one read buffer");
  assert.notEqual(kept.buffer, lent.buffer, "a copy has its own buffer");
  assert.equal(framed.received, 9);
});

Deno.test("FramedConnection.sendInput sends input larger than a frame, one frame a write, confirmed by I", async () => {
  await using opened = await openLibrary();
  const { framed, dest } = opened;
  const input = randomBytes(2 * MAX_DATA_PAYLOAD + 3, 31);
  const small = encoder.encode("end");
  const writing = framed.sendInput(input);
  const after = framed.sendInput(small);
  assert.equal(framed.inputSent, input.length + 3);
  await Promise.all([writing, after]);
  const received = await dest.readExactly(input.length + 3);
  assert.equal(firstDifference(received.subarray(0, input.length), input), -1);
  assert.equal(decoder.decode(received.subarray(input.length)), "end");
  for (let events = 0; framed.inputConfirmed < input.length + 3 && events < 1000; events++) {
    const event = await framed.next();
    assert.equal(event?.type, "input");
  }
  assert.equal(framed.inputConfirmed, input.length + 3);
});

// deno-lint-ignore no-explicit-any
const collectGarbage = (globalThis as any).gc as (() => void) | undefined;

Deno.test({
  name: collectGarbage
    ? "a flood of A frames with a byte of D between them, behind a stalled destination, pins no more than a bound of read chunks"
    : "a flood of A frames with a byte of D between them pins a bounded memory (skipped: needs --v8-flags=--expose-gc)",
  ignore: !collectGarbage,
  async fn() {
    const gc = collectGarbage as () => void;
    const gated = gatedDestination();
    await using proxy = startServer(1, { connect: () => Promise.resolve(gated.destination.conn) });
    using client = await FramedClient.open(proxy.port, "NEW framed");
    await client.send({ type: "D", payload: encoder.encode("x") });
    assert.equal(await gated.started(), 1, "the destination's first write is held");
    gc();
    const before = Deno.memoryUsage().external;
    // 48 MiB of A frames (ignored, not input), a byte of D after every 256 KiB
    // (the server must go on reading them: A frames are how output moves on);
    // the D bytes are far under the window, but each pins the chunk it was read into.
    const ack = encodeFrame({ type: "A", offset: 0 });
    const batch = new Uint8Array(Math.floor(256 * 1024 / ack.length) * ack.length + 6);
    for (let at = 0; at + ack.length <= batch.length - 6; at += ack.length) batch.set(ack, at);
    batch.set(encodeFrame({ type: "D", payload: encoder.encode("y") }), batch.length - 6);
    const batches = 192;
    for (let sent = 0; sent < batches; sent++) await client.raw.write(batch);
    // Then the held write let go: every D byte reaches the destination, once.
    gc();
    const grown = Deno.memoryUsage().external - before;
    assert.ok(grown < 16 * 1024 * 1024, `external memory grew ${grown} bytes`);
    gated.open();
    await confirmedWithin(client, gated.destination, 1 + 192);
    assert.equal(gated.destination.writtenBytes, 1 + 192);
  },
});
