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

/** A node name (`server --node`): 1 to 24 of `[A-Za-z0-9-]`, so that `NAME_` cannot be part of the random part. */
export const NODE_PATTERN: RegExp = /^[A-Za-z0-9-]{1,24}$/;

/**
 * Creates an unguessable session id: 16 characters of `[A-Za-z0-9_-]`,
 * never starting with `-`; with a node name, `NODE_` before them (at most
 * 41 characters), so that a router can tell the node from the id alone.
 *
 * @param node The server's node name, or none.
 * @returns A new id.
 */
export function newSessionId(node?: string | null): string {
  // An id starting with "-" would read as an option on command lines (socketproxy close ID).
  let id = randomToken(ID_BYTES);
  while (id.startsWith("-")) id = randomToken(ID_BYTES);
  return node ? `${node}_${id}` : id;
}

/**
 * The node a session id names (`NODE_<random>`), or `null` for an id without one.
 *
 * @param id A session id.
 * @returns The node name.
 *
 * @example
 * ```ts
 * import { nodeOf } from "./credentials.ts";
 *
 * console.assert(nodeOf("eu-1_q3Zx0b9XkP2Lm7Rt") === "eu-1");
 * console.assert(nodeOf("q3Zx0b9XkP2Lm7Rt") === null);
 * ```
 */
export function nodeOf(id: string): string | null {
  const underscore = id.indexOf("_");
  const node = underscore < 0 ? "" : id.slice(0, underscore);
  return NODE_PATTERN.test(node) && id.length - underscore - 1 === 16 ? node : null;
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
