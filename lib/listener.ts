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
  while (!signal.aborted) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (signal.aborted) return;
      backoff = Math.min(MAX_BACKOFF_MS, backoff === 0 ? FIRST_BACKOFF_MS : backoff * 2);
      logger.error("accept.failed", { error: describeError(error), retry_ms: backoff });
      await sleep(backoff, signal);
      continue;
    }
    if (backoff > 0) logger.info("accept.recovered", {});
    backoff = 0;
    onConnection(conn);
  }
}
