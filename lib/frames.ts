/**
 * The frames of version 2 of the wire protocol (framed attachments): their
 * types and limits, the end reasons, encoding, and an incremental reader.
 * After a framed hello's reply line, both directions carry nothing but
 * frames: 1 byte of type, a 4-byte big-endian payload length, the payload.
 * The server (`lib/proxy/framed_attachment.ts`) and clients share this
 * file, so the two cannot drift apart. See docs/protocol.md.
 *
 * @module
 */

/** Bytes of a frame header: the type, then the payload length. */
export const FRAME_HEADER_BYTES = 5;

/** Largest `D` (data) payload, in bytes. */
export const MAX_DATA_PAYLOAD = 262_144;

/** Largest `E` reason, in bytes. */
export const MAX_END_REASON_BYTES = 64;

/** The frame types: data, acknowledgement, input count, end, close. */
export type FrameType = "D" | "A" | "I" | "E" | "C";

/** Which way frames go: `to-server` (from a client) or `to-client` (from the server). */
export type FrameDirection = "to-server" | "to-client";

/** Why the server ends a framed connection, as its `E` frame says. */
export type EndReason =
  | "taken-over"
  | "destination-closed"
  | "closed"
  | "server-stopping"
  | "protocol-error";

/** Every {@linkcode EndReason}, in the order of the protocol's table. */
export const END_REASONS: readonly EndReason[] = [
  "taken-over",
  "destination-closed",
  "closed",
  "server-stopping",
  "protocol-error",
];

/**
 * A decoded frame. A `D` payload read by {@linkcode FrameReader} is a view,
 * valid until the next read (for good once {@linkcode FrameReader.keep}
 * leaves its buffer to the caller); read in pieces (`dataInPieces`), a
 * frame's first piece has its whole payload's `length` (and may be empty),
 * the pieces that follow have none.
 */
export type Frame =
  | { type: "D"; payload: Uint8Array; length?: number }
  | { type: "A"; offset: number }
  | { type: "I"; count: number }
  | { type: "E"; in: number; sent: number; reason: string }
  | { type: "C" };

/** The types each direction may carry. */
const TYPES: Readonly<Record<FrameDirection, readonly number[]>> = {
  "to-server": [0x44, 0x41, 0x43], // D A C
  "to-client": [0x44, 0x49, 0x45], // D I E
};

const D = 0x44;
const A = 0x41;
const I = 0x49;
const E = 0x45;
const C = 0x43;
const TWO_TO_32 = 2 ** 32;
/** The high 32 bits of an integer below 2^53. */
const MAX_HIGH = 2 ** 21;
const PRINTABLE = /^[\x20-\x7e]+$/;

/**
 * A malformed frame, or a connection that ended inside one.
 *
 * @example
 * ```ts
 * import { FrameError } from "./frames.ts";
 *
 * const error = new FrameError("Unknown frame type 0x5a");
 * console.assert(!error.truncated);
 * ```
 */
export class FrameError extends Error {
  /** The connection ended in the middle of a frame (nothing malformed was read). */
  readonly truncated: boolean;

  /**
   * Creates a frame error.
   *
   * @param message What is wrong, for logs and the peer's log.
   * @param truncated Whether the stream ended inside a frame.
   */
  constructor(message: string, truncated = false) {
    super(message);
    this.name = "FrameError";
    this.truncated = truncated;
  }
}

/**
 * Judges a frame header alone: the type for the direction, the length for the type.
 *
 * @param type The type byte.
 * @param length The payload length the header announces.
 * @param direction Which way the frame goes.
 * @throws {FrameError} When the type is unknown or goes the other way, or the
 * length is over the type's limit or not the type's size.
 */
export function checkFrameHeader(type: number, length: number, direction: FrameDirection): void {
  if (!TYPES[direction].includes(type)) {
    const known = [D, A, I, E, C].includes(type);
    throw new FrameError(
      known
        ? `Frame type ${String.fromCharCode(type)} is not sent ${direction.replace("-", " ")}`
        : `Unknown frame type 0x${type.toString(16).padStart(2, "0")}`,
    );
  }
  const name = String.fromCharCode(type);
  const ok = type === D
    ? length >= 1 && length <= MAX_DATA_PAYLOAD
    : type === A || type === I
    ? length === 8
    : type === E
    ? length >= 17 && length <= 16 + MAX_END_REASON_BYTES
    : length === 0;
  if (!ok) throw new FrameError(`Frame ${name} cannot have a payload of ${length} bytes`);
}

