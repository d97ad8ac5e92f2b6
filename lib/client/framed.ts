/**
 * One framed (version 2) connection, as a client sees it: the reply with
 * its `<window>`, then the session's output as `D` frames, input counts as
 * `I`, and the reason the server ends it as `E`, each read as one
 * {@linkcode FramedEvent}; the client writes input (`D`), acknowledgements
 * (`A`) and `C`. It keeps no session state of its own, so that both the
 * library's {@linkcode ClientSession.stream} and the gateway's WebSocket
 * relay (which takes the browser's acknowledgements and input) use it.
 * Import it from `mod.ts`, the library's public entry.
 *
 * @module
 */

import { closeQuietly, writeAll } from "../_io.ts";
import {
  encodeFrame,
  type EndReason,
  FRAME_HEADER_BYTES,
  FrameError,
  FrameReader,
  MAX_DATA_PAYLOAD,
  putFrameHeader,
} from "../frames.ts";
import { BadRequestError, type Reply } from "../protocol.ts";
import { ConnectionLostError } from "./errors.ts";
import { type ClientOptions, handshake } from "./handshake.ts";

/** The reply to a framed hello: the version 1 fields and the window. */
export type FramedReply = Reply & { window: number };

/** What a framed connection reads next. */
export type FramedEvent =
  /** Output, starting at session offset `offset`. */
  | { type: "output"; bytes: Uint8Array; offset: number }
  /** `I`: the server has written `count` bytes of the session's input to the destination. */
  | { type: "input"; count: number }
  /** `E`: the server ends the connection, and why. */
  | { type: "end"; reason: EndReason; in: number; sent: number };

/** Options for {@linkcode FramedConnection.next}. */
export interface FramedNextOptions {
  /**
   * Whether an output event's bytes are a copy, the caller's to keep. When
   * `false` they are a view into the connection's read buffer, valid until
   * the next call of {@linkcode FramedConnection.next}: for a caller that
   * hands them on at once (a write, a `WebSocket.send`), it saves an
   * allocation and a copy of every byte.
   * @default {true}
   */
  copy?: boolean;
}

/** Where to attach: a new session, or an existing one at an offset. */
export type FramedTarget =
  | { verb: "NEW" }
  | { verb: "RESUME"; id: string; secret: string; ack: number };

const REASONS: ReadonlySet<string> = new Set<EndReason>([
  "taken-over",
  "destination-closed",
  "closed",
  "server-stopping",
  "protocol-error",
]);

/**
 * A framed connection of a session, its hello answered.
 *
 * @example
 * ```ts ignore
 * import { FramedConnection } from "./mod.ts";
 *
 * const framed = await FramedConnection.open({}, { verb: "NEW" });
 * for (let event = await framed.next(); event; event = await framed.next()) {
 *   if (event.type === "output") await framed.acknowledge(event.offset + event.bytes.length);
 *   if (event.type === "end") break;
 * }
 * framed.close();
 * ```
 */
export class FramedConnection {
  /** The server's reply. */
  readonly reply: FramedReply;
  readonly #conn: Deno.Conn;
  readonly #reader: FrameReader;
  /** The output offset after the last `D` frame read. */
  #received: number;
  /** The input offset after the last `D` frame written. */
  #inputSent: number;
  /** The latest input count the server gave: `<in>`, then each `I`. */
  #inputConfirmed: number;
  /** The latest `A` written. */
  #acknowledged: number;
  /** Writes go out one after another, each frame whole. */
  #writing: Promise<void> = Promise.resolve();
  /** Where each input frame is put together (header, then payload) for its write; reused. */
  #frame = new Uint8Array(0);
  #closed = false;

  private constructor(conn: Deno.Conn, reply: FramedReply, early: Uint8Array) {
    this.#conn = conn;
    this.reply = reply;
    this.#reader = new FrameReader(conn, { direction: "to-client", leftover: early });
    this.#received = this.#acknowledged = reply.from;
    this.#inputSent = this.#inputConfirmed = reply.in;
  }

  /**
   * Connects and sends a framed hello: `NEW framed`, or
   * `RESUME <id> <secret> <ack> framed`.
   *
   * @param options The proxy, timeout and TLS.
   * @param target A new session, or where to resume one.
   * @returns The attached connection.
   * @throws {BadRequestError} From a server that does not speak version 2.
   * @throws {ProtocolError} Every version 1 error (`auth`, `gap`, `ack`, ...).
   * @throws {ProxyUnavailableError} When no proxy answers.
   */
  static async open(options: ClientOptions, target: FramedTarget): Promise<FramedConnection> {
    const { conn, reply, early } = await handshake(
      options,
      target.verb === "NEW" ? { verb: "NEW", framed: true } : { ...target, framed: true },
    );
    if ("bye" in reply || reply.window === undefined) {
      closeQuietly(conn);
      throw new ConnectionLostError(
        "bye" in reply
          ? "the server answered a framed hello with BYE"
          : "the server answered a framed hello with a version 1 reply",
      );
    }
    if (target.verb === "RESUME" && reply.from !== target.ack) {
      closeQuietly(conn);
      throw new ConnectionLostError(`asked for output from ${target.ack}, got ${reply.from}`);
    }
    return new FramedConnection(conn, { ...reply, window: reply.window }, early);
  }

  /** The output offset after the last output read. */
  get received(): number {
    return this.#received;
  }

  /** The input offset after the last input written on this connection. */
  get inputSent(): number {
    return this.#inputSent;
  }

