/**
 * The client library's errors: its own (the proxy unreachable, a connection
 * lost, a session known to be over) and the protocol's typed `ERR` replies,
 * re-exported so that callers import every error from one place.
 *
 * @module
 */

import {
  AckError,
  AuthError,
  BusyError,
  GapError,
  HandshakeTimeoutError,
  ProtocolError,
  UnknownDestinationError,
  UnreachableError,
  UntrustedError,
} from "../protocol.ts";

export {
  AckError,
  AuthError,
  BadRequestError,
  BusyError,
  GapError,
  HandshakeTimeoutError,
  ProtocolError,
  UnknownDestinationError,
  UnreachableError,
  UntrustedError,
} from "../protocol.ts";

/** The proxy could not be reached at all. */
export class ProxyUnavailableError extends Error {
  /**
   * Creates the error.
   *
   * @param message What happened, naming the address.
   */
  constructor(message: string) {
    super(message);
    this.name = "ProxyUnavailableError";
  }
}

/** The connection ended or stalled before the server's reply. */
export class ConnectionLostError extends Error {
  /**
   * Creates the error.
   *
   * @param message What happened.
   */
  constructor(message: string) {
    super(message);
    this.name = "ConnectionLostError";
  }
}

/**
 * The session is known to have ended (the destination closed and all its
 * output was acknowledged, `CLOSE`, or an `ERR auth`): the library sends
 * no hello, which the server would answer with `ERR auth` and count as a
 * failed guess. An {@linkcode AuthError}, so that code handling "the
 * session is gone" handles it too.
 */
export class SessionEndedError extends AuthError {
  /**
   * Creates the error.
   *
   * @param message Why the session is known to be over.
   */
  constructor(message: string) {
    super(message);
    this.name = "SessionEndedError";
  }
}

/**
 * The server has less of the session's input than the caller said it has
 * (`inputAt` beyond the reply's `<in>`): the caller's record and the
 * server's disagree, so the input is not sent. The input counterpart of
 * `ERR ack`.
 */
export class InputOffsetError extends Error {
  /** The session's input count, as the server gave it. */
  readonly received: number;

  /**
   * Creates the error.
   *
   * @param message What happened.
   * @param received The server's `<in>`.
   */
  constructor(message: string, received: number) {
    super(message);
    this.name = "InputOffsetError";
    this.received = received;
  }
}

/** What a client library error means: for a person, and for an HTTP answer. */
export interface ErrorMeaning {
  /** The HTTP status a gateway answers with. */
  status: number;
  /** A short code for programs: the gateway's JSON `error`. */
  code: string;
  /** What the proxy did, as a phrase to follow its name or address: `is at its session limit`. */
  phrase: string;
  /** The numbers that come with it: a gap's `lowest`, an ack error's `sent`. */
  fields: Record<string, number>;
}

/**
 * Says what an error of the client library means.
 *
 * @param error What a client library call threw.
 * @returns Its meaning, or `null` for an error that is not the library's own.
 *
 * @example
 * ```ts
 * import { BusyError, meaningOf } from "./errors.ts";
 *
 * const meaning = meaningOf(new BusyError("the session limit is reached"));
 * console.assert(meaning?.status === 503 && meaning.code === "busy");
 * ```
 */
export function meaningOf(error: unknown): ErrorMeaning | null {
  // The one table, shared by the gateway and the command-line client.
  // Subclasses come before the classes they extend.
  if (error instanceof ProxyUnavailableError) {
    return meaning(502, "proxy_unavailable", "is not answering");
  }
  // Closed or stalled without a reply, or answered with something else:
  // not a socketproxy server (or a TLS port reached without TLS).
  if (error instanceof ConnectionLostError) {
    return meaning(502, "proxy_unavailable", "gave no proper reply");
  }
  if (error instanceof AuthError) {
    return meaning(401, "auth", "knows no such session (ended, expired, or a wrong secret)");
  }
  if (error instanceof GapError) {
    return meaning(409, "gap", `no longer retains the output before offset ${error.lowest}`, {
      lowest: error.lowest,
    });
  }
  if (error instanceof AckError) {
    return meaning(409, "ack", `has sent only ${error.sent} bytes of output`, { sent: error.sent });
  }
  if (error instanceof InputOffsetError) {
    return meaning(409, "input_offset", `has received only ${error.received} bytes of input`, {
      in: error.received,
    });
  }
  if (error instanceof BusyError) return meaning(503, "busy", "is at its session limit");
  if (error instanceof UnreachableError) {
    return meaning(502, "unreachable", "cannot reach its destination");
  }
  if (error instanceof UnknownDestinationError) {
    return meaning(404, "unknown_destination", `has no destination named ${error.destination}`);
  }
  if (error instanceof UntrustedError) {
    return meaning(
      502,
      "untrusted",
      "does not trust this client with end users' addresses (its --trust-from)",
    );
  }
  if (error instanceof HandshakeTimeoutError) {
    return meaning(502, "proxy_error", "timed out our hello");
  }
  if (error instanceof ProtocolError) return meaning(502, "proxy_error", `refused: ${error.code}`);
  return null;
}

function meaning(
  status: number,
  code: string,
  phrase: string,
  fields: Record<string, number> = {},
): ErrorMeaning {
  return { status, code, phrase, fields };
}
