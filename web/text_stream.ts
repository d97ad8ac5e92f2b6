/**
 * Display bytes to terminal text, in the destination's charset, as a
 * stream whose state is plain data: a UTF-8 character split between two
 * chunks comes out whole with the second, and the bytes held back between
 * them (`carry`) are saved with the screen, so that a reload in between
 * loses nothing.
 *
 * @module
 */

import { decodeText, type TelnetCharset } from "./telnet.ts";

/**
 * How many bytes at the end of `bytes` begin a UTF-8 character that is not
 * complete yet (0 to 3).
 */
function incompleteTail(bytes: Uint8Array): number {
  const end = bytes.length;
  for (let back = 1; back <= Math.min(3, end); back++) {
    const byte = bytes[end - back] ?? 0;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return length > back ? back : 0;
  }
  return 0;
}

/**
 * A decoder for one session's display bytes.
 *
 * @example
 * ```ts
 * import { TextStream } from "./text_stream.ts";
 *
 * const stream = new TextStream("utf-8");
 * const check = Uint8Array.of(0xe2, 0x9c, 0x93); // ✓
 * console.assert(stream.decode(check.subarray(0, 1)) === "");
 * console.assert(stream.carry.length === 1);
 * console.assert(stream.decode(check.subarray(1)) === "✓");
 * ```
 */
export class TextStream {
  /** The charset bytes are decoded in. */
  charset: TelnetCharset;
  #carry: Uint8Array = new Uint8Array(0);

  /** @param charset The charset to start in. */
  constructor(charset: TelnetCharset) {
    this.charset = charset;
  }

  /** The start of a UTF-8 character held back for the next chunk, as plain numbers. */
  get carry(): number[] {
    return Array.from(this.#carry);
  }

  /** Brings back held-back bytes (from {@linkcode TextStream.carry}); at most 3 are kept. */
  set carry(bytes: readonly number[]) {
    this.#carry = Uint8Array.from(bytes.slice(-3), (byte) => byte & 0xff);
  }

  /**
   * Decodes the next display bytes.
   *
   * @param bytes The bytes, in stream order.
   * @returns Their text; a character not complete yet comes with the next call.
   */
  decode(bytes: Uint8Array): string {
    if (this.charset !== "utf-8") {
      const held = this.#carry;
      this.#carry = new Uint8Array(0);
      // Bytes held back under UTF-8 before a switch are shown as they are.
      return (held.length > 0 ? decodeText(held, "utf-8") : "") + decodeText(bytes, this.charset);
    }
    let all = bytes;
    if (this.#carry.length > 0) {
      all = new Uint8Array(this.#carry.length + bytes.length);
      all.set(this.#carry);
      all.set(bytes, this.#carry.length);
    }
    const keep = incompleteTail(all);
    this.#carry = all.slice(all.length - keep);
    return decodeText(all.subarray(0, all.length - keep), "utf-8");
  }
}