  /** The latest input count from the server: the reply's `<in>`, then each `I`. */
  get inputConfirmed(): number {
    return this.#inputConfirmed;
  }

  /** How much more input the window allows before the next `I`. */
  get inputRoom(): number {
    return Math.max(0, this.reply.window - (this.#inputSent - this.#inputConfirmed));
  }

  /** The latest acknowledgement sent (the hello's `<ack>` at first). */
  get acknowledged(): number {
    return this.#acknowledged;
  }

  /** Whether the connection has been closed by this side or found closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether frames already read wait to be returned: {@linkcode next} will not wait for the network. */
  get buffered(): boolean {
    return this.#reader.buffered > 0;
  }

  /**
   * Reads the next event. An output event's bytes are a copy, the caller's
   * to keep, unless `options.copy` is `false`.
   *
   * @param options Whether output is copied.
   * @returns The event, or `null` once the connection has ended without an `E`
   * (it dropped, or this side closed it).
   * @throws {ConnectionLostError} For a frame the protocol does not have.
   */
  async next(options?: FramedNextOptions): Promise<FramedEvent | null> {
    let frame;
    try {
      frame = await this.#reader.next();
    } catch (error) {
      this.close();
      if (error instanceof FrameError && !error.truncated) {
        throw new ConnectionLostError(`the server sent a malformed frame: ${error.message}`);
      }
      return null;
    }
    if (frame === null) {
      this.close();
      return null;
    }
    switch (frame.type) {
      case "D": {
        const offset = this.#received;
        this.#received += frame.payload.length;
        const bytes = options?.copy === false ? frame.payload : frame.payload.slice();
        return { type: "output", bytes, offset };
      }
      case "I":
        if (frame.count > this.#inputConfirmed) this.#inputConfirmed = frame.count;
        return { type: "input", count: frame.count };
      case "E": {
        if (!REASONS.has(frame.reason)) {
          this.close();
          throw new ConnectionLostError(`the server ended with an unknown reason: ${frame.reason}`);
        }
        if (frame.in > this.#inputConfirmed) this.#inputConfirmed = frame.in;
        return { type: "end", reason: frame.reason as EndReason, in: frame.in, sent: frame.sent };
      }
      default:
        // FrameReader refuses A and C in this direction.
        throw new ConnectionLostError(`the server sent a ${frame.type} frame`);
    }
  }

  /**
   * Acknowledges output up to `offset` (`A`); an offset not beyond the
   * latest acknowledgement sends nothing.
   *
   * @param offset The output offset received (and kept) up to.
   * @returns Resolves once written; a failed write closes the connection.
   */
  acknowledge(offset: number): Promise<void> {
    if (offset <= this.#acknowledged || this.#closed) return this.#writing;
    if (offset > this.#received) {
      throw new RangeError(`Cannot acknowledge ${offset}: only ${this.#received} received`);
    }
    this.#acknowledged = offset;
    return this.#write(encodeFrame({ type: "A", offset }));
  }

  /**
   * Writes input as `D` frames, each header and payload in one write. The
   * caller keeps within the window: {@linkcode inputRoom} says how much it
   * allows.
   *
   * @param bytes The input; not copied until its turn to be written comes,
   * so it must not change until the returned promise settles.
   * @returns Resolves once written; a failed write closes the connection.
   * @throws {RangeError} When `bytes` is more than the window allows.
   */
  sendInput(bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0 || this.#closed) return this.#writing;
    if (bytes.length > this.inputRoom) {
      throw new RangeError(
        `Cannot send ${bytes.length} bytes of input: the window allows ${this.inputRoom}`,
      );
    }
    this.#inputSent += bytes.length;
    return this.#enqueue(async () => {
      for (let at = 0; at < bytes.length && !this.#closed; at += MAX_DATA_PAYLOAD) {
        const part = bytes.subarray(at, at + MAX_DATA_PAYLOAD);
        const size = FRAME_HEADER_BYTES + part.length;
        // One buffer for every frame (a write finishes before the next
        // begins): a fresh array per frame would cost more than the copy.
        if (this.#frame.length < size) {
          this.#frame = new Uint8Array(Math.min(FRAME_HEADER_BYTES + MAX_DATA_PAYLOAD, size * 2));
        }
        putFrameHeader(this.#frame, 0, "D", part.length);
        this.#frame.set(part, FRAME_HEADER_BYTES);
        await writeAll(this.#conn, this.#frame.subarray(0, size));
      }
    });
  }

  /**
   * Ends the session (`C`); the server answers `E closed`.
   *
   * @returns Resolves once written.
   */
  closeSession(): Promise<void> {
    return this.#write(encodeFrame({ type: "C" }));
  }

  /** Closes the connection: the session stays on the server, detached. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#conn);
  }

  #write(bytes: Uint8Array): Promise<void> {
    return this.#enqueue(() => writeAll(this.#conn, bytes));
  }

  /** Runs `write` after the writes before it, unless the connection has closed by then. */
  #enqueue(write: () => Promise<void>): Promise<void> {
    this.#writing = this.#writing.then(async () => {
      if (this.#closed) return;
      try {
        await write();
      } catch {
        // The reader sees the end; what was not written is the caller's to resend.
        this.close();
      }
    });
    return this.#writing;
  }
}

/** Whether `error` is what a server that speaks only version 1 answers a framed hello. */
export function isVersion1Refusal(error: unknown): boolean {
  return error instanceof BadRequestError;
}