/**
 * The size of a frame once encoded, header included.
 *
 * @param frame The frame.
 * @returns Its bytes on the wire.
 */
export function frameSize(frame: Frame): number {
  switch (frame.type) {
    case "D":
      return FRAME_HEADER_BYTES + frame.payload.length;
    case "A":
    case "I":
      return FRAME_HEADER_BYTES + 8;
    case "E":
      return FRAME_HEADER_BYTES + 16 + frame.reason.length;
    case "C":
      return FRAME_HEADER_BYTES;
  }
}

/**
 * Writes a frame header into `target` at `at`.
 *
 * @param target Where to write.
 * @param at The offset of the header in `target`.
 * @param type The frame type.
 * @param length The payload length.
 */
export function putFrameHeader(
  target: Uint8Array,
  at: number,
  type: FrameType,
  length: number,
): void {
  target[at] = type.charCodeAt(0);
  new DataView(target.buffer, target.byteOffset + at + 1, 4).setUint32(0, length);
}

/**
 * Encodes a frame into `target` at `at` (a `D` payload is copied there).
 *
 * @param target Where to write; needs {@linkcode frameSize} bytes from `at`.
 * @param at The offset of the frame in `target`.
 * @param frame The frame.
 * @returns The bytes written.
 * @throws {RangeError} For an integer not below 2^53, or an `E` reason that is
 * not 1 to 64 bytes of printable ASCII.
 */
export function encodeFrameInto(target: Uint8Array, at: number, frame: Frame): number {
  const size = frameSize(frame);
  putFrameHeader(target, at, frame.type, size - FRAME_HEADER_BYTES);
  const body = at + FRAME_HEADER_BYTES;
  switch (frame.type) {
    case "D":
      target.set(frame.payload, body);
      break;
    case "A":
      putUint64(target, body, frame.offset);
      break;
    case "I":
      putUint64(target, body, frame.count);
      break;
    case "E":
      if (frame.reason.length > MAX_END_REASON_BYTES || !PRINTABLE.test(frame.reason)) {
        throw new RangeError(`Invalid end reason "${frame.reason.slice(0, 80)}"`);
      }
      putUint64(target, body, frame.in);
      putUint64(target, body + 8, frame.sent);
      for (let i = 0; i < frame.reason.length; i++) {
        target[body + 16 + i] = frame.reason.charCodeAt(i);
      }
      break;
    case "C":
      break;
  }
  return size;
}

/**
 * Encodes a frame as a new array.
 *
 * @param frame The frame.
 * @returns Its bytes on the wire.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "./frames.ts";
 *
 * const ack = encodeFrame({ type: "A", offset: 258 });
 * console.assert(ack.join() === "65,0,0,0,8,0,0,0,0,0,0,1,2");
 * ```
 */
export function encodeFrame(frame: Frame): Uint8Array {
  const bytes = new Uint8Array(frameSize(frame));
  encodeFrameInto(bytes, 0, frame);
  return bytes;
}

function putUint64(target: Uint8Array, at: number, value: number): void {
  if (!(Number.isSafeInteger(value) && value >= 0)) {
    throw new RangeError(`Cannot encode ${value} as a frame integer`);
  }
  const view = new DataView(target.buffer, target.byteOffset + at, 8);
  view.setUint32(0, Math.floor(value / TWO_TO_32));
  view.setUint32(4, value >>> 0);
}

function getUint64(bytes: Uint8Array, at: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, 8);
  const high = view.getUint32(0);
  if (high >= MAX_HIGH) throw new FrameError("Frame integer is not below 2^53");
  return high * TWO_TO_32 + view.getUint32(4);
}

/** Decodes a payload whose header {@linkcode checkFrameHeader} accepted. */
function decodeFrame(type: number, payload: Uint8Array): Frame {
  switch (type) {
    case D:
      return { type: "D", payload };
    case A:
      return { type: "A", offset: getUint64(payload, 0) };
    case I:
      return { type: "I", count: getUint64(payload, 0) };
    case E: {
      const reason = String.fromCharCode(...payload.subarray(16));
      if (!PRINTABLE.test(reason)) throw new FrameError("End reason is not printable ASCII");
      return { type: "E", in: getUint64(payload, 0), sent: getUint64(payload, 8), reason };
    }
    default:
      return { type: "C" };
  }
}

