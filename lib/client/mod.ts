/**
 * The client library: the protocol as the rest of the project speaks it
 * (the command-line client, the web gateway, the benchmarks and the tests),
 * and as your own Deno programs can.
 *
 * A {@linkcode ClientSession} stands for one session on a proxy. It tracks
 * the output offset it has received, so every reconnect resumes exactly,
 * and keeps the input it was given until the server's `<in>` confirms it,
 * resending the rest after a reconnect. It knows when the session has
 * ended, and sends no hello after that. Every `ERR` reply becomes a typed
 * error ({@linkcode AuthError}, {@linkcode GapError}, ...). Connections are
 * always closed, whatever fails.
 *
 * @example Poll a session
 * ```ts
 * import { ClientSession } from "./mod.ts";
 *
 * // A function, so that the example is type-checked without a proxy to run against.
 * export async function look(): Promise<string> {
 *   const session = await ClientSession.create({ proxy: { hostname: "localhost", port: 9009 } });
 *   session.send("look\n");
 *   const output = await session.poll({ wait: 1000 }); // what the destination said
 *   await session.close();
 *   return new TextDecoder().decode(output);
 * }
 * ```
 *
 * @module
 */

export {
  AckError,
  AuthError,
  BadRequestError,
  BusyError,
  ConnectionLostError,
  type ErrorMeaning,
  GapError,
  HandshakeTimeoutError,
  InputOffsetError,
  meaningOf,
  ProtocolError,
  ProxyUnavailableError,
  SessionEndedError,
  UnknownDestinationError,
  UnreachableError,
  UntrustedError,
} from "./errors.ts";
export type { HostPort } from "../address.ts";
export type { ErrorCode, Reply, SessionState } from "../protocol.ts";
export type { ClientOptions } from "./handshake.ts";
export type { EndReason } from "../frames.ts";
export { ClientConnection } from "./connection.ts";
export {
  FramedConnection,
  type FramedEvent,
  type FramedNextOptions,
  type FramedReply,
  type FramedTarget,
  isVersion1Refusal,
} from "./framed.ts";
export {
  ClientSession,
  type CreateOptions,
  type PollOptions,
  type ResumeOptions,
  type StreamEnd,
  type StreamOptions,
} from "./session.ts";
