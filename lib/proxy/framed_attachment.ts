/**
 * A framed attachment (version 2 of the protocol): one client connection
 * that carries frames both ways after the reply line, attached to a
 * {@linkcode Session}. Its three pumps:
 *
 * - the frame sender writes the reply, then `D` frames from the session's
 *   output buffer, never more than the window beyond the client's latest
 *   acknowledgement; `I` frames once input is written; `E` before the end.
 *   Each batch of frames is one write (headers and payloads together);
 * - the frame receiver reads the client in large reads (up to 512 KiB, as
 *   version 1 reads up to 256 KiB) whatever the destination does, so that
 *   `A` and `C` always get through, and decodes every frame a read holds
 *   before it reads again: `D` payloads stay where they were read, held as
 *   views in order, within the input window; `A` releases output at once;
 * - the input writer hands held input to the session's destination writes,
 *   a large payload as it is (input is copied only by the kernel, as in
 *   version 1), small ones that arrived while the previous write was in
 *   flight copied together into one; `I` follows each write at once.
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
  FrameDecoder,
  FrameError,
  type FrameSink,
  MAX_DATA_PAYLOAD,
  MAX_END_REASON_BYTES,
  putFrameHeader,
} from "../frames.ts";
import type { OutputBuffer } from "./output_buffer.ts";
import type { SessionState } from "../protocol.ts";

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
  conn: Deno.Conn;
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
   * Called once the reply line is written.
   * @default {nothing}
   */
  onReplySent?: () => void;
}

