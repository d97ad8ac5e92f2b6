/**
 * The MUD messages the browser terminal's telnet engine carries in
 * subnegotiations: GMCP (`Package.Name <JSON>` text), MSDP (variables,
 * tables and arrays) and MSSP (server status variables). `telnet.ts`
 * collects a whole subnegotiation and hands its data here to be read;
 * {@linkcode encodeMsdp} writes the data of one the page sends.
 *
 * @module
 */

import { ARRAY_CLOSE, ARRAY_OPEN, TABLE_CLOSE, TABLE_OPEN, VAL, VAR } from "./telnet_codes.ts";
import { decodeText, encodeText, type TelnetCharset } from "./telnet_charset.ts";

/** Most MSDP tables and arrays nested in one another; a deeper message is dropped. */
const MSDP_DEPTH_LIMIT = 32;

/** A GMCP message from the server: `IAC SB GMCP <package> [<JSON>] IAC SE`. */
export interface GmcpEvent {
  /** The event's kind. */
  type: "gmcp";
  /** The package and message name as sent, such as `Char.Vitals` (GMCP matches it case-insensitively). */
  package: string;
  /** The text after the name, as UTF-8, or `""` when there is none. */
  text: string;
  /** `text` parsed as JSON, or `undefined` when it is empty or not JSON. */
  data: unknown;
}

/** An MSDP value: a string, an array of values or a table of named values. */
export type MsdpValue = string | MsdpValue[] | { [name: string]: MsdpValue };

/**
 * An MSDP subnegotiation from the server, decoded: each `MSDP_VAR` is a key;
 * one `MSDP_VAL` gives its value, several an array; tables become objects and
 * arrays arrays. Text is decoded in the charset in force.
 */
export interface MsdpEvent {
  /** The event's kind. */
  type: "msdp";
  /** The variables, by name. */
  variables: Record<string, MsdpValue>;
}

/**
 * An MSSP subnegotiation from the server: each `MSSP_VAR` with its value, or
 * its values when several `MSSP_VAL`s follow it.
 */
export interface MsspEvent {
  /** The event's kind. */
  type: "mssp";
  /** The variables, by name, such as `NAME`, `PLAYERS` and `UPTIME`. */
  variables: Record<string, string | string[]>;
}

/**
 * Reads a GMCP message: the package name up to the first space, then the
 * data (GMCP is UTF-8 text).
 *
 * @param bytes The subnegotiation's data, after the GMCP option byte.
 * @returns The message, or `undefined` for one without a name.
 *
 * @example
 * ```ts
 * import { parseGmcp } from "./telnet_messages.ts";
 *
 * const message = parseGmcp(new TextEncoder().encode('Char.Vitals {"hp":10}'));
 * console.assert(message?.package === "Char.Vitals" && message.text === '{"hp":10}');
 * ```
 */
export function parseGmcp(bytes: Uint8Array): GmcpEvent | undefined {
  const message = decodeText(bytes, "utf-8");
  const space = message.search(/[ \t\r\n]/);
  const name = space < 0 ? message : message.slice(0, space);
  if (name === "") return undefined;
  const text = space < 0 ? "" : message.slice(space + 1);
  let data: unknown = undefined;
  if (text.trim() !== "") {
    try {
      data = JSON.parse(text);
    } catch {
      // Not JSON: the page gets the text alone.
    }
  }
  return { type: "gmcp", package: name, text, data };
}

/**
 * Reads an MSDP message's variables. Stray bytes and unmatched closers are
 * skipped, and what an unclosed table or array holds is kept.
 *
 * @param bytes The subnegotiation's data, after the MSDP option byte.
 * @param charset The charset its text is in.
 * @returns The variables, or `undefined` when tables and arrays nest
 *   deeper than 32.
 *
 * @example
 * ```ts
 * import { parseMsdp } from "./telnet_messages.ts";
 *
 * // MSDP_VAR "HP" MSDP_VAL "10"
 * const variables = parseMsdp(Uint8Array.of(1, 72, 80, 2, 49, 48), "utf-8");
 * console.assert(variables?.HP === "10");
 * ```
 */