/** What a {@linkcode FrameReader} reads from: a `Deno.Conn`, or anything with its `read`. */
export interface FrameSource {
  /** Reads into `buffer`; the count read, or `null` at the end of the stream. */
  read(buffer: Uint8Array): Promise<number | null>;
}

/** Options for {@linkcode FrameReader}. */
export interface FrameReaderOptions {
  /** Which way the frames go: decides which types are valid. */
  direction: FrameDirection;
  /**
   * Bytes already read from the source (after the hello or reply line).
   * @default {none}
   */
  leftover?: Uint8Array;
  /**
   * Whether a `D` payload comes in pieces, as its bytes arrive: a first
   * `D` with the frame's `length` as soon as its header is in (with what of
   * the payload came along, maybe nothing), then `D`s without one, each the
   * next piece, instead of one once the whole payload is in. For a reader
   * that only moves data on: the buffer never has to hold a whole frame, so
   * reads are never cut short and nothing is moved within it.
   * @default {false}
   */
  dataInPieces?: boolean;
  /**
   * Where the reader goes on after {@linkcode FrameReader.keep}: a buffer
   * of at least `size` bytes to read into. One that is shorter is not used.
   * @default {a new buffer}
   */
  nextBuffer?: (size: number) => Uint8Array | null;
  /**
   * The largest buffer reads go into: they grow to it while they fill the
   * one there is. Less than one largest frame counts as one. Larger suits
   * a source whose every read costs much beside the bytes it brings.
   * @default {@linkcode LARGEST_FRAME_BYTES}
   */
  largestBuffer?: number;
}

/** The reader's first buffer: small, so that a quiet connection costs little. */
const FIRST_READ = 16 * 1024;
/** Bytes of one largest `D` frame, header and payload: the reader's largest buffer by default. */
export const LARGEST_FRAME_BYTES = FRAME_HEADER_BYTES + MAX_DATA_PAYLOAD;

/**
 * Reads frames from a stream, one at a time, over one reused buffer (or,
 * each time the caller keeps it, the next from `nextBuffer`). Each header
 * is judged as soon as its 5 bytes are in, before any of its payload is
 * waited for, so an oversized frame is never buffered.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameReader } from "./frames.ts";
 *
 * const bytes = encodeFrame({ type: "A", offset: 7 });
 * let given = false;
 * const source = {
 *   read(buffer: Uint8Array): Promise<number | null> {
 *     if (given) return Promise.resolve(null);
 *     given = true;
 *     buffer.set(bytes);
 *     return Promise.resolve(bytes.length);
 *   },
 * };
 * const reader = new FrameReader(source, { direction: "to-server" });
 * const frame = await reader.next();
 * console.assert(frame?.type === "A" && frame.offset === 7);
 * console.assert(await reader.next() === null);
 * ```
 */
export class FrameReader {
  readonly #source: FrameSource;
  readonly #direction: FrameDirection;
  #buffer: Uint8Array;
  #start = 0;
  #end = 0;
  readonly #pieces: boolean;
  /** Payload bytes of the current `D` frame not returned yet (with `dataInPieces`). */
  #dataLeft = 0;
  /** The caller keeps the buffer: the next read goes into another. */
  #kept = false;
  readonly #nextBuffer: ((size: number) => Uint8Array | null) | undefined;
  readonly #largest: number;

  /**
   * Creates a reader over `source`.
   *
   * @param source The stream.
   * @param options The direction, and bytes already read.
   */
  constructor(source: FrameSource, options: FrameReaderOptions) {
    this.#source = source;
    this.#direction = options.direction;
    this.#pieces = options.dataInPieces ?? false;
    this.#nextBuffer = options.nextBuffer;
    this.#largest = Math.max(LARGEST_FRAME_BYTES, options.largestBuffer ?? 0);
    const leftover = options.leftover ?? new Uint8Array(0);
    this.#buffer = new Uint8Array(Math.max(FIRST_READ, leftover.length));
    this.#buffer.set(leftover);
    this.#end = leftover.length;
  }

