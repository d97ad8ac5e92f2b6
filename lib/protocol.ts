/**
 * The socketproxy wire protocol's lines: the hello a client sends, the
 * reply the server answers, and the error codes, for version 1 and for the
 * framed hellos of version 2 (whose frames are in `frames.ts`). Both the
 * server's handshake and the client library format and parse lines with
 * these functions, so the two cannot drift apart. See docs/protocol.md.
 *
 * @module
 */

import { parseIp } from "./ip.ts";

/** Longest hello accepted, in bytes, LF included. */
export const MAX_HELLO_BYTES = 512;

/** `NEW [framed] [to=<name>] [from=<address>]`: create a session. */
export interface NewHello {
  /** The verb. */
  verb: "NEW";
  /** `NEW framed` (version 2): attach framed from offset 0; absent for version 1. */
  framed?: true;
  /** `to=<name>`: which of the server's named destinations; absent for its default. */
  to?: string;
  /**
   * `from=<address>`: the end user's address, from a gateway (`<ipv4>`,
   * `<ipv4>:<port>`, `[<ipv6>]` or `[<ipv6>]:<port>`), as sent.
   */
  from?: string;
}

/** `RESUME <id> <secret> [<ack>]`, or `RESUME <id> <secret> <ack> framed`: attach to a session. */
export interface ResumeHello {
  /** The verb. */
  verb: "RESUME";
  /** Session id. */
  id: string;
  /** Session secret. */
  secret: string;
  /** Output offset the client has received; absent for streaming delivery. */
  ack?: number;
  /** A framed attachment (version 2), which always has `ack`; absent for version 1. */
  framed?: true;
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
  /**
   * For a framed hello only: output the server sends beyond the client's
   * latest acknowledgement before it waits for a newer one.
   */
  window?: number;
}

/** The error codes of `ERR` replies. */
export type ErrorCode =
  | "auth"
  | "bad-request"
  | "timeout"
  | "unreachable"
  | "busy"
  | "untrusted"
  | "unknown-destination"
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
  /** The word after the code: the offset of `gap` and `ack`, the name of `unknown-destination`. */
  readonly argument: string | undefined;

  /**
   * Creates a protocol error.
   *
   * @param code The error code.
   * @param message Free text for the peer: ASCII, one line, never a secret.
   * @param argument The offset `gap` and `ack` carry, the name `unknown-destination` does.
   */
  constructor(code: ErrorCode, message: string, argument?: number | string) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
    this.offset = typeof argument === "number" ? argument : undefined;
    this.argument = argument === undefined ? undefined : String(argument);
  }

  /**
   * Formats the error as the line the server sends.
   *
   * @returns `ERR <code> [<argument>] <text>\n`.
   */
  line(): string {
    const argument = this.argument === undefined ? "" : ` ${this.argument}`;
    return `ERR ${this.code}${argument} ${this.message.replace(/[^\x20-\x7e]/g, "?")}\n`;
  }
}

/** `ERR auth`: unknown session or wrong secret. */
export class AuthError extends ProtocolError {
  /**
   * Creates the error for `ERR auth`.
   *
   * @param message The server's text.
   */
  constructor(message: string) {
    super("auth", message);
    this.name = "AuthError";
  }
}

/** `ERR bad-request`: the server could not parse the hello. */
export class BadRequestError extends ProtocolError {
  /**
   * Creates the error for `ERR bad-request`.
   *
   * @param message The server's text.
   */
  constructor(message: string) {
    super("bad-request", message);
    this.name = "BadRequestError";
  }
}

/** `ERR timeout`: the hello did not arrive within the server's handshake timeout. */
export class HandshakeTimeoutError extends ProtocolError {
  /**
   * Creates the error for `ERR timeout`.
   *
   * @param message The server's text.
   */
  constructor(message: string) {
    super("timeout", message);
    this.name = "HandshakeTimeoutError";
  }
}

/** `ERR unreachable`: `NEW` could not reach the destination; no session exists. */
export class UnreachableError extends ProtocolError {
  /**
   * Creates the error for `ERR unreachable`.
   *
   * @param message The server's text.
   */
  constructor(message: string) {
    super("unreachable", message);
    this.name = "UnreachableError";
  }
}

/** `ERR busy`: `NEW` refused at the server's session limit. */
export class BusyError extends ProtocolError {
  /**
   * Creates the error for `ERR busy`.
   *
   * @param message The server's text.
   */
  constructor(message: string) {
    super("busy", message);
    this.name = "BusyError";
  }
}

/**
 * `ERR untrusted`: `NEW from=<address>` from a peer the server does not
 * trust with end users' addresses; no session exists.
 */
export class UntrustedError extends ProtocolError {
  /**
   * Creates the error for `ERR untrusted`.
   *
   * @param message The server's text.
   */
  constructor(message: string) {
    super("untrusted", message);
    this.name = "UntrustedError";
  }
}

/** `ERR unknown-destination <name>`: `NEW to=<name>` named no destination of the server's. */
export class UnknownDestinationError extends ProtocolError {
  /** The name the hello gave. */
  readonly destination: string;

