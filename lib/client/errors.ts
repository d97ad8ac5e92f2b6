/**
 * The client library's errors: its own (the proxy unreachable, a connection
 * lost, a session known to be over) and the protocol's typed `ERR` replies,
 * re-exported so that callers import every error from one place.
 *
 * @module
 */

import { AuthError } from "../protocol.ts";

export {
  AckError,
  AuthError,
  BadRequestError,
  BusyError,
  GapError,
  HandshakeTimeoutError,
  ProtocolError,
  UnreachableError,
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