  /** Bytes read from the source and not yet returned as frames (a frame begun among them). */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /**
   * Reads the next frame.
   *
   * @returns The frame (a `D` payload is a view, valid until the next call
   * unless its buffer is kept),
   * or `null` when the stream ends between frames.
   * @throws {FrameError} For a malformed frame, judged from its header
   * before its payload is read, or (`truncated`) when the stream ends inside a frame.
   */
  async next(): Promise<Frame | null> {
    while (true) {
      let need = FRAME_HEADER_BYTES;
      if (this.#dataLeft > 0) {
        // The rest of a D payload, in pieces: whatever of it is in.
        const count = Math.min(this.buffered, this.#dataLeft);
        if (count > 0) {
          const piece = this.#buffer.subarray(this.#start, this.#start + count);
          this.#start += count;
          this.#dataLeft -= count;
          return { type: "D", payload: piece };
        }
        need = 1;
      } else if (this.buffered >= FRAME_HEADER_BYTES) {
        const buffer = this.#buffer;
        const type = buffer[this.#start] ?? 0;
        const length = this.#headerLength();
        checkFrameHeader(type, length, this.#direction);
        if (this.#pieces && type === D) {
          // The first piece says the frame's length, before any more of it is read.
          const body = this.#start + FRAME_HEADER_BYTES;
          const count = Math.min(this.buffered - FRAME_HEADER_BYTES, length);
          this.#start = body + count;
          this.#dataLeft = length - count;
          return { type: "D", payload: buffer.subarray(body, body + count), length };
        }
        need = FRAME_HEADER_BYTES + length;
        if (this.buffered >= need) {
          const body = this.#start + FRAME_HEADER_BYTES;
          this.#start += need;
          return decodeFrame(type, buffer.subarray(body, body + length));
        }
      }
      if (this.#kept) this.#leave();
      this.#makeRoom(need);
      const count = await this.#source.read(this.#buffer.subarray(this.#end));
      if (count === null) {
        if (this.buffered === 0 && this.#dataLeft === 0) return null;
        throw new FrameError("The stream ended inside a frame", true);
      }
      this.#end += count;
      // Reads that fill the buffer ask for a bigger one, up to the largest.
      if (this.#end === this.#buffer.length && this.#buffer.length < this.#largest) {
        this.#grow(this.#buffer.length * 2);
      }
    }
  }

  /**
   * Whether the next {@linkcode FrameReader.next} returns a frame (or a
   * piece) from what is read already, without reading: `false` when it
   * would wait for the source.
   */
  get ready(): boolean {
    const buffered = this.buffered;
    if (this.#dataLeft > 0) return buffered > 0;
    if (buffered < FRAME_HEADER_BYTES) return false;
    if (this.#pieces && this.#buffer[this.#start] === D) return true;
    return buffered >= FRAME_HEADER_BYTES + this.#headerLength();
  }

  /** The length field of the frame header at `#start` (all of it read), big-endian; no view made per frame. */
  #headerLength(): number {
    const buffer = this.#buffer;
    const at = this.#start + 1;
    return (((buffer[at] ?? 0) << 24) | ((buffer[at + 1] ?? 0) << 16) |
      ((buffer[at + 2] ?? 0) << 8) | (buffer[at + 3] ?? 0)) >>> 0;
  }

  /** The size of the buffer reads go into now (it grows while reads fill it). */
  get bufferLength(): number {
    return this.#buffer.length;
  }

  /**
   * Leaves the current buffer to the caller: the `D` pieces returned from
   * it (views of it), and those still to come from what was read into it,
   * stay valid for as long as the caller keeps them. The reader moves to a
   * buffer of the same size (from `nextBuffer`) right before its next read,
   * taking along the bytes not yet returned (of a frame begun, if any), so
   * nothing it reads or moves touches the kept one.
   */
  keep(): void {
    this.#kept = true;
  }

  /** After {@linkcode FrameReader.keep}: reads go into another buffer from now on. */
  #leave(): void {
    const size = this.#buffer.length;
    const offered = this.#nextBuffer?.(size);
    const next = offered && offered.length >= size ? offered : new Uint8Array(size);
    next.set(this.#buffer.subarray(this.#start, this.#end));
    this.#end -= this.#start;
    this.#start = 0;
    this.#buffer = next;
    this.#kept = false;
  }

  /** Makes room from `#start` for `need` bytes, and for at least one more byte at the end. */
  #makeRoom(need: number): void {
    if (this.#buffer.length < need) this.#grow(Math.max(need, this.#buffer.length * 2));
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
    } else if (this.#buffer.length - this.#start < need || this.#end === this.#buffer.length) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
  }

  #grow(size: number): void {
    const next = new Uint8Array(Math.min(size, this.#largest));
    if (next.length <= this.#buffer.length) return;
    next.set(this.#buffer.subarray(this.#start, this.#end));
    this.#end -= this.#start;
    this.#start = 0;
    this.#buffer = next;
  }
}
