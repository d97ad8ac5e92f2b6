/**
 * WebSocket clients of the gateway for tests, speaking its browser
 * protocol (version 2, docs/gateway.md): {@linkcode TestSocket} on Deno's
 * own `WebSocket`, and {@linkcode RawSocket} on a bare TCP connection, for
 * what a browser's socket cannot do, such as being reset.
 */

import assert from "node:assert/strict";
import { closeQuietly, Wakeup, writeAll } from "../lib/_io.ts";
import { concatBytes } from "../lib/bytes.ts";
import { decoder, encoder, WAIT_MS, withDeadline } from "./_helpers.ts";

/** A message from the gateway: JSON (parsed) or output. */
export type GatewayMessage = Record<string, unknown> | Uint8Array;

/** The gateway's WebSocket URL of session `id`, from its `http://` base URL. */
export function wsUrl(base: string, id: string): string {
  return `${base.replace(/^http/, "ws")}/api/sessions/${id}/ws`;
}

/** A first message: version 2, with whatever `fields` add. */
export function hello(secret: string, ack: number, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({ v: 2, secret, ack, ...fields });
}

/** A WebSocket client for tests: JSON control messages and binary output, in order. */
export class TestSocket implements AsyncDisposable {
  readonly socket: WebSocket;
  readonly #messages: (string | Uint8Array)[] = [];
  readonly #arrived = new Wakeup();
  readonly opened: Promise<void>;
  readonly closed: Promise<CloseEvent>;
  /** The output offset after the output read so far (set by {@linkcode attach}). */
  offset = 0;
  /** The latest `{"type":"in"}` count read. */
  confirmed = 0;

  constructor(url: string) {
    this.socket = new WebSocket(url);
    this.socket.binaryType = "arraybuffer";
    const opened = Promise.withResolvers<void>();
    const closed = Promise.withResolvers<CloseEvent>();
    this.opened = opened.promise;
    this.closed = closed.promise;
    this.socket.onopen = () => opened.resolve();
    this.socket.onerror = () => opened.reject(new Error("WebSocket failed"));
    this.socket.onclose = (event) => {
      closed.resolve(event);
      this.#arrived.wake();
    };
    this.socket.onmessage = (event) => {
      this.#messages.push(typeof event.data === "string" ? event.data : new Uint8Array(event.data));
      this.#arrived.wake();
    };
  }

  /** Sends a JSON message. */
  send(message: Record<string, unknown>): void {
    this.socket.send(JSON.stringify(message));
  }

  /** Opens, sends the first message and returns `attached` (asserting that it is). */
  async attach(
    secret: string,
    ack: number,
    fields: Record<string, unknown> = {},
  ): Promise<Record<string, unknown>> {
    await this.opened;
    this.socket.send(hello(secret, ack, fields));
    const attached = await this.control();
    assert.equal(attached.type, "attached", JSON.stringify(attached));
    this.offset = Number(attached.from);
    this.confirmed = Number(attached.in);
    return attached;
  }

  /** The next control message, `{"type":"in"}` included. */
  nextControl(): Promise<Record<string, unknown>> {
    return this.#control();
  }

  async next(): Promise<string | Uint8Array | null> {
    for (let round = 0; this.#messages.length === 0; round++) {
      if (this.socket.readyState === WebSocket.CLOSED) return null;
      assert.ok(round < 10_000, "bounded");
      await withDeadline(this.#arrived.wait(), WAIT_MS, "a WebSocket message");
    }
    return this.#messages.shift() ?? null;
  }

  /** The next message, which must be a control message, `in` included. */
  async #control(): Promise<Record<string, unknown>> {
    const message = await this.next();
    assert.equal(typeof message, "string", `expected a control message, got ${message}`);
    return JSON.parse(message as string);
  }

  /**
   * Reads exactly `count` bytes of output; with `ack`, acknowledges each
   * message as it comes, as a page does. `{"type":"in"}` messages in
   * between are taken in {@linkcode confirmed}; any other is a failure.
   */
  async bytes(count: number, options: { ack?: boolean } = {}): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let have = 0;
    while (have < count) {
      const message = await this.next();
      if (typeof message === "string" && JSON.parse(message).type === "in") {
        this.confirmed = JSON.parse(message).in;
        continue;
      }
      assert.ok(message instanceof Uint8Array, `expected output, got ${message}`);
      parts.push(message);
      have += message.length;
      this.offset += message.length;
      if (options.ack) this.send({ type: "ack", ack: this.offset });
    }
    assert.equal(have, count, "no more than asked for");
    return concatBytes(parts);
  }

  /**
   * The next control message that is not `{"type":"in"}` (those are taken
   * in {@linkcode confirmed}).
   */
  async control(): Promise<Record<string, unknown>> {
    for (let round = 0;; round++) {
      assert.ok(round < 10_000, "bounded");
      const message = await this.#control();
      if (message.type !== "in") return message;
      this.confirmed = Number(message.in);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.close();
    await this.closed;
  }
}

