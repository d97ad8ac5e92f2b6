/**
 * The proxy core: the socketproxy server itself.
 *
 * The data path, destination to client: `session.ts` reads the destination
 * connection into the session's `output_buffer.ts` ring, and writes from
 * that ring to the one attached client socket, resuming at the client's
 * `<ack>`. Client to destination: `listener.ts` accepts, `handshake.ts`
 * reads the hello, `session_store.ts` creates or authenticates the session
 * (`credentials.ts`, with `../throttle.ts` slowing guesses), and
 * `session.ts` writes the client's input to the destination. A framed
 * (version 2) connection has the pumps of `framed_attachment.ts` instead,
 * over the same ring and destination writes. `server.ts`
 * puts these together; `status_report.ts` and `counters.ts` are what the
 * admin API reads; `memory_reducer.ts` has memory given back once a
 * burst of sessions created or ended is over.
 *
 * @module
 */

export { ProxyServer, type ProxyServerOptions } from "./server.ts";
export { SERVER_DEFAULTS, type ServerConfig } from "./config.ts";
export {
  collectStatus,
  type ServerIdentity,
  type SessionReport,
  type StatusReport,
} from "./status_report.ts";