export function parseMsdp(
  bytes: Uint8Array,
  charset: TelnetCharset,
): Record<string, MsdpValue> | undefined {
  const reader = new MsdpReader(bytes, charset);
  return reader.read();
}

/** Reads MSDP's VAR, VAL, TABLE and ARRAY structure, one position at a time. */
class MsdpReader {
  #bytes: Uint8Array;
  #charset: TelnetCharset;
  #at = 0;
  #tooDeep = false;

  constructor(bytes: Uint8Array, charset: TelnetCharset) {
    this.#bytes = bytes;
    this.#charset = charset;
  }

  /** The top-level variables, or `undefined` if the message nests too deep. */
  read(): Record<string, MsdpValue> | undefined {
    const variables = this.#table(0, -1);
    return this.#tooDeep ? undefined : variables;
  }

  /** VAR name, VAL value pairs until `close` (or the end). */
  #table(depth: number, close: number): Record<string, MsdpValue> {
    const table: Record<string, MsdpValue> = {};
    while (this.#at < this.#bytes.length && !this.#tooDeep) {
      const byte = this.#bytes[this.#at++];
      if (byte === close) break;
      if (byte !== VAR) continue;
      const name = this.#string();
      const values: MsdpValue[] = [];
      while (this.#bytes[this.#at] === VAL && !this.#tooDeep) {
        this.#at++;
        values.push(this.#value(depth));
      }
      setOwn(table, name, values.length === 1 ? values[0] ?? "" : values.length ? values : "");
    }
    return table;
  }

  /** The value after a VAL: a table, an array or a string. */
  #value(depth: number): MsdpValue {
    const byte = this.#bytes[this.#at];
    if (byte !== TABLE_OPEN && byte !== ARRAY_OPEN) return this.#string();
    if (depth >= MSDP_DEPTH_LIMIT) {
      this.#tooDeep = true;
      return "";
    }
    this.#at++;
    return byte === TABLE_OPEN ? this.#table(depth + 1, TABLE_CLOSE) : this.#array(depth + 1);
  }

  /** VAL value entries until ARRAY_CLOSE (or the end). */
  #array(depth: number): MsdpValue[] {
    const array: MsdpValue[] = [];
    while (this.#at < this.#bytes.length && !this.#tooDeep) {
      const byte = this.#bytes[this.#at++];
      if (byte === ARRAY_CLOSE) break;
      if (byte === VAL) array.push(this.#value(depth));
    }
    return array;
  }

  /** The text up to the next MSDP control byte. */
  #string(): string {
    const start = this.#at;
    while (this.#at < this.#bytes.length && (this.#bytes[this.#at] ?? 0) > ARRAY_CLOSE) {
      this.#at++;
    }
    return decodeText(this.#bytes.subarray(start, this.#at), this.#charset);
  }
}

/**
 * Writes the data of an MSDP message for the server (without IAC SB MSDP
 * and IAC SE, nor IAC escaping): `MSDP_VAR <name>` then the value, a
 * string as one `MSDP_VAL`, an array as one `MSDP_VAL` per element (as
 * `REPORT` and `SEND` take several names), a nested array or object as
 * `MSDP_ARRAY` or `MSDP_TABLE`.
 *
 * @param variable The variable or command, such as `REPORT`, and its value.
 * @param charset The charset to encode text in.
 * @returns The bytes.
 * @throws {TypeError} When a string holds a byte MSDP reserves (0 to 6 in
 *   `charset`) or a value is not a string, array or object.
 * @throws {RangeError} When values nest deeper than 32.
 *
 * @example
 * ```ts
 * import { encodeMsdp } from "./telnet_messages.ts";
 *
 * console.assert(encodeMsdp(["SEND", "HP"], "utf-8").join() === "1,83,69,78,68,2,72,80");
 * ```
 */
