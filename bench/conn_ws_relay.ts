/**
 * The fastest one-hop WebSocket-to-TCP relay we know how to write on this
 * runtime: RFC 6455 by hand on `Deno.Conn` for both sides, speaking
 * websockify's protocol (binary frames both ways, no sessions, no window,
 * no resume), so that the same client measures both. Each socket gets its
 * own connection to the destination; output is read into one buffer behind
 * room for the frame header and written as one frame, with no copy. It is
 * not a server to expose: no limits, no close handshake beyond dropping the
 * connection. The websockify benchmark runs it to show what one hop costs
 * here when neither `Deno.upgradeWebSocket` nor `node:net` is in the path.
 *
 *     deno run --allow-net bench/conn_ws_relay.ts PORT DESTINATION_PORT
 *
 * @module
 */

import { writeAll } from "../lib/_io.ts";

const port = Number(Deno.args[0]);
const destination = Number(Deno.args[1]);
const READ_BYTES = 64 * 1024;
const HEAD_ROOM = 10;
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes read from a connection, consumed from the front. */
class Incoming {
  #bytes = new Uint8Array(256 * 1024);
  #start = 0;
  #end = 0;
  constructor(readonly conn: Deno.Conn) {}

  /** The first `count` bytes, reading until they are there; null at the end. */
  async peek(count: number): Promise<Uint8Array | null> {
    while (this.#end - this.#start < count) {
      if (this.#start > 0) {
        this.#bytes.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      if (count > this.#bytes.length) {
        const grown = new Uint8Array(Math.max(count, 2 * this.#bytes.length));
        grown.set(this.#bytes.subarray(0, this.#end));
        this.#bytes = grown;
      }
      const read = await this.conn.read(this.#bytes.subarray(this.#end));
      if (read === null) return null;
      this.#end += read;
    }
    return this.#bytes.subarray(this.#start, this.#start + count);
  }

  skip(count: number): void {
    this.#start += count;
  }

  /** The request head, up to its blank line; null if the connection ends first. */
  async head(): Promise<string | null> {
    for (let want = 1;; want = this.#end - this.#start + 1) {
      if (await this.peek(want) === null) return null;
      const bytes = this.#bytes.subarray(this.#start, this.#end);
      const text = decoder.decode(bytes);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        this.skip(end + 4);
        return text.slice(0, end);
      }
      if (bytes.length > 16 * 1024) return null;
    }
  }
}

/** Writes a frame header into the `HEAD_ROOM` bytes before `at`; returns where the frame starts. */
function header(buffer: Uint8Array, at: number, length: number): number {
  if (length < 126) {
    buffer.set([0x82, length], at - 2);
    return at - 2;
  }
  if (length < 65536) {
    buffer.set([0x82, 126, length >> 8, length & 255], at - 4);
    return at - 4;
  }
  new DataView(buffer.buffer, buffer.byteOffset).setBigUint64(at - 8, BigInt(length));
  buffer.set([0x82, 127], at - 10);
  return at - 10;
}

/** Destination to client: each read becomes one binary frame. */
async function output(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(HEAD_ROOM + READ_BYTES);
  for (let read = await from.read(buffer.subarray(HEAD_ROOM)); read !== null;) {
    await writeAll(to, buffer.subarray(header(buffer, HEAD_ROOM, read), HEAD_ROOM + read));
    read = await from.read(buffer.subarray(HEAD_ROOM));
  }
}

/** Client to destination: binary and continuation frames unmasked and written; a close ends it. */
async function input(from: Incoming, to: Deno.Conn): Promise<void> {
  for (;;) {
    const start = await from.peek(2);
    if (start === null) return;
    const opcode = (start[0] as number) & 15;
    let length = (start[1] as number) & 127;
    let at = 2;
    if (length >= 126) {
      at = length === 126 ? 4 : 10;
      const extended = await from.peek(at);
      if (extended === null) return;
      const view = new DataView(extended.buffer, extended.byteOffset);
      length = length === 126 ? view.getUint16(2) : Number(view.getBigUint64(2));
    }
    const frame = await from.peek(at + 4 + length);
    if (frame === null) return;
    const mask = frame.subarray(at, at + 4);
    const payload = frame.subarray(at + 4);
    for (let i = 0; i < payload.length; i++) {
      payload[i] = (payload[i] as number) ^ (mask[i & 3] as number);
    }
    if (opcode === 8) return;
    if (opcode === 0 || opcode === 2) await writeAll(to, payload);
    from.skip(at + 4 + length);
  }
}

async function relay(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  const incoming = new Incoming(conn);
  const head = await incoming.head();
  const key = head === null ? undefined : /^sec-websocket-key:\s*(\S+)/im.exec(head)?.[1];
  if (key === undefined) return;
  const accept = new Uint8Array(await crypto.subtle.digest("SHA-1", encoder.encode(key + GUID)));
  await writeAll(
    conn,
    encoder.encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${accept.toBase64()}\r\nSec-WebSocket-Protocol: binary\r\n\r\n`,
    ),
  );
  const target = await Deno.connect({ hostname: "127.0.0.1", port: destination });
  target.setNoDelay(true);
  try {
    await Promise.race([output(target, conn), input(incoming, target)]);
  } finally {
    target.close();
  }
}

const listener: Deno.TcpListener = Deno.listen({ hostname: "127.0.0.1", port });
for await (const conn of listener) {
  relay(conn).catch(() => {}).finally(() => {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  });
}