/** How long the connection stays open after another `E`, for the client to close first, in ms. */
const END_LINGER_MS = 1000;

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
  readonly #conn: Deno.Conn;
  readonly #window: number;
  readonly #closedLinger: number;
  readonly #leftover: Uint8Array;
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
  /** `<in>` plus the `D` payload bytes read on this connection. */
  #received: number;
  /** Input read and not yet written to the destination, in order; and the buffers it is read into. */
  readonly #held: HeldInput;
  /** The `D` frame being read is dropped: after `E`, after the destination closed, or after a takeover. */
  #dropping = false;
  readonly #inputArrived = new Wakeup();
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
    this.#reply = options.reply;
    this.#onReplySent = options.onReplySent ?? null;
    this.#position = this.#acked = options.from;
    this.#toldIn = this.#written = this.#received = host.inputBytes;
    this.#leftover = options.leftover;
    this.#held = new HeldInput(options.window);
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
    const counting = this.#written > this.#toldIn && this.#endReason === null;
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

  /**
   * The receiver: frames from the client, whatever the destination does.
   * Each read goes into the free part of a chunk of {@linkcode HeldInput},
   * and every frame it holds is decoded before the next read.
   */
  async #receive(): Promise<void> {
    const held = this.#held;
    const decoder = new FrameDecoder("to-server", this.#sink());
    try {
      // The hello's leftover is not read into again: its pieces are held as they are.
      held.readFromLeftover();
      decoder.push(this.#leftover);
      while (!this.#gone) {
        const room = held.room();
        const count = await this.#conn.read(room);
        if (count === null) break;
        decoder.push(held.filled(count));
      }
      if (!this.#gone && !decoder.between) {
        throw new FrameError("The stream ended inside a frame", true);
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

  /** What the receiver's decoder hands frames to. */
  #sink(): FrameSink {
    return {
      dataStart: (length) => this.#dataStart(length),
      data: (piece) => {
        if (this.#dropping) return;
        this.#held.hold(piece);
        this.#inputArrived.wake();
      },
      frame: (frame) => {
        if (this.#endReason !== null) {
          // After E only a last acknowledgement (or C) of a closed destination counts.
          if (this.#endReason !== "destination-closed" || !this.#host.isCurrent(this)) return;
          if (frame.type === "A" && frame.offset <= this.#position) this.#acknowledge(frame.offset);
          else if (frame.type === "C") this.#host.close(`closed by client ${this.peer}`);
          return;
        }
        if (frame.type === "A") {
          if (frame.offset > this.#position) {
            throw new FrameError(
              `A ${frame.offset} is beyond the ${this.#position} bytes sent on this connection`,
            );
          }
          this.#acknowledge(frame.offset);
        } else if (frame.type === "C") {
          this.#host.close(`closed by client ${this.peer}`);
        }
      },
    };
  }

  /**
   * A `D` frame's header: its payload is judged against the window before
   * any of it is held. Once the destination has closed (or after `E`, or a
   * takeover), input is dropped unjudged and uncounted.
   */
  #dataStart(length: number): void {
    const host = this.#host;
    this.#dropping = this.#endReason !== null || host.state === "closed" || !host.isCurrent(this);
    if (this.#dropping) return;
    this.#received += length;
    if (this.#received - this.#toldIn > this.#window) {
      throw new FrameError(
        `input ${
          this.#received - this.#toldIn
        } bytes beyond the latest count ${this.#toldIn}, window ${this.#window}`,
      );
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
   * The input writer: one destination write at a time, of the oldest held
   * payload as it is, or of the small ones held together, then an `I` for
   * it. The receiver goes on reading meanwhile.
   */
  async #writeInput(): Promise<void> {
    const host = this.#host;
    const held = this.#held;
    while (!this.#gone && this.#endReason === null) {
      const bytes = held.take();
      if (bytes === null) {
        await this.#inputArrived.wait();
        continue;
      }
      // Checked right before forwarding: input held for an attachment
      // that another has replaced is dropped, never counted.
      if (!host.isCurrent(this)) {
        held.written();
        break;
      }
      const writing = host.forward(bytes);
      // The session writes all input counted before this in order first, so
      // once this write is done, everything up to here is at the destination.
      const total = host.inputBytes;
      await writing;
      // Only now may the buffer under `bytes` be read into again.
      held.written();
      // A failed write closes the destination: what it did not take is not confirmed.
      if (host.state === "open") this.#written = total;
      host.wake();
    }
    held.clear();
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

/** The first read chunk: small, so that a quiet connection costs little. */
const FIRST_CHUNK = 16 * 1024;

/**
 * The largest read chunk. A chunk is read into until less than half of it
 * is free, so a read of a flood has at least 256 KiB, as version 1's have.
 */
const MAX_CHUNK = 512 * 1024;

/** Held payloads below this are copied together into one destination write; larger ones go as they are. */
const GATHER_BELOW = 32 * 1024;

/** The most one write of small payloads copied together takes. */
const GATHER_BYTES = 128 * 1024;

/** Chunks kept for reuse once all their input is written, beyond what a window of input fills. */
const SPARE_CHUNKS = 2;

/** A read of less than this, with no input held, finds the connection quiet: the spare chunks go. */
const QUIET_READ = 4 * 1024;

/** A buffer the client is read into: `bytes[0, end)` is read; `held` of those bytes wait for the destination. */
interface ReadChunk {
  bytes: Uint8Array;
  end: number;
  held: number;
  /** No longer read into: reused (or dropped) once `held` is 0. */
  retired: boolean;
}

/** Held input: a view of a chunk (or of a copy, or of the hello's leftover: `chunk` is `null`). */
interface Piece {
  bytes: Uint8Array;
  chunk: ReadChunk | null;
}

/**
 * Input read from the client and not yet written to the destination, in
 * order, and the chunks it is read into. `D` payloads stay where the read
 * put them (pieces of a chunk, between the frame headers), so input is
 * copied once end to end, by the kernel, as in version 1; a chunk is read
 * into again only once all its input is written.
 *
 * How much is held is the window's business (the receiver refuses input
 * beyond it). What it costs in chunks is bounded here: when the chunks kept
 * for their input (a few bytes of input each, say, between many `A`
 * frames) come to more than twice the window and two chunks, the input they
 * hold is copied out together, and they are let go.
 */
class HeldInput {
  /** The size of chunks kept for input, beyond which the held input is copied out. */
  readonly #pinLimit: number;
  /**
   * How many chunks are kept for reuse: as many as a window of input fills
   * (a flood into a slower destination cycles through them, and a fresh
   * array costs more than the copy it saves), let go once the connection is quiet.
   */
  readonly #spareLimit: number;
  /** The size of the next chunk: doubles, up to {@linkcode MAX_CHUNK}, while reads fill what they are given. */
  #size = FIRST_CHUNK;
  #current: ReadChunk = { bytes: new Uint8Array(FIRST_CHUNK), end: 0, held: 0, retired: false };
  /** Where the bytes given to {@linkcode HeldInput.hold} lie: the current chunk, or `null` (the leftover). */
  #source: ReadChunk | null = null;
  /** Bytes of the retired chunks that still hold input. */
  #pinned = 0;
  #spare: Uint8Array[] = [];
  #queue: Piece[] = [];
  #head = 0;
  /** The pieces of the write in flight, released once it is done. */
  #writing: Piece[] = [];
  #gathered: Uint8Array | null = null;

  /** @param window The input window. */
  constructor(window: number) {
    this.#pinLimit = 2 * window + 2 * MAX_CHUNK;
    this.#spareLimit = Math.ceil(window / MAX_CHUNK) + SPARE_CHUNKS;
  }

  /** The bytes given to {@linkcode HeldInput.hold} next are the hello's leftover, never read into again. */
  readFromLeftover(): void {
    this.#source = null;
  }

  /**
   * Where the next read goes: the free part of the current chunk, from its
   * start when all its input is written; a new chunk once less than half
   * of it is free, or it has been outgrown.
   */
  room(): Uint8Array {
    let chunk = this.#current;
    if (chunk.bytes.length < this.#size) {
      this.#retire(chunk);
      chunk = this.#current = this.#fresh();
    } else if (chunk.held === 0) {
      chunk.end = 0;
    } else if (chunk.bytes.length - chunk.end < chunk.bytes.length / 2) {
      this.#retire(chunk);
      chunk = this.#current = this.#fresh();
    }
    this.#source = chunk;
    return chunk.bytes.subarray(chunk.end);
  }

  /**
   * `count` bytes were read into {@linkcode HeldInput.room}.
   *
   * @returns Them, to decode.
   */
  filled(count: number): Uint8Array {
    const chunk = this.#current;
    const start = chunk.end;
    // A read that fills all it was given asks for larger chunks.
    if (count === chunk.bytes.length - start && this.#size < MAX_CHUNK) this.#size *= 2;
    if (count < QUIET_READ && chunk.held === 0 && this.#pinned === 0) this.#spare.length = 0;
    chunk.end += count;
    return chunk.bytes.subarray(start, chunk.end);
  }

  /** Holds `piece`, a view of the bytes last read (or of the leftover), after the input held already. */
  hold(piece: Uint8Array): void {
    const chunk = this.#source;
    const last = this.#queue.length > this.#head ? this.#queue.at(-1) : undefined;
    if (chunk) chunk.held += piece.length;
    if (
      chunk && last?.chunk === chunk &&
      last.bytes.byteOffset + last.bytes.length === piece.byteOffset
    ) {
      // The rest of a payload whose start the previous read brought.
      last.bytes = new Uint8Array(
        piece.buffer,
        last.bytes.byteOffset,
        last.bytes.length + piece.length,
      );
    } else {
      this.#queue.push({ bytes: piece, chunk });
    }
  }

  /**
   * The next write: the oldest held piece as it is, or, when it is small,
   * it and the small pieces after it copied together. Its bytes stay
   * unchanged until {@linkcode HeldInput.written}.
   *
   * @returns The bytes, or `null` when nothing is held.
   */
  take(): Uint8Array | null {
    const queue = this.#queue;
    const first = queue[this.#head];
    if (!first) return null;
    const next = queue[this.#head + 1];
    if (first.bytes.length >= GATHER_BELOW || !next || next.bytes.length >= GATHER_BELOW) {
      this.#head++;
      this.#writing.push(first);
      this.#trim();
      return first.bytes;
    }
    const gathered = this.#gathered ??= new Uint8Array(GATHER_BYTES);
    let length = 0;
    for (let piece: Piece | undefined = first; piece && piece.bytes.length < GATHER_BELOW;) {
      if (length + piece.bytes.length > GATHER_BYTES) break;
      gathered.set(piece.bytes, length);
      length += piece.bytes.length;
      // Copied: its chunk need not wait for the write.
      this.#release(piece);
      piece = queue[++this.#head];
    }
    this.#trim();
    return gathered.subarray(0, length);
  }

  /** The bytes {@linkcode HeldInput.take} gave last are written: their chunks may be read into again. */
  written(): void {
    for (const piece of this.#writing) this.#release(piece);
    this.#writing.length = 0;
  }

  /** Drops all held input, and the spare buffers. */
  clear(): void {
    for (let at = this.#head; at < this.#queue.length; at++) {
      const piece = this.#queue[at];
      if (piece) this.#release(piece);
    }
    this.#queue = [];
    this.#head = 0;
    this.#spare = [];
    this.#gathered = null;
  }

  #release(piece: Piece): void {
    const chunk = piece.chunk;
    if (!chunk) return;
    chunk.held -= piece.bytes.length;
    if (chunk.held > 0 || !chunk.retired) return;
    this.#pinned -= chunk.bytes.length;
    this.#recycle(chunk.bytes);
  }

  #retire(chunk: ReadChunk): void {
    chunk.retired = true;
    if (chunk.held === 0) {
      this.#recycle(chunk.bytes);
      return;
    }
    this.#pinned += chunk.bytes.length;
    if (this.#pinned > this.#pinLimit) this.#copyOut();
  }

  /** Copies the held input of retired chunks into one array, so that they can go. */
  #copyOut(): void {
    const queue = this.#queue;
    let total = 0;
    for (let at = this.#head; at < queue.length; at++) {
      const piece = queue[at];
      if (piece?.chunk?.retired) total += piece.bytes.length;
    }
    const copy = new Uint8Array(total);
    let offset = 0;
    for (let at = this.#head; at < queue.length; at++) {
      const piece = queue[at];
      if (!piece?.chunk?.retired) continue;
      copy.set(piece.bytes, offset);
      this.#release(piece);
      queue[at] = { bytes: copy.subarray(offset, offset + piece.bytes.length), chunk: null };
      offset += piece.bytes.length;
    }
  }

  #fresh(): ReadChunk {
    const spare = this.#spare.pop();
    const bytes = spare?.length === this.#size ? spare : new Uint8Array(this.#size);
    return { bytes, end: 0, held: 0, retired: false };
  }

  #recycle(bytes: Uint8Array): void {
    if (bytes.length === this.#size && this.#spare.length < this.#spareLimit) {
      this.#spare.push(bytes);
    }
  }

  /** Forgets the pieces taken, now and then, so that the queue does not grow. */
  #trim(): void {
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
  }
}
