/**
 * A framed attachment (version 2 of the protocol): one client connection
 * that carries frames both ways after the reply line, attached to a
 * {@linkcode Session}. Its three pumps:
 *
 * - the frame sender writes the reply, then `D` frames from the session's
 *   output buffer, never more than the window beyond the client's latest
 *   acknowledgement; `I` frames once input is written; `E` before the end.
 *   Each batch of frames is one write (headers and payloads together);
 * - the frame receiver reads frames whatever the destination does, so that
 *   `A` and `C` always get through: `D` payloads come from the reader in
 *   pieces as they arrive (so reads fill its buffer, as version 1's do),
 *   judged against the input window from the header, and held in order:
 *   the pieces of a large read kept in the reader's buffer, joined up
 *   there (the headers between them squeezed out), and the reader goes on
 *   in a spare buffer; the pieces of small reads copied into reused
 *   chunks; `A` releases output at once;
 * - the input writer hands held input to the session's destination writes:
 *   a large read's payload in one write, as version 1 writes each read;
 *   small pieces that arrived while the previous write was in flight
 *   together in the next (up to a chunk). `I` follows: at once when
 *   nothing was confirmed lately or a quarter window waits, else within
 *   10 ms (one timer per interval at most, not one per `I`).
 *
 * The session decides when an attachment ends from outside (a takeover,
 * `CLOSE`, the admin API, shutdown) by calling {@linkcode FramedAttachment.end};
 * this file sends the `E` and closes the connection gracefully.
 *
 * @module
 */

import { closeQuietly, Wakeup, writeAll } from "../_io.ts";
import {
  encodeFrameInto,
  type EndReason,
  FRAME_HEADER_BYTES,
  FrameError,
  FrameReader,
  LARGEST_FRAME_BYTES,
  MAX_DATA_PAYLOAD,
  MAX_END_REASON_BYTES,
  putFrameHeader,
} from "../frames.ts";
import type { OutputBuffer } from "./output_buffer.ts";
import type { SessionState } from "../protocol.ts";
import type { Connection } from "./tcp.ts";

/** What a framed attachment needs from its session. */
export interface FramedHost {
  /** The session's output. */
  readonly buffer: OutputBuffer;
  /** `open` while the destination is. */
  readonly state: SessionState;
  /** Input the session has written (or is writing) to the destination. */
  readonly inputBytes: number;
  /** Whether `attachment` is the session's attached client now. */
  isCurrent(attachment: FramedAttachment): boolean;
  /** Resolves at the next output, acknowledgement or wake-up of the session's senders. */
  nextEvent(): Promise<void>;
  /** Wakes the session's senders and destination reader: output was acknowledged, input written. */
  wake(): void;
  /** Counts input and writes it to the destination after earlier input; resolves once written. */
  forward(bytes: Uint8Array): Promise<void>;
  /** The attachment has stopped being the session's client (the session logs why). */
  detach(attachment: FramedAttachment, reason: string, error?: unknown): void;
  /** Ends the session (`C`, or the last acknowledgement after the destination closed). */
  close(reason: string): void;
}

/** Options for {@linkcode FramedAttachment}. */
export interface FramedAttachmentOptions {
  /** The client connection, its hello read. */
  conn: Connection;
  /** The client's address, for logs. */
  peer: string;
  /** The hello's `<ack>`: the first `D` frame starts there. */
  from: number;
  /** The window: output sent beyond the latest acknowledgement, input held beyond the latest count. */
  window: number;
  /** The reply line. */
  reply: Uint8Array;
  /** Frames the client sent after the hello, in the same read. */
  leftover: Uint8Array;
  /** How long to read on after `E destination-closed` for a last `A`, in ms. */
  closedLinger: number;
  /**
   * The least time between two `I` frames sent for their own sake, in ms.
   * @default {10}
   */
  countInterval?: number;
  /**
   * Called once the reply line is written.
   * @default {nothing}
   */
  onReplySent?: () => void;
}

/** How long the connection stays open after another `E`, for the client to close first, in ms. */
const END_LINGER_MS = 1000;

