/**
 * The socketproxy wire protocol, version 1: the hello a client sends, the
 * reply the server answers, and the error codes. Both the server's handshake
 * and the client library format and parse lines with these functions, so the
 * two cannot drift apart. See README.md ("The protocol").
 *
 * @module
 */

/** Longest hello accepted, in bytes, LF included. */
export const MAX_HELLO_BYTES = 512;

/** `NEW`: create a session. */
export interface NewHello {
  /** The verb. */
  verb: "NEW";
}

/** `RESUME <id> <secret> [<ack>]`: attach to a session. */
export interface ResumeHello {
  /** The verb. */
  verb: "RESUME";
  /** Session id. */
  id: string;
  /** Session secret. */
  secret: string;
  /** Output offset the client has received; absent for streaming delivery. */
  ack?: number;
}

/** `CLOSE <id> <secret>`: end a session. */
export interface CloseHello {
  /** The verb. */
  verb: "CLOSE";
  /** Session id. */
  id: string;
  /** Session secret. */
  secret: string;
}

/** The first line of every client connection. */
export type Hello = NewHello | ResumeHello | CloseHello;

/** Whether the destination connection is still open. */
export type SessionState = "open" | "closed";

/** The fields of an `OK` reply. */
export interface Reply {
  /** Session id. */
  id: string;
  /** Session secret. */
  secret: string;
  /** Input bytes received from all earlier connections of the session. */
  in: number;
  /** Output offset of the first byte after the reply line. */
  from: number;
  /** Output bytes that follow the reply line at once. */
  pending: number;
  /** Destination state. */
  state: SessionState;
}

/** The error codes of `ERR` replies. */
export type ErrorCode =
  | "auth"
  | "bad-request"
  | "timeout"
  | "unreachable"
  | "busy"
  | "gap"
  | "ack";

/**
 * A protocol error: the server answers it as `ERR <code> ...` and the client
 * library throws it when it reads one.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "./protocol.ts";
 *
 * const error = new ProtocolError("gap", "output before offset 4096 was released", 4096);
 * console.assert(error.line() === "ERR gap 4096 output before offset 4096 was released\n");
 * ```
 */
export class ProtocolError extends Error {
  /** The error code. */
  readonly code: ErrorCode;
  /** For `gap`: the lowest offset retained; for `ack`: the offset sent so far. */
  readonly offset: number | undefined;

  /**
   * Creates a protocol error.
   *
   * @param code The error code.
   * @param message Free text for the peer: ASCII, one line, never a secret.
   * @param offset The offset `gap` and `ack` carry.
   */
  constructor(code: ErrorCode, message: string, offset?: number) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
    this.offset = offset;
  }

  /**
   * Formats the error as the line the server sends.
   *
   * @returns `ERR <code> [<offset>] <text>\n`.
   */
  line(): string {
    const offset = this.offset === undefined ? "" : ` ${this.offset}`;
    return `ERR ${this.code}${offset} ${this.message.replace(/[^\x20-\x7e]/g, "?")}\n`;
  }
}

const ID = /^[A-Za-z0-9_-]{1,64}$/;
const SECRET = /^[A-Za-z0-9_-]{22,64}$/;
const OFFSET = /^\d{1,16}$/;
const PRINTABLE = /^[\x20-\x7e]*$/;
const VERB = /^[A-Za-z]{1,16}$/;
const HTTP_REQUEST = /^[A-Z]{3,7} \S+ HTTP\/\d/;

function badRequest(message: string): ProtocolError {
  return new ProtocolError("bad-request", message);
}

function parseOffset(text: string, what: string): number {
  const value = decimal(text);
  if (value === undefined) throw badRequest(`${what} is not a decimal offset`);
  return value;
}

function parseCredentials(id: string, secret: string): { id: string; secret: string } {
  if (!ID.test(id)) throw badRequest("malformed session id");
  if (!SECRET.test(secret)) throw badRequest("malformed secret");
  return { id, secret };
}

/**
 * Parses a hello line (without its LF; a trailing CR is ignored).
 *
 * @param line The line, as ASCII text.
 * @returns The hello.
 * @throws {ProtocolError} `bad-request` when the line is not a valid hello.
 *
 * @example
 * ```ts
 * import { parseHello } from "./protocol.ts";
 *
 * const hello = parseHello("RESUME abc 0123456789abcdefghijkl 42\r");
 * console.assert(hello.verb === "RESUME" && hello.ack === 42);
 * ```
 */