/**
 * A WebSocket on a bare TCP connection: text messages out (masked),
 * messages in, and {@linkcode reset}, which closes the connection with
 * output unread, so the kernel resets it: no close handshake.
 */
export class RawSocket implements Disposable {
  readonly #conn: Deno.Conn;
  #pending: Uint8Array = new Uint8Array(0);

  private constructor(conn: Deno.Conn, rest: Uint8Array) {
    this.#conn = conn;
    this.#pending = rest;
  }

  /** Connects to the gateway on `port` and upgrades to session `id`'s socket. */
  static async open(port: number, id: string): Promise<RawSocket> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await writeAll(
        conn,
        encoder.encode(
          `GET /api/sessions/${id}/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        ),
      );
      let received: Uint8Array = new Uint8Array(0);
      const buffer = new Uint8Array(4096);
      for (let end = -1; end < 0; end = findHeadEnd(received)) {
        const read = await withDeadline(conn.read(buffer), WAIT_MS, "the 101 answer");
        assert.ok(read !== null && received.length < 16_384, "a 101 answer");
        received = concatBytes([received, buffer.subarray(0, read)]);
      }
      const end = findHeadEnd(received);
      assert.match(decoder.decode(received.subarray(0, end)), /^HTTP\/1\.1 101 /);
      return new RawSocket(conn, received.slice(end));
    } catch (error) {
      closeQuietly(conn);
      throw error;
    }
  }

  /** Sends a text message, masked as a client must. */
  async sendText(text: string): Promise<void> {
    const payload = encoder.encode(text);
    assert.ok(payload.length < 126, "short messages only");
    const mask = [1, 2, 3, 4];
    const frame = new Uint8Array(6 + payload.length);
    frame.set([0x81, 0x80 | payload.length, ...mask]);
    payload.forEach((byte, i) => (frame[6 + i] = byte ^ (mask[i % 4] as number)));
    await writeAll(this.#conn, frame);
  }

  /** Reads the next message: text parsed as JSON, binary as bytes (unfragmented frames). */
  async next(): Promise<GatewayMessage> {
    for (let round = 0;; round++) {
      assert.ok(round < 100_000, "bounded");
      const frame = parseFrame(this.#pending);
      if (frame) {
        this.#pending = this.#pending.slice(frame.size);
        assert.ok(frame.opcode === 1 || frame.opcode === 2, `opcode ${frame.opcode}`);
        return frame.opcode === 1 ? JSON.parse(decoder.decode(frame.payload)) : frame.payload;
      }
      const buffer = new Uint8Array(256 * 1024);
      const read = await withDeadline(this.#conn.read(buffer), WAIT_MS, "a WebSocket frame");
      assert.ok(read !== null, "the gateway closed the connection");
      this.#pending = concatBytes([this.#pending, buffer.subarray(0, read)]);
    }
  }

  /** Closes the connection at once, whatever is unread: the kernel sends a reset. */
  reset(): void {
    closeQuietly(this.#conn);
  }

  [Symbol.dispose](): void {
    this.reset();
  }
}

function findHeadEnd(bytes: Uint8Array): number {
  for (let i = 3; i < bytes.length; i++) {
    if (bytes[i - 3] === 13 && bytes[i - 2] === 10 && bytes[i - 1] === 13 && bytes[i] === 10) {
      return i + 1;
    }
  }
  return -1;
}

/** A whole unmasked frame at the start of `bytes`, or `null` while it is incomplete. */
function parseFrame(
  bytes: Uint8Array,
): { opcode: number; payload: Uint8Array; size: number } | null {
  if (bytes.length < 2) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  let length = (bytes[1] as number) & 0x7f;
  let at = 2;
  if (length === 126) {
    if (bytes.length < 4) return null;
    length = view.getUint16(2);
    at = 4;
  } else if (length === 127) {
    if (bytes.length < 10) return null;
    length = view.getUint32(2) * 2 ** 32 + view.getUint32(6);
    at = 10;
  }
  if (bytes.length < at + length) return null;
  return {
    opcode: (bytes[0] as number) & 0x0f,
    payload: bytes.slice(at, at + length),
    size: at + length,
  };
}
