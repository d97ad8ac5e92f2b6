/**
 * The accept loop of the proxy port's listening sockets (opened with
 * `../listen.ts`). {@linkcode acceptLoop} runs on each. It survives
 * accept errors: a connection that was reset before it was accepted is
 * skipped at once, and running out of descriptors or memory (`EMFILE`) is
 * logged and backed off from, so the server recovers as soon as they are
 * free again.
 *
 * @module
 */

import { sleep } from "../_io.ts";
import { describeError, type Logger } from "../log.ts";

/** First wait after an accept error, in ms; doubled per error in a row. */
const FIRST_BACKOFF_MS = 10;

/** Longest wait after an accept error, in ms. */
const MAX_BACKOFF_MS = 1000;

/** Accept errors are logged at most this often, with a count, in ms. */
const REPORT_INTERVAL_MS = 1000;

/**
 * Errors that end one connection, not the listener: its client reset it
 * before it was accepted (Deno reports `NotConnected` when the peer address
 * is gone, `ConnectionAborted`, `ConnectionReset`), or a network error
 * pending on it, which Linux passes on from accept(2).
 */
const CONNECTION_ERROR_CODES = new Set([
  "ENOTCONN",
  "ECONNABORTED",
  "ECONNRESET",
  "EPROTO",
  "EPERM",
  "ETIMEDOUT",
  "ENETDOWN",
  "ENETUNREACH",
  "EHOSTDOWN",
  "EHOSTUNREACH",
  "ENONET",
]);

/** Options for {@linkcode acceptLoop}. */
export interface AcceptLoopOptions {
  /** Where accept errors are logged. */
  logger: Logger;
  /** Ends the loop; abort it before closing the listener. */
  signal: AbortSignal;
}

/**
 * Accepts connections until `signal` aborts, handing each to `onConnection`.
 *
 * @param listener The listening socket.
 * @param onConnection Takes ownership of each accepted connection; must not throw.
 * @param options Logger and stop signal.
 */
export async function acceptLoop(
  listener: Deno.Listener,
  onConnection: (conn: Deno.Conn) => void,
  options: AcceptLoopOptions,
): Promise<void> {
  const { logger, signal } = options;
  let backoff = 0;
  let unreported = 0;
  let lastReport = -Infinity;
  let dropped = 0;
  while (!signal.aborted) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (signal.aborted) return;
      // A waiting client must not pay for one that reset: accept the next at once.
      if (connectionFailed(error)) {
        dropped++;
        logger.debug("accept.dropped", { error: describeError(error), dropped });
        continue;
      }
      // Out of descriptors (Deno: a plain Error with code EMFILE or ENFILE,
      // "Too many open files"), buffers or memory, or trouble unknown:
      // retrying at once would spin. When descriptors run out, each one
      // freed lets one accept through before the next fails: log the
      // failures at a bounded rate.
      unreported++;
      if (performance.now() - lastReport >= REPORT_INTERVAL_MS) {
        logger.error("accept.failed", { error: describeError(error), failures: unreported });
        lastReport = performance.now();
        unreported = 0;
      }
      backoff = Math.min(MAX_BACKOFF_MS, backoff === 0 ? FIRST_BACKOFF_MS : backoff * 2);
      await sleep(backoff, signal);
      continue;
    }
    backoff = 0;
    onConnection(conn);
  }
}

/** Whether an accept error concerns only the connection being accepted. */
function connectionFailed(error: unknown): boolean {
  if (
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.ConnectionReset
  ) {
    return true;
  }
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && CONNECTION_ERROR_CODES.has(code);
}
