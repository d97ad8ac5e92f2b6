/**
 * A framed attachment on its own, against a stand-in session: when `I`
 * frames go. Several writes share one `I` within the count interval, and a
 * quarter of the window unconfirmed sends one at once, so a client at full
 * speed never waits for room. And how large its reads grow. (The whole
 * server is tested in framed_server_test.ts.)
 */

import assert from "node:assert/strict";
import { Wakeup, writeAll } from "../lib/_io.ts";
import { concatBytes } from "../lib/bytes.ts";
import {
  encodeFrame,
  type Frame,
  FRAME_HEADER_BYTES,
  FrameReader,
  MAX_DATA_PAYLOAD,
} from "../lib/frames.ts";
import {
  FramedAttachment,
  type FramedAttachmentOptions,
  type FramedHost,
  READ_BUFFER_BYTES,
} from "../lib/proxy/framed_attachment.ts";
import type { Connection } from "../lib/proxy/tcp.ts";
import { OutputBuffer } from "../lib/proxy/output_buffer.ts";
import { WAIT_MS, withDeadline } from "./_helpers.ts";

const WINDOW = 64 * 1024;

/** A session with an open destination that takes every write at once, and records it. */
function standInSession(): FramedHost & { written: number[]; wrote: Wakeup } {
  const events = new Wakeup();
  const host = {
    buffer: new OutputBuffer(WINDOW),
    state: "open" as const,
    inputBytes: 0,
    written: [] as number[],
    wrote: new Wakeup(),
    isCurrent: () => true,
    nextEvent: () => events.wait(),
    wake: () => events.wake(),
    forward(bytes: Uint8Array): Promise<void> {
      host.inputBytes += bytes.length;
      host.written.push(bytes.length);
      host.wrote.wake();
      return Promise.resolve();
    },
    detach: () => {},
    close: () => {},
  };
  return host;
}

/** A connected loopback pair: the attachment's end and the client's. */
async function pair(): Promise<{ server: Deno.Conn; client: Deno.Conn }> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port }),
    listener.accept(),
  ]);
  return { server, client };
}

/** Waits until the stand-in destination has taken `total` bytes. */
async function writtenUpTo(host: { inputBytes: number; wrote: Wakeup }, total: number) {
  for (let turns = 0; host.inputBytes < total && turns < 10_000; turns++) {
    await withDeadline(host.wrote.wait(), WAIT_MS, `${total} bytes written`);
  }
  assert.equal(host.inputBytes, total);
}

/** `conn`, telling `onRead` each read's buffer size and count. */
function watchReads(
  conn: Deno.Conn,
  onRead: (size: number, count: number | null) => void,
): Connection {
  return {
    async read(buffer: Uint8Array) {
      const count = await conn.read(buffer);
      onRead(buffer.length, count);
      return count;
    },
    write: (bytes: Uint8Array) => conn.write(bytes),
    close: () => conn.close(),
    closeWrite: () => conn.closeWrite(),
    localAddr: conn.localAddr,
    remoteAddr: conn.remoteAddr,
  };
}

/** Runs a framed attachment of `host` on `conn`, and reads its reply at `client`. */
async function attach(
  host: FramedHost,
  conn: Connection,
  client: Deno.Conn,
  options: Partial<FramedAttachmentOptions> = {},
): Promise<{ running: Promise<void> }> {
  const attachment = new FramedAttachment(host, {
    conn,
    peer: "test",
    from: 0,
    window: WINDOW,
    reply: new TextEncoder().encode("OK\n"),
    leftover: new Uint8Array(0),
    closedLinger: 0,
    ...options,
  });
  const running = attachment.run();
  assert.equal(await client.read(new Uint8Array(3)), 3);
  return { running };
}

Deno.test("writes within the count interval share one I, and a quarter window unconfirmed sends it at once", async () => {
  const host = standInSession();
  const { server, client } = await pair();
  // The count interval is never, within this test: only the window sends I.
  const { running } = await attach(host, server, client, { countInterval: 3_600_000 });
  const frames = new FrameReader(client, { direction: "to-client" });
  const send = (frame: Frame) => client.write(encodeFrame(frame));

  // The first write is confirmed at once: no I was sent lately.
  await send({ type: "D", payload: Uint8Array.of(1) });
  assert.deepEqual(await frames.next(), { type: "I", count: 1 });
  // The next, right after, waits for the interval (here: for ever)...
  await send({ type: "D", payload: Uint8Array.of(2, 3) });
  await writtenUpTo(host, 3);
  // ...until a quarter window is written and unconfirmed: then one I counts it all.
  const quarter = WINDOW / 4;
  await send({ type: "D", payload: new Uint8Array(quarter) });
  const next = await frames.next();
  assert.ok(next?.type === "I", `an I, not ${JSON.stringify(next)}`);
  // The quarter is counted from the last I (1); input written after it may be in too.
  assert.ok(next.count >= 1 + quarter && next.count <= 3 + quarter, `I ${next.count}`);
  assert.ok(host.written.length >= 3, `${host.written.length} writes, 2 I frames`);

  client.close();
  await running;
});

Deno.test("a client's reads grow to READ_BUFFER_BYTES, two largest frames, as large as a version 1 read", async () => {
  const host = standInSession();
  const { server, client } = await pair();
  let largest = 0;
  const window = 64 * 1024 * 1024;
  const conn = watchReads(server, (size) => largest = Math.max(largest, size));
  const { running } = await attach(host, conn, client, { window });
  // Largest frames, 4 MiB at a time, until a read has asked for the largest buffer (at most the window).
  const frame = encodeFrame({ type: "D", payload: new Uint8Array(MAX_DATA_PAYLOAD) });
  const burst = new Uint8Array(16 * frame.length);
  for (let at = 0; at < burst.length; at += frame.length) burst.set(frame, at);
  let sent = 0;
  while (largest < READ_BUFFER_BYTES && sent + burst.length <= window) {
    await writeAll(client, burst);
    sent += burst.length;
    await writtenUpTo(host, (sent / frame.length) * MAX_DATA_PAYLOAD);
  }
  assert.equal(READ_BUFFER_BYTES, 2 * (FRAME_HEADER_BYTES + MAX_DATA_PAYLOAD));
  assert.equal(largest, READ_BUFFER_BYTES, `the largest read asked for ${largest} bytes`);

  client.close();
  await running;
});

Deno.test("the D frames of one read go to the destination in one write", async () => {
  const host = standInSession();
  const { server, client } = await pair();
  let reads = 0;
  const conn = watchReads(server, (_, count) => count && reads++);
  const { running } = await attach(host, conn, client);
  // Four frames in one socket write: read at once, as a rule (the server's first buffer is 16 KiB).
  const frames = Array.from(
    { length: 4 },
    (_, i) => encodeFrame({ type: "D", payload: new Uint8Array(1000).fill(i) }),
  );
  await writeAll(client, concatBytes(frames));
  await writtenUpTo(host, 4000);
  assert.ok(
    host.written.length <= reads,
    `${host.written.length} destination writes (${host.written}) for ${reads} reads`,
  );

  client.close();
  await running;
});