  /**
   * Creates the error for `ERR unknown-destination <name>`.
   *
   * @param message The server's text.
   * @param destination The name.
   */
  constructor(message: string, destination: string) {
    super("unknown-destination", message, destination);
    this.name = "UnknownDestinationError";
    this.destination = destination;
  }
}

/** `ERR gap <lowest>`: the acknowledged offset is older than the output retained. */
export class GapError extends ProtocolError {
  /** The lowest offset the client can resume from; the bytes before it are lost. */
  readonly lowest: number;

  /**
   * Creates the error for `ERR gap <lowest>`.
   *
   * @param message The server's text.
   * @param lowest The lowest offset retained.
   */
  constructor(message: string, lowest: number) {
    super("gap", message, lowest);
    this.name = "GapError";
    this.lowest = lowest;
  }
}

/** `ERR ack <sent>`: the acknowledged offset is beyond what was ever sent. */
export class AckError extends ProtocolError {
  /** The output the server has ever sent. */
  readonly sent: number;

  /**
   * Creates the error for `ERR ack <sent>`.
   *
   * @param message The server's text.
   * @param sent The offset sent so far.
   */
  constructor(message: string, sent: number) {
    super("ack", message, sent);
    this.name = "AckError";
    this.sent = sent;
  }
}

/**
 * Creates the typed error for an `ERR` line's code.
 *
 * @param code The error code.
 * @param message The free text.
 * @param argument The offset of `gap` and `ack`, the name of `unknown-destination`.
 * @returns An instance of the matching subclass of {@linkcode ProtocolError}.
 */
export function protocolError(
  code: ErrorCode,
  message: string,
  argument?: number | string,
): ProtocolError {
  const offset = typeof argument === "number" ? argument : undefined;
  switch (code) {
    case "auth":
      return new AuthError(message);
    case "bad-request":
      return new BadRequestError(message);
    case "timeout":
      return new HandshakeTimeoutError(message);
    case "unreachable":
      return new UnreachableError(message);
    case "busy":
      return new BusyError(message);
    case "untrusted":
      return new UntrustedError(message);
    case "unknown-destination":
      return typeof argument === "string"
        ? new UnknownDestinationError(message, argument)
        : new ProtocolError(code, message);
    case "gap":
      return offset === undefined
        ? new ProtocolError(code, message)
        : new GapError(message, offset);
    case "ack":
      return offset === undefined
        ? new ProtocolError(code, message)
        : new AckError(message, offset);
  }
}

/** A well-formed session id: 1 to 64 chars of `[A-Za-z0-9_-]`. */
export const ID_PATTERN: RegExp = /^[A-Za-z0-9_-]{1,64}$/;
/** A well-formed session secret: 22 to 64 chars of `[A-Za-z0-9_-]`. */
export const SECRET_PATTERN: RegExp = /^[A-Za-z0-9_-]{22,64}$/;
const OFFSET = /^\d{1,16}$/;
/** The word that makes a hello framed (version 2). */
const FRAMED = "framed";
/** A destination name: 1 to 64 chars of `[A-Za-z0-9_.-]`. */
export const DESTINATION_NAME_PATTERN: RegExp = /^[A-Za-z0-9_.-]{1,64}$/;
const FROM_ADDRESS = /^(?:(\d{1,3}(?:\.\d{1,3}){3})|\[([0-9A-Fa-f:.]{2,45})\])(?::(\d{1,5}))?$/;

/**
 * Parses the address of a `from=` hello option: `<ipv4>`, `<ipv4>:<port>`,
 * `[<ipv6>]` or `[<ipv6>]:<port>`.
 *
 * @param text The address.
 * @returns The IP address text (without brackets) and the port, or `null`
 * for no port; `null` when `text` is not such an address.
 *
 * @example
 * ```ts
 * import { parseFromAddress } from "./protocol.ts";
 *
 * console.assert(parseFromAddress("[2001:db8::7]:4000")?.port === 4000);
 * console.assert(parseFromAddress("192.0.2.7")?.port === null);
 * console.assert(parseFromAddress("example.com") === null);
 * ```
 */
export function parseFromAddress(text: string): { ip: string; port: number | null } | null {
  const match = FROM_ADDRESS.exec(text);
  if (!match) return null;
  const ip = match[1] ?? match[2] ?? "";
  const parsed = parseIp(ip);
  if (!parsed || (match[1] !== undefined) !== (parsed.family === 4)) return null;
  if (match[3] === undefined) return { ip, port: null };
  const port = Number(match[3]);
  return port >= 1 && port <= 65535 && !match[3].startsWith("0") ? { ip, port } : null;
}

