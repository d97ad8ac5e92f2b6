/**
 * A framed attachment on its own, against a stand-in session: when `I`
 * frames go. Several writes share one `I` within the count interval, and a
 * quarter of the window unconfirmed sends one at once, so a client at full
 * speed never waits for room. (The whole server is tested in
 * framed_server_test.ts.)
 */

import assert from "node:assert/strict";
import { Wakeup } from "../lib/_io.ts";
import { encodeFrame, type Frame, FrameReader } from "../lib/frames.ts";
import { FramedAttachment, type FramedHost } from "../lib/proxy/framed_attachment.ts";
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

Deno.test("writes within the count interval share one I, and a quarter window unconfirmed sends it at once", async () => {
  const host = standInSession();
  const { server, client } = await pair();
  const attachment = new FramedAttachment(host, {
    conn: server,
    peer: "test",
    from: 0,
    window: WINDOW,
    reply: new TextEncoder().encode("OK\n"),
    leftover: new Uint8Array(0),
    closedLinger: 0,
    countInterval: 3_600_000, // never, within this test: only the window sends I
  });
  const running = attachment.run();
  const reply = new Uint8Array(3);
  assert.equal(await client.read(reply), 3);
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
