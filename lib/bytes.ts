/**
 * Joining bytes: the one helper for it, free of Deno APIs so that the
 * browser page, the tests and the server all use it.
 *
 * @module
 */

const EMPTY = new Uint8Array(0);

/**
 * Joins byte arrays into one. A single part is returned as it is, not copied.
 *
 * @param parts The arrays, in order.
 * @returns Their bytes, one after another.
 *
 * @example
 * ```ts
 * import { concatBytes } from "./bytes.ts";
 *
 * const joined = concatBytes([new Uint8Array([1, 2]), new Uint8Array([3])]);
 * console.assert(joined.join() === "1,2,3");
 * ```
 */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] ?? EMPTY;
  let total = 0;
  for (const part of parts) total += part.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
