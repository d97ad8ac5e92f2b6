/**
 * The output buffer of one session: the destination's bytes, addressed by
 * their offset in the session's whole output, from the oldest a client may
 * still resume from (`floor`) to the newest read (`end`).
 *
 * It is a ring that the destination reader reads into directly and that
 * client writers send from directly, so output is copied once on its way
 * through the server: by the kernel, into the ring. The ring starts small
 * and grows, up to the per-session `limit`, as output accumulates.
 *
 * Retention follows the protocol: bytes no client has been sent are never
 * released; bytes sent in streaming mode are released, oldest first, only
 * when room is needed; bytes from an acknowledged client's `<ack>` on stay
 * until a later hello acknowledges them. When nothing can be released the
 * buffer is full, {@linkcode OutputBuffer.reserve} returns `null`, and the
 * session stops reading the destination.
 *
 * @module
 */

/**
 * Size of the first allocation: what an idle session's outstanding
 * destination read holds, so small. A read that fills the storage makes
 * the next reserve double it, so output soon meets large reads.
 */
const INITIAL_CAPACITY = 256;

/**
 * The most room a read should find before older output is released. The
 * destination is read through `node:net` (./tcp.ts), where each read costs
 * a turn of the event loop, so fewer and larger reads relay faster and
 * for less CPU per byte (docs/performance.md, "Reads of 512 KiB").
 */
const READ_CHUNK = 512 * 1024;

const EMPTY = new Uint8Array(0);

/**
 * Retained output of one session, with offsets over its whole life.
 *
 * Only the destination reader may call {@linkcode OutputBuffer.reserve} and
 * {@linkcode OutputBuffer.commit}; between the two its read is in flight into
 * the reserved region, and nothing else moves that region.
 *
 * @example Read into the buffer and send from it
 * ```ts
 * import { OutputBuffer } from "./output_buffer.ts";
 *
 * const buffer = new OutputBuffer(64 * 1024);
 * const region = buffer.reserve()!; // a destination read fills this
 * region.set([104, 105]);
 * buffer.commit(2);
 * const view = buffer.view(0); // a client write sends this
 * console.assert(view.length === 2 && buffer.end === 2);
 * ```
 */
export class OutputBuffer {
  /** Most bytes retained at once. */
  readonly limit: number;
  #storage: Uint8Array = EMPTY;
  /** Index in `#storage` of the byte at offset `#floor`. */
  #head = 0;
  #floor = 0;
  #end = 0;
  #sent = 0;
  /** Bytes below this offset may be released when room is needed. */
  #releasable = 0;

  /**
   * Creates an empty buffer; storage is allocated on the first reserve.
   *
   * @param limit Most bytes retained at once; at least 1.
   */
  constructor(limit: number) {
    if (!(Number.isSafeInteger(limit) && limit >= 1)) {
      throw new RangeError(`Buffer limit must be a positive integer: got ${limit}`);
    }
    this.limit = limit;
  }

  /** Offset of the oldest retained byte: the lowest a client may resume from. */
  get floor(): number {
    return this.#floor;
  }

  /** Offset after the newest byte: the total output read so far. */
  get end(): number {
    return this.#end;
  }

  /** The highest offset ever delivered to a client. */
  get sent(): number {
    return this.#sent;
  }

  /** Bytes retained now. */
  get retained(): number {
    return this.#end - this.#floor;
  }

  /** Bytes of storage allocated now. */
  get capacity(): number {
    return this.#storage.length;
  }