/**
 * The least time between two `I` frames sent for their own sake, in ms:
 * under a flood of input, writes finish far more often than a client needs
 * to hear of them. An `I` rides with output at no cost, and goes at once
 * when a quarter of the window is written and unconfirmed, so a client
 * sending at full speed never waits for one; the protocol's bound is 100 ms.
 */
const COUNT_INTERVAL_MS = 10;

/** Output in one batch of frames: one largest `D` frame's payload. */
const BATCH_PAYLOAD = MAX_DATA_PAYLOAD;

/** Room for what rides with the output in a batch: an `I`, two `D` headers (the ring may wrap), an `E`. */
const BATCH_EXTRA = 3 * FRAME_HEADER_BYTES + 8 + 16 + MAX_END_REASON_BYTES;

/**
 * One framed client connection of a session.
 *
 * @example
 * ```ts ignore
 * const framed = new FramedAttachment(host, { conn, peer, from, window, reply, leftover, closedLinger });
 * track(framed.run());
 * // later, from the session:
 * framed.end("taken-over");
 * ```
 */
export class FramedAttachment {
  /** The client's address. */
  readonly peer: string;
  readonly #host: FramedHost;
  readonly #conn: Connection;
  readonly #window: number;
  readonly #closedLinger: number;
  readonly #countInterval: number;
  readonly #reader: FrameReader;
  #reply: Uint8Array | null;
  #onReplySent: (() => void) | null;
  /** The next output offset to send. */
  #position: number;
  /** The client's latest acknowledgement. */
  #acked: number;
  /** The latest input count the client was given (`<in>`, then each `I`). */
  #toldIn: number;
  /** The input count once the latest write of this attachment finished. */
  #written: number;
  /** An `I` for `#written` is due: it goes in the next batch. */
  #countDue = false;
  /** When the latest `I` was sent (`performance.now()`). */
  #countedAt = -Infinity;
  #countTimer: ReturnType<typeof setTimeout> | undefined;
  /** `<in>` plus the `D` payload bytes read on this connection. */
  #received: number;
  /** Input read and not yet written to the destination, in order. */
  readonly #held: HeldInput;
  readonly #inputArrived = new Wakeup();
  /** Input was held since the input writer was last woken. */
  #inputHeld = false;
  /** Why the server ends this connection; set once, then `E` is (or was) sent. */
  #endReason: EndReason | null = null;
  /** The `E` frame has been written: nothing more is sent. */
  #endSent = false;
  /** The client closed, or the connection failed: nothing more is sent or read. */
  #gone = false;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #sendBuffer = new Uint8Array(0);