/** Parses `NEW`'s options: each of `framed`, `to=`, `from=` at most once, in any order. */
function parseNewOptions(args: string[]): NewHello {
  const hello: NewHello = { verb: "NEW" };
  for (const option of args) {
    if (option === FRAMED && !hello.framed) {
      hello.framed = true;
    } else if (option.startsWith("to=") && hello.to === undefined) {
      const name = option.slice(3);
      if (!DESTINATION_NAME_PATTERN.test(name)) {
        throw badRequest("to= takes a destination name: 1 to 64 of A-Z a-z 0-9 _ . -");
      }
      hello.to = name;
    } else if (option.startsWith("from=") && hello.from === undefined) {
      const address = option.slice(5);
      if (!parseFromAddress(address)) {
        throw badRequest("from= takes <ipv4>[:<port>] or [<ipv6>][:<port>]");
      }
      hello.from = address;
    } else {
      throw badRequest(`NEW takes framed, to= and from=, each at most once`);
    }
  }
  return hello;
}
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
  if (!ID_PATTERN.test(id)) throw badRequest("malformed session id");
  if (!SECRET_PATTERN.test(secret)) throw badRequest("malformed secret");
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
      return parseNewOptions(args);
    case "RESUME": {
      const framed = args.length === 4 && args[3] === FRAMED;
      if (framed) args.pop();
      if (args.length !== 2 && args.length !== 3) {
        throw badRequest(
          "expected RESUME <id> <secret> [<ack>] or RESUME <id> <secret> <ack> framed",
        );
      }
      const [id = "", secret = "", ack] = args;
      const credentials = parseCredentials(id, secret);
      if (ack === FRAMED) throw badRequest("a framed RESUME needs <ack>");
      if (ack === undefined) return { verb, ...credentials };
      const offset = parseOffset(ack, "ack");
      return framed
        ? { verb, ...credentials, ack: offset, framed }
        : { verb, ...credentials, ack: offset };
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
 * @throws {TypeError} For a framed `RESUME` without `ack`.
 */
export function formatHello(hello: Hello): string {
  switch (hello.verb) {
    case "NEW":
      return `NEW${hello.framed ? " framed" : ""}${
        hello.to === undefined ? "" : ` to=${hello.to}`
      }${hello.from === undefined ? "" : ` from=${hello.from}`}\n`;
    case "RESUME":
      if (hello.framed && hello.ack === undefined) {
        throw new TypeError("A framed RESUME needs an ack");
      }
      return hello.ack === undefined
        ? `RESUME ${hello.id} ${hello.secret}\n`
        : `RESUME ${hello.id} ${hello.secret} ${hello.ack}${hello.framed ? " framed" : ""}\n`;
    case "CLOSE":
      return `CLOSE ${hello.id} ${hello.secret}\n`;
  }
}

/**
 * Formats an `OK` reply: seven fields, eight with `window` (a framed hello's).
 *
 * @param reply The fields.
 * @returns The line, LF included.
 */
export function formatReply(reply: Reply): string {
  const window = reply.window === undefined ? "" : ` ${reply.window}`;
  return `OK ${reply.id} ${reply.secret} ${reply.in} ${reply.from} ${reply.pending} ${reply.state}${window}\n`;
}

/**
 * Parses a reply line from the server (without its LF; a trailing CR is ignored).
 *
 * @param line The line.
 * @returns The fields of `OK` (with `window` when it has eight), or `{ bye: id }` for `BYE`.
 * @throws {ProtocolError} The error an `ERR` line carries, as its typed subclass.
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
  if (word === "OK" && (fields.length === 7 || fields.length === 8)) {
    const [, id = "", secret = "", input = "", from = "", pending = "", state = "", window] =
      fields;
    const offsets = [input, from, pending].map(decimal);
    const [inCount, fromOffset, pendingCount] = offsets;
    const windowSize = window === undefined ? undefined : decimal(window);
    if (
      ID_PATTERN.test(id) && SECRET_PATTERN.test(secret) &&
      (state === "open" || state === "closed") &&
      inCount !== undefined && fromOffset !== undefined && pendingCount !== undefined &&
      (window === undefined || (windowSize !== undefined && windowSize > 0))
    ) {
      const reply: Reply = {
        id,
        secret,
        in: inCount,
        from: fromOffset,
        pending: pendingCount,
        state,
      };
      if (windowSize !== undefined) reply.window = windowSize;
      return reply;
    }
  } else if (word === "BYE" && fields.length === 2 && ID_PATTERN.test(first)) {
    return { bye: first };
  } else if (word === "ERR" && isErrorCode(first)) {
    const argument = first === "gap" || first === "ack"
      ? decimal(second)
      : first === "unknown-destination" && DESTINATION_NAME_PATTERN.test(second)
      ? second
      : undefined;
    const message = fields.slice(argument === undefined ? 2 : 3).join(" ");
    throw protocolError(first, message, argument);
  }
  // Only the first word: the rest of a malformed OK line may carry a secret.
  throw new SyntaxError(`Not a socketproxy reply: "${(word ?? "").slice(0, 40)}..."`);
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
  "untrusted",
  "unknown-destination",
  "gap",
  "ack",
];

function isErrorCode(text: string): text is ErrorCode {
  return ERROR_CODES.includes(text);
}