  /**
   * Records that a client has been sent the output before `offset`.
   *
   * @param offset End of the bytes written to a client.
   */
  markSent(offset: number): void {
    if (offset > this.#sent) this.#sent = offset;
  }

  /**
   * Lets output before `offset` be released when room is needed (streaming
   * delivery). The bound never goes below `floor` nor above what was sent.
   *
   * @param offset Offset up to which output may be released.
   */
  allowRelease(offset: number): void {
    this.#releasable = Math.max(this.#floor, Math.min(offset, this.#sent));
  }

  /**
   * Releases output before `offset` now, and keeps everything from `offset`
   * on until a later acknowledgement (acknowledged delivery).
   *
   * @param offset The client's `<ack>`, from `floor` to `sent`.
   * @throws {RangeError} When `offset` is outside that range.
   */
  acknowledge(offset: number): void {
    if (!(offset >= this.#floor && offset <= this.#sent)) {
      throw new RangeError(
        `Cannot acknowledge offset ${offset}: outside ${this.#floor}..${this.#sent}`,
      );
    }
    this.#release(offset - this.#floor);
    this.#releasable = offset;
  }

  /**
   * Finds room for the next destination read, growing the storage or
   * releasing releasable output as needed.
   *
   * @returns A free region to read into, or `null` when the buffer is full.
   */
  reserve(): Uint8Array | null {
    let capacity = this.#storage.length;
    let used = this.#end - this.#floor;
    // Only here, with no read in flight, may the ring be rearranged.
    if (used === 0) this.#head = 0;
    // Grow before releasing anything, so that streaming delivery retains as
    // much recent output as the limit allows.
    if (capacity < this.limit && used >= capacity / 2) {
      this.#resize(Math.min(this.limit, Math.max(INITIAL_CAPACITY, capacity * 2)));
      capacity = this.#storage.length;
    }
    // Release a slice at a time (a quarter: an eighth of the default 1 MiB
    // made reads of 128 KiB), so a small buffer still retains most of what it sent.
    const wanted = Math.min(READ_CHUNK, Math.max(1, Math.floor(capacity / 4)));
    if (capacity === this.limit && capacity - used < wanted && this.#releasable > this.#floor) {
      this.#release(Math.min(this.#releasable - this.#floor, wanted - (capacity - used)));
      used = this.#end - this.#floor;
    }
    if (used === capacity) return null;
    const tail = (this.#head + used) % capacity;
    const stop = tail < this.#head ? this.#head : capacity;
    // All of it free: no view of its own for the read an idle session keeps waiting.
    if (tail === 0 && stop === capacity) return this.#storage;
    return this.#storage.subarray(tail, stop);
  }

  /**
   * Adds `count` bytes that a read placed at the start of the last reserved region.
   *
   * @param count Bytes read.
   */
  commit(count: number): void {
    this.#end += count;
  }

  /**
   * Returns the retained output from `offset` on, as one contiguous view
   * (the ring may split it: call again from the view's end for the rest).
   *
   * @param offset From `floor` to `end`.
   * @returns A view into the buffer; empty at `end`.
   */
  view(offset: number): Uint8Array {
    if (!(offset >= this.#floor && offset <= this.#end)) {
      throw new RangeError(
        `Offset ${offset} is not retained: outside ${this.#floor}..${this.#end}`,
      );
    }
    if (offset === this.#end) return EMPTY;
    const capacity = this.#storage.length;
    const start = (this.#head + offset - this.#floor) % capacity;
    return this.#storage.subarray(start, start + Math.min(this.#end - offset, capacity - start));
  }

  /** Frees the buffer's storage for good; the session is over. */
  dispose(): void {
    this.#floor = this.#end;
    this.#storage = EMPTY;
    this.#head = 0;
  }

  #release(count: number): void {
    if (count <= 0) return;
    this.#floor += count;
    this.#head = (this.#head + count) % this.#storage.length;
  }

  #resize(capacity: number): void {
    const used = this.#end - this.#floor;
    const next = new Uint8Array(capacity);
    if (used > 0) {
      const first = this.view(this.#floor);
      next.set(first);
      if (first.length < used) {
        next.set(this.#storage.subarray(0, used - first.length), first.length);
      }
    }
    this.#storage = next;
    this.#head = 0;
  }
}