  /**
   * Creates the attachment; {@linkcode FramedAttachment.run} starts it.
   *
   * @param host The session.
   * @param options The connection, offsets, window and reply.
   */
  constructor(host: FramedHost, options: FramedAttachmentOptions) {
    this.#host = host;
    this.#conn = options.conn;
    this.peer = options.peer;
    this.#window = options.window;
    this.#closedLinger = options.closedLinger;
    this.#countInterval = options.countInterval ?? COUNT_INTERVAL_MS;
    this.#reply = options.reply;
    this.#onReplySent = options.onReplySent ?? null;
    this.#position = this.#acked = options.from;
    this.#toldIn = this.#written = this.#received = host.inputBytes;
    this.#held = new HeldInput(Math.max(options.window, 2 * READ_BUFFER_BYTES));
    this.#reader = new FrameReader(options.conn, {
      direction: "to-server",
      leftover: options.leftover,
      dataInPieces: true,
      nextBuffer: (size) => this.#held.readBuffer(size),
      largestBuffer: READ_BUFFER_BYTES,
    });
  }

  /** The next output offset this connection sends. */
  get position(): number {
    return this.#position;
  }

  /**
   * Runs the three pumps until the connection is closed.
   *
   * @returns Resolves once all three have stopped and the connection is closed.
   */
  async run(): Promise<void> {
    try {
      await Promise.all([this.#send(), this.#receive(), this.#writeInput()]);
    } finally {
      clearTimeout(this.#lingerTimer);
      clearTimeout(this.#countTimer);
      this.#held.clear();
      closeQuietly(this.#conn);
    }
  }

  /**
   * Ends the connection for `reason`: it sends `E`, then closes. Called by
   * the session once this is no longer its attachment. Idempotent: the
   * first reason stays, and a client that has gone is sent nothing.
   *
   * @param reason The end reason.
   */
  end(reason: EndReason): void {
    if (this.#endReason !== null || this.#gone) return;
    this.#endReason = reason;
    // A client that does not read cannot be sent E: close it anyway.
    this.#lingerTimer = setTimeout(() => this.#abort(), END_LINGER_MS);
    this.#host.wake();
    this.#inputArrived.wake();
  }

  /** The sender: reply, output, input counts, then the end. */
  async #send(): Promise<void> {
    const host = this.#host;
    try {
      while (!this.#gone && !this.#endSent) {
        const length = this.#batch();
        if (length > 0) {
          await writeAll(this.#conn, this.#sendBuffer.subarray(0, length));
          this.#onReplySent?.();
          this.#onReplySent = null;
          if (this.#endSent) await this.#afterEnd();
        } else {
          await host.nextEvent();
        }
      }
    } catch (error) {
      this.#lost("client write failed", error);
    }
  }

  /**
   * Puts the next batch of frames in the send buffer: the reply line first,
   * an `I` when input was written, the output the window allows, and `E`
   * when the connection ends.
   *
   * @returns Its length; 0 when there is nothing to send.
   */
  #batch(): number {
    const host = this.#host;
    const buffer = host.buffer;
    const current = host.isCurrent(this);
    const reply = this.#reply;
    this.#reply = null;
    const limit = Math.min(buffer.end, this.#acked + this.#window);
    const output = current && this.#endReason === null
      ? Math.min(BATCH_PAYLOAD, Math.max(0, limit - this.#position))
      : 0;
    // An I rides with the reply or output whenever input was written since the last.
    const counting = this.#written > this.#toldIn && this.#endReason === null &&
      (this.#countDue || output > 0 || reply !== null);
    let end = this.#endReason;
    if (
      end === null && current && host.state === "closed" && this.#position + output === buffer.end
    ) {
      end = this.#endReason = "destination-closed";
    }
    if (!reply && output === 0 && !counting && end === null) return 0;
    this.#ensure((reply?.length ?? 0) + output + BATCH_EXTRA);
    const target = this.#sendBuffer;
    let at = 0;
    if (reply) {
      target.set(reply);
      at = reply.length;
    }
    if (counting) {
      at += encodeFrameInto(target, at, { type: "I", count: this.#written });
      this.#toldIn = this.#written;
      this.#countDue = false;
      this.#countedAt = performance.now();
      // A count timer set meanwhile stays: it looks again when it fires.
    }
    // One D frame per contiguous view of the ring: at most two.
    for (let left = output; left > 0;) {
      const view = buffer.view(this.#position);
      const count = Math.min(left, view.length);
      putFrameHeader(target, at, "D", count);
      target.set(view.subarray(0, count), at + FRAME_HEADER_BYTES);
      at += FRAME_HEADER_BYTES + count;
      left -= count;
      // Sent from here on: the client may acknowledge it before the write returns.
      this.#position += count;
      buffer.markSent(this.#position);
    }
    if (end !== null) {
      at += encodeFrameInto(target, at, {
        type: "E",
        in: host.inputBytes,
        sent: this.#position,
        reason: end,
      });
      this.#endSent = true;
    }
    return at;
  }

  /** After `E`: stop sending, and read on until the client closes or the linger passes. */
  async #afterEnd(): Promise<void> {
    const destinationClosed = this.#endReason === "destination-closed";
    clearTimeout(this.#lingerTimer);
    this.#lingerTimer = setTimeout(
      () => this.#abort(),
      destinationClosed ? this.#closedLinger : END_LINGER_MS,
    );
    if (destinationClosed) this.#closeIfAcknowledged();
    try {
      await this.#conn.closeWrite();
    } catch {
      // Already closed: the receiver ends too.
    }
  }

  /** The receiver: frames from the client, whatever the destination does. */
  async #receive(): Promise<void> {
    try {
      while (!this.#gone) {
        // The input writer is woken once what was read is all held: the
        // pieces of one read joined up go out in one destination write.
        if (this.#inputHeld && !this.#reader.ready) {
          this.#inputHeld = false;
          this.#inputArrived.wake();
        }
        const frame = await this.#reader.next();
        if (frame === null) break;
        if (this.#endReason !== null) {
          // After E only a last acknowledgement (or C) of a closed destination counts.
          if (this.#endReason !== "destination-closed" || !this.#host.isCurrent(this)) continue;
          if (frame.type === "A" && frame.offset <= this.#position) this.#acknowledge(frame.offset);
          else if (frame.type === "C") this.#host.close(`closed by client ${this.peer}`);
          continue;
        }
        switch (frame.type) {
          case "D":
            this.#input(frame.payload, frame.length);
            break;
          case "A":
            if (frame.offset > this.#position) {
              throw new FrameError(
                `A ${frame.offset} is beyond the ${this.#position} bytes sent on this connection`,
              );
            }
            this.#acknowledge(frame.offset);
            break;
          case "C":
            this.#host.close(`closed by client ${this.peer}`);
            break;
        }
      }
      this.#lost(this.#endReason === null ? "client closed" : `ended: ${this.#endReason}`);
    } catch (error) {
      if (this.#endReason !== null) {
        // The end was under way: the linger timer or the client closed the connection.
        this.#lost(`ended: ${this.#endReason}`);
      } else if (error instanceof FrameError && !error.truncated) {
        this.#endReason = "protocol-error";
        this.#lingerTimer = setTimeout(() => this.#abort(), END_LINGER_MS);
        this.#host.detach(this, "protocol error", error);
        this.#host.wake();
        this.#inputArrived.wake();
        // Read on (discarding) until the client closes or the linger passes.
        await this.#discard();
      } else {
        this.#lost(error instanceof FrameError ? "client closed" : "client read failed", error);
      }
    }
  }

  /** Reads and drops what the client still sends, after a malformed frame. */
  async #discard(): Promise<void> {
    const sink = new Uint8Array(4096);
    try {
      while (!this.#gone && await this.#conn.read(sink) !== null);
    } catch {
      // Closed by the linger timer, or reset.
    }
    this.#lost("ended: protocol-error");
  }

  /**
   * A piece of a `D` frame's payload: held for the destination, in order.
   * A frame's first piece brings its `length`, judged against the window
   * before any of the frame is held.
   */
  #input(payload: Uint8Array, length: number | undefined): void {
    const host = this.#host;
    // Once the destination has closed, input is discarded unjudged.
    if (host.state === "closed" || !host.isCurrent(this)) return;
    if (length !== undefined) this.#received += length;
    if (this.#received - this.#toldIn > this.#window) {
      throw new FrameError(
        `input ${
          this.#received - this.#toldIn
        } bytes beyond the latest count ${this.#toldIn}, window ${this.#window}`,
      );
    }
    if (payload.length === 0) return;
    const reader = this.#reader;
    const held = this.#held;
    if (held.join(payload)) {
      // Read into the buffer of the input kept last: joined to it.
    } else if (
      (payload.length + reader.buffered) * 2 >= reader.bufferLength &&
      held.canKeep(reader.bufferLength)
    ) {
      // The start of most of a read: kept where it was read, the rest of
      // the read joined to it, and the reader goes on in another buffer.
      held.keep(payload);
      reader.keep();
    } else {
      held.push(payload);
    }
    this.#inputHeld = true;
  }

  /** An `A` at or below what was sent: releases output up to it. */
  #acknowledge(offset: number): void {
    if (offset <= this.#acked || !this.#host.isCurrent(this)) return;
    this.#acked = offset;
    this.#host.buffer.acknowledge(offset);
    this.#host.wake();
    if (this.#endSent) this.#closeIfAcknowledged();
  }

  /** After `E destination-closed`: the session ends once all its output is acknowledged. */
  #closeIfAcknowledged(): void {
    const host = this.#host;
    if (host.isCurrent(this) && this.#acked === host.buffer.end) {
      host.close("destination closed, output acknowledged");
    }
  }

  /**
   * The input writer: one destination write at a time, of all the held
   * input that is contiguous (a kept read, or a chunk of copied pieces),
   * then an `I` for it. The receiver goes on holding input meanwhile
   * (joining pieces to the read being written, after what is written), so
   * what arrives during a write goes out together in the next one.
   */
  async #writeInput(): Promise<void> {
    const host = this.#host;
    const held = this.#held;
    while (!this.#gone && this.#endReason === null) {
      const bytes = held.peek();
      if (bytes === null) {
        await this.#inputArrived.wait();
        continue;
      }
      // Checked right before forwarding: input held for an attachment
      // that another has replaced is dropped, never counted.
      if (!host.isCurrent(this)) break;
      const writing = host.forward(bytes);
      // The session writes all input counted before this in order first, so
      // once this write is done, everything up to here is at the destination.
      const total = host.inputBytes;
      await writing;
      held.consume(bytes.length);
      // A failed write closes the destination: what it did not take is not confirmed.
      if (host.state === "open") {
        this.#written = total;
        this.#scheduleCount();
      }
      host.wake();
    }
    held.clear();
  }

  /**
   * Input was written: its `I` is due now if a quarter of the window is
   * unconfirmed or none was sent for the count interval
   * ({@linkcode COUNT_INTERVAL_MS} by default), otherwise once it has passed.
   */
  #scheduleCount(): void {
    if (this.#countDue) return;
    const wait = this.#countedAt + this.#countInterval - performance.now();
    if (wait <= 0 || this.#written - this.#toldIn >= this.#window / 4) {
      // A timer set earlier stays: it looks again when it fires.
      this.#countDue = true;
    } else {
      this.#countTimer ??= setTimeout(() => this.#countTimeUp(), wait);
    }
  }

  /**
   * The count timer fired: the `I` for what was written since the latest
   * is due now, or, when one went meanwhile (with output, or at a quarter
   * window), once the count interval from it has passed. Setting one timer
   * per interval, not per `I`, is what keeps a flood of input from paying
   * for a timer each quarter window.
   */
  #countTimeUp(): void {
    this.#countTimer = undefined;
    if (this.#countDue || this.#written === this.#toldIn) return;
    const wait = this.#countedAt + this.#countInterval - performance.now();
    if (wait > 0) {
      this.#countTimer = setTimeout(() => this.#countTimeUp(), wait);
    } else {
      this.#countDue = true;
      this.#host.wake();
    }
  }

  /**
   * The client has gone, the connection failed, or its end is over: nothing
   * more is sent or read. The session ignores the detach of an attachment
   * it has already let go.
   */
  #lost(reason: string, error?: unknown): void {
    this.#gone = true;
    this.#host.detach(this, reason, error);
    this.#abort();
  }

  /** Closes the connection now; the pumps see it and stop. */
  #abort(): void {
    this.#gone = true;
    clearTimeout(this.#lingerTimer);
    closeQuietly(this.#conn);
    this.#inputArrived.wake();
    this.#host.wake();
  }

  #ensure(capacity: number): void {
    if (this.#sendBuffer.length >= capacity) return;
    const maximum = BATCH_PAYLOAD + BATCH_EXTRA + 1024;
    this.#sendBuffer = new Uint8Array(
      Math.max(capacity, Math.min(maximum, this.#sendBuffer.length * 2)),
    );
  }
}

/** Bytes of one chunk of held input: one largest `D` payload. */
const INPUT_CHUNK = MAX_DATA_PAYLOAD;

/**
 * The reader's largest buffer: two largest `D` frames, as large as a
 * version 1 input read (`MAX_INPUT_CHUNK` in ./session.ts). A client
 * connection is read through `node:net` (./tcp.ts), where every read costs
 * a turn of the event loop: reads of one frame's size cut framed input to
 * 0.70 to 0.90 of version 1, and these gave 0.98 to 1.04 (docs/performance.md).
 */
export const READ_BUFFER_BYTES = 2 * LARGEST_FRAME_BYTES;

/** Chunks of held input, and reader buffers, kept for reuse once input stops. */
const SPARE_CHUNKS = 2;

/**
 * How long spares beyond {@linkcode SPARE_CHUNKS} stay once all held input
 * was written, in ms: a flood often catches up for a moment, and buffers
 * let go then would be allocated (and zeroed) again at once.
 */
const SPARE_LINGER_MS = 1000;

/**
 * One chunk of held input: `bytes[start, end)` waits for the destination.
 * A copy chunk is filled end to end; a kept one is a reader buffer, the
 * pieces read into it joined up in place, and it goes back to the reader
 * once written.
 */
interface InputChunk {
  bytes: Uint8Array;
  start: number;
  end: number;
  kept: boolean;
}

/**
 * Input read from the client and not yet written to the destination, in
 * order. A read that is most of the reader's buffer is kept there,
 * uncopied, whatever the frame sizes: the pieces of `D` payload read into
 * it are joined up where they are (each frame header between two squeezed
 * out by moving the shorter side over it, in a buffer the read has just
 * filled), so that one read is one contiguous view for one destination
 * write, as in version 1. The pieces of small reads are copied end to end
 * into reused chunks instead, so that what arrives during a destination
 * write goes in the next one.
 *
 * The receiver refuses input beyond the window; reader buffers, held and
 * spare together, are kept only up to `keptLimit` (the window, or two
 * buffers); a kept buffer the reader has left holds at least half its size
 * of input (else its input is copied out and the buffer is spare); and copy
 * chunks are only made for held input: so held memory stays within about
 * twice the window, and for windows smaller than two reader buffers
 * (1 MiB), those two beside the one being read into and two copy chunks. Spares beyond
 * {@linkcode SPARE_CHUNKS} of each kind go {@linkcode SPARE_LINGER_MS}
 * after all held input was written.
 */
class HeldInput {
  #chunks: InputChunk[] = [];
  #spare: Uint8Array[] = [];
  #spareReads: Uint8Array[] = [];
  /** The kept chunk of the buffer the reader is still reading into: its later pieces join it. */
  #open: InputChunk | null = null;
  /** The chunk {@linkcode HeldInput.peek} gave a view of, until {@linkcode HeldInput.consume}. */
  #writing: InputChunk | null = null;
  /** Bytes of the reader buffers held (kept chunks) and spare. */
  #keptBytes = 0;
  readonly #keptLimit: number;
  #trimTimer: ReturnType<typeof setTimeout> | undefined;

  /** @param keptLimit The most bytes of reader buffers held and spare together. */
  constructor(keptLimit: number) {
    this.#keptLimit = keptLimit;
  }

  /** Copies `payload` after the input held already. */
  push(payload: Uint8Array): void {
    for (let at = 0; at < payload.length;) {
      let last = this.#chunks.at(-1);
      if (!last || last.kept || last.end === last.bytes.length) {
        const bytes = this.#spare.pop() ?? new Uint8Array(INPUT_CHUNK);
        last = { bytes, start: 0, end: 0, kept: false };
        this.#chunks.push(last);
      }
      const count = Math.min(payload.length - at, last.bytes.length - last.end);
      last.bytes.set(payload.subarray(at, at + count), last.end);
      last.end += count;
      at += count;
    }
  }

  /**
   * Joins `piece` to the open chunk when it was read into the same buffer,
   * after the chunk's input: the shorter side moves over the gap (a frame
   * header or more) between them; the open chunk moves only while no write
   * is using it.
   *
   * @returns Whether `piece` is held now (else it is from another buffer).
   */
  join(piece: Uint8Array): boolean {
    const open = this.#open;
    if (open === null || open.bytes.buffer !== piece.buffer) return false;
    const bytes = open.bytes;
    const at = piece.byteOffset;
    const gap = at - open.end;
    if (gap > 0 && open !== this.#writing && open.end - open.start <= piece.length) {
      bytes.copyWithin(open.start + gap, open.start, open.end);
      open.start += gap;
      open.end = at + piece.length;
    } else {
      if (gap > 0) bytes.copyWithin(open.end, at, at + piece.length);
      open.end += piece.length;
    }
    return true;
  }

  /**
   * Whether one more reader buffer of `size` bytes may be kept: spare
   * buffers are let go to make room for it, as held input is what counts.
   */
  canKeep(size: number): boolean {
    while (this.#keptBytes + size > this.#keptLimit) {
      const spare = this.#spareReads.pop();
      if (!spare) return false;
      this.#keptBytes -= spare.length;
    }
    return true;
  }

  /**
   * Holds `piece` where it is, after the input held already: its buffer is
   * this one's now, open to the later pieces read into it.
   */
  keep(piece: Uint8Array): void {
    const bytes = new Uint8Array(piece.buffer);
    // A copy chunk all written (reset to be filled again) would stand empty before it.
    const last = this.#chunks.at(-1);
    if (last && !last.kept && last.start === last.end && last !== this.#writing) {
      this.#chunks.pop();
      if (this.#spare.length < SPARE_CHUNKS) this.#spare.push(last.bytes);
    }
    const start = piece.byteOffset - bytes.byteOffset;
    const chunk = { bytes, start, end: start + piece.length, kept: true };
    this.#chunks.push(chunk);
    this.#open = chunk;
    this.#keptBytes += bytes.length;
  }

  /**
   * The reader leaves the open chunk's buffer: a buffer of `size` bytes for
   * it to go on in, a spare one whose input was written.
   *
   * @returns The buffer, or `null` when none is spare.
   */
  readBuffer(size: number): Uint8Array | null {
    const open = this.#open;
    this.#open = null;
    if (open && open !== this.#writing && (open.end - open.start) * 2 < open.bytes.length) {
      // Less than half of it is input (the read was mostly headers or
      // acknowledgements): its input is copied, so that a kept buffer
      // always holds at least half its size of input, and the buffer is spare.
      const input = open.bytes.subarray(open.start, open.end);
      this.#drop(open);
      this.push(input);
    }
    const buffer = this.#spareReads.pop();
    if (!buffer) return null;
    this.#keptBytes -= buffer.length;
    return buffer.length >= size ? buffer : null;
  }

  /**
   * The oldest held input, as much as is contiguous: it stays held (and its
   * bytes unchanged) until {@linkcode HeldInput.consume}.
   *
   * @returns A view, or `null` when nothing is held.
   */
  peek(): Uint8Array | null {
    const first = this.#chunks[0];
    if (!first || first.end === first.start) return null;
    this.#writing = first;
    return first.bytes.subarray(first.start, first.end);
  }

  /** The first `count` bytes that {@linkcode HeldInput.peek} gave are written. */
  consume(count: number): void {
    const first = this.#chunks[0];
    this.#writing = null;
    if (!first) return;
    first.start += count;
    if (first.start < first.end) return;
    if (first === this.#open) {
      // All written, and the reader still reads into its buffer: later pieces join it.
    } else if (!first.kept && first.end < first.bytes.length && this.#chunks.length === 1) {
      // All written, and the chunk is still being filled: fill it from the start again.
      first.start = first.end = 0;
    } else {
      this.#chunks.shift();
      if (first.kept) this.#drop(first);
      else this.#spare.push(first.bytes);
    }
    const next = this.#chunks[0];
    const spares = Math.max(this.#spare.length, this.#spareReads.length);
    if ((!next || next.start === next.end) && spares > SPARE_CHUNKS && !this.#trimTimer) {
      this.#trimTimer = setTimeout(() => this.#trim(), SPARE_LINGER_MS);
    }
  }

  /** A kept chunk written, the reader gone from its buffer: the buffer is spare. */
  #drop(chunk: InputChunk): void {
    const index = this.#chunks.indexOf(chunk);
    if (index >= 0) this.#chunks.splice(index, 1);
    this.#spareReads.push(chunk.bytes);
  }

  /** A while after all held input was written: the spares beyond {@linkcode SPARE_CHUNKS} go. */
  #trim(): void {
    this.#trimTimer = undefined;
    for (const buffer of this.#spareReads.splice(SPARE_CHUNKS)) this.#keptBytes -= buffer.length;
    this.#spare.length = Math.min(this.#spare.length, SPARE_CHUNKS);
  }

  /** Drops all held input, and the chunks. */
  clear(): void {
    clearTimeout(this.#trimTimer);
    this.#trimTimer = undefined;
    this.#chunks = [];
    this.#spare = [];
    this.#spareReads = [];
    this.#open = null;
    this.#writing = null;
    this.#keptBytes = 0;
  }
}