export function encodeMsdp(
  variable: readonly [name: string, value: MsdpValue],
  charset: TelnetCharset,
): number[] {
  const [name, value] = variable;
  const out: number[] = [VAR];
  pushMsdpText(out, name, charset);
  if (Array.isArray(value)) {
    for (const item of value) {
      out.push(VAL);
      pushMsdpValue(out, item, 1, charset);
    }
  } else {
    out.push(VAL);
    pushMsdpValue(out, value, 0, charset);
  }
  return out;
}

/** Appends `text` in `charset`, refusing MSDP's reserved bytes. */
function pushMsdpText(out: number[], text: string, charset: TelnetCharset): void {
  const bytes = encodeText(String(text), charset);
  if (bytes.some((byte) => byte <= ARRAY_CLOSE)) {
    throw new TypeError(`MSDP text cannot hold bytes 0 to 6: got ${JSON.stringify(text)}`);
  }
  out.push(...bytes);
}

/** Appends an MSDP value after its MSDP_VAL. */
function pushMsdpValue(
  out: number[],
  value: MsdpValue,
  depth: number,
  charset: TelnetCharset,
): void {
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
    pushMsdpText(out, String(value), charset);
    return;
  }
  if (typeof value !== "object" || value === null) {
    throw new TypeError(`MSDP values must be strings, arrays or objects: got ${String(value)}`);
  }
  if (depth >= MSDP_DEPTH_LIMIT) throw new RangeError("MSDP values nest deeper than 32");
  if (Array.isArray(value)) {
    out.push(ARRAY_OPEN);
    for (const item of value) {
      out.push(VAL);
      pushMsdpValue(out, item, depth + 1, charset);
    }
    out.push(ARRAY_CLOSE);
  } else {
    out.push(TABLE_OPEN);
    for (const [name, item] of Object.entries(value)) {
      out.push(VAR);
      pushMsdpText(out, name, charset);
      out.push(VAL);
      pushMsdpValue(out, item, depth + 1, charset);
    }
    out.push(TABLE_CLOSE);
  }
}

/**
 * Reads an MSSP message's variables: each VAR with its VAL, or its VALs as
 * an array.
 *
 * @param bytes The subnegotiation's data, after the MSSP option byte.
 * @param charset The charset its text is in.
 * @returns The variables.
 *
 * @example
 * ```ts
 * import { parseMssp } from "./telnet_messages.ts";
 *
 * // MSSP_VAR "PLAYERS" MSSP_VAL "3"
 * const variables = parseMssp(Uint8Array.of(1, 80, 76, 65, 89, 69, 82, 83, 2, 51), "utf-8");
 * console.assert(variables.PLAYERS === "3");
 * ```
 */
export function parseMssp(
  bytes: Uint8Array,
  charset: TelnetCharset,
): Record<string, string | string[]> {
  const variables: Record<string, string | string[]> = {};
  let name: string | undefined;
  let values: string[] = [];
  function flush(): void {
    if (name === undefined) return;
    setOwn(variables, name, values.length === 1 ? values[0] ?? "" : values.length ? values : "");
  }
  let at = 0;
  while (at < bytes.length) {
    const byte = bytes[at++];
    if (byte !== VAR && byte !== VAL) continue;
    let end = at;
    while (end < bytes.length && bytes[end] !== VAR && bytes[end] !== VAL) end++;
    const text = decodeText(bytes.subarray(at, end), charset);
    at = end;
    if (byte === VAR) {
      flush();
      name = text;
      values = [];
    } else if (name !== undefined) {
      values.push(text);
    }
  }
  flush();
  return variables;
}

/**
 * Sets an own property even for a name like `__proto__`, which a plain
 * assignment would take as the object's prototype: the names come from the
 * server.
 */
function setOwn<T>(object: Record<string, T>, name: string, value: T): void {
  Object.defineProperty(object, name, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}
