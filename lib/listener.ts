/**
 * The accept loop of the proxy port. It survives accept errors, such as
 * running out of file descriptors (`EMFILE`), by logging them and backing
 * off, so the server recovers as soon as descriptors are free again.
 *
 * @module
 */

import { sleep } from "./_io.ts";
import { describeError, type Logger } from "./log.ts";

/** First wait after an accept error, in ms; doubled per error in a row. */
const FIRST_BACKOFF_MS = 10;

/** Longest wait after an accept error, in ms. */
const MAX_BACKOFF_MS = 1000;

/** Accept errors are logged at most this often, with a count, in ms. */
const REPORT_INTERVAL_MS = 1000;

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
  while (!signal.aborted) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (signal.aborted) return;
      // When descriptors run out, each one freed lets one accept through
      // before the next fails: log the failures at a bounded rate.
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
