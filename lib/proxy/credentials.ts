/**
 * Session ids and secrets: random, URL-safe, and compared in constant time.
 *
 * @module
 */

/** Random bytes in a session id: 96 bits, 16 characters. */
const ID_BYTES = 12;

/** Random bytes in a secret: 192 bits, 32 characters. */
const SECRET_BYTES = 24;

function randomToken(bytes: number): string {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  let binary = "";
  for (const byte of raw) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * Creates an unguessable session id: 16 characters of `[A-Za-z0-9_-]`,
 * never starting with `-`.
 *
 * @returns A new id.
 */
export function newSessionId(): string {
  // An id starting with "-" would read as an option on command lines (socketproxy close ID).
  let id = randomToken(ID_BYTES);
  while (id.startsWith("-")) id = randomToken(ID_BYTES);
  return id;
}

/**
 * Creates a session secret: 192 bits from `crypto.getRandomValues`, as 32
 * characters of `[A-Za-z0-9_-]`.
 *
 * @returns A new secret.
 */
export function newSecret(): string {
  return randomToken(SECRET_BYTES);
}

/**
 * Compares two ASCII secrets in time that depends only on their lengths,
 * never on where they differ.
 *
 * @param actual The secret the server holds.
 * @param offered The secret a client presented.
 * @returns Whether they are equal.
 *
 * @example
 * ```ts
 * import { newSecret, secretsEqual } from "./credentials.ts";
 *
 * const secret = newSecret();
 * console.assert(secretsEqual(secret, secret) && !secretsEqual(secret, newSecret()));
 * ```
 */
export function secretsEqual(actual: string, offered: string): boolean {
  let difference = actual.length ^ offered.length;
  for (let i = 0; i < actual.length; i++) {
    difference |= actual.charCodeAt(i) ^ offered.charCodeAt(i % Math.max(offered.length, 1));
  }
  return difference === 0;
}