export function parseHello(line: string): Hello {
  if (line.endsWith("\r")) line = line.slice(0, -1);
  if (line === "") throw badRequest("empty hello");
  if (!PRINTABLE.test(line)) throw badRequest("hello is not printable ASCII");
  const [verb = "", ...args] = line.split(" ");
  switch (verb) {
    case "NEW":
      if (args.length !== 0) throw badRequest("NEW takes no arguments");
      return { verb };
    case "RESUME": {
      if (args.length !== 2 && args.length !== 3) {
        throw badRequest("expected RESUME <id> <secret> [<ack>]");
      }
      const [id = "", secret = "", ack] = args;
      const credentials = parseCredentials(id, secret);
      if (ack === undefined) return { verb, ...credentials };
      return { verb, ...credentials, ack: parseOffset(ack, "ack") };
    }
    case "CLOSE": {
      if (args.length !== 2) throw badRequest("expected CLOSE <id> <secret>");
      const [id = "", secret = ""] = args;
      return { verb, ...parseCredentials(id, secret) };
    }
    default:
      if (HTTP_REQUEST.test(line)) {
        throw badRequest(`unknown verb "${verb}": this port speaks socketproxy, not HTTP`);
      }
      throw badRequest(
        VERB.test(verb)
          ? `unknown verb "${verb}" (expected NEW, RESUME or CLOSE)`
          : "expected NEW, RESUME or CLOSE",
      );
  }
}

/**
 * Formats a hello as the line a client sends.
 *
 * @param hello The hello.
 * @returns The line, LF included.
 */
export function formatHello(hello: Hello): string {
  switch (hello.verb) {
    case "NEW":
      return "NEW\n";
    case "RESUME":
      return hello.ack === undefined
        ? `RESUME ${hello.id} ${hello.secret}\n`
        : `RESUME ${hello.id} ${hello.secret} ${hello.ack}\n`;
    case "CLOSE":
      return `CLOSE ${hello.id} ${hello.secret}\n`;
  }
}

/**
 * Formats an `OK` reply.
 *
 * @param reply The fields.
 * @returns The line, LF included.
 */
export function formatReply(reply: Reply): string {
  return `OK ${reply.id} ${reply.secret} ${reply.in} ${reply.from} ${reply.pending} ${reply.state}\n`;
}

/**
 * Parses a reply line from the server (without its LF; a trailing CR is ignored).
 *
 * @param line The line.
 * @returns The fields of `OK`, or `{ bye: id }` for `BYE`.
 * @throws {ProtocolError} The error an `ERR` line carries.
 * @throws {SyntaxError} When the line is not a reply at all.
 *
 * @example
 * ```ts
 * import { parseReply } from "./protocol.ts";
 *
 * const reply = parseReply("OK abc 0123456789abcdefghijkl 0 0 5 open");
 * console.assert("pending" in reply && reply.pending === 5);
 * ```
 */
export function parseReply(line: string): Reply | { bye: string } {
  if (line.endsWith("\r")) line = line.slice(0, -1);
  const fields = line.split(" ");
  const [word, first = "", second = ""] = fields;
  if (word === "OK" && fields.length === 7) {
    const [, id = "", secret = "", input = "", from = "", pending = "", state = ""] = fields;
    const offsets = [input, from, pending].map(decimal);
    const [inCount, fromOffset, pendingCount] = offsets;
    if (
      ID.test(id) && SECRET.test(secret) && (state === "open" || state === "closed") &&
      inCount !== undefined && fromOffset !== undefined && pendingCount !== undefined
    ) {
      return { id, secret, in: inCount, from: fromOffset, pending: pendingCount, state };
    }
  } else if (word === "BYE" && fields.length === 2 && ID.test(first)) {
    return { bye: first };
  } else if (word === "ERR" && isErrorCode(first)) {
    const offset = first === "gap" || first === "ack" ? decimal(second) : undefined;
    const message = fields.slice(offset === undefined ? 2 : 3).join(" ");
    throw new ProtocolError(first, message, offset);
  }
  throw new SyntaxError(`Not a socketproxy reply: "${line.slice(0, 80)}"`);
}

/** A decimal offset, or `undefined` when the text is not one. */
function decimal(text: string): number | undefined {
  const value = OFFSET.test(text) ? Number(text) : NaN;
  return Number.isSafeInteger(value) ? value : undefined;
}

const ERROR_CODES: readonly string[] = [
  "auth",
  "bad-request",
  "timeout",
  "unreachable",
  "busy",
  "gap",
  "ack",
];

function isErrorCode(text: string): text is ErrorCode {
  return ERROR_CODES.includes(text);
}
