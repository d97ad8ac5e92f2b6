/**
 * Small helpers for TCP connections shared by the server's modules.
 *
 * @module
 */

/**
 * Writes all of `bytes`, looping over partial writes.
 *
 * @param conn The connection.
 * @param bytes What to write; not copied, so it must not change until this settles.
 */
export async function writeAll(
  conn: { write(bytes: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await conn.write(written === 0 ? bytes : bytes.subarray(written));
  }
}

/**
 * Closes a connection or listener that may already be closed.
 *
 * @param resource The connection or listener.
 */
export function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Already closed: nothing left to release.
  }
}

/**
 * Resolves after `ms`, or at once when `signal` aborts.
 *
 * @param ms How long to wait.
 * @param signal Ends the wait early.
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  const { promise, resolve } = Promise.withResolvers<void>();
  function done(): void {
    clearTimeout(timer);
    signal.removeEventListener("abort", done);
    resolve();
  }
  const timer = setTimeout(done, ms);
  signal.addEventListener("abort", done);
  return promise;
}

/**
 * A level-free wake-up call: tasks wait for the next {@linkcode Wakeup.wake}.
 *
 * @example
 * ```ts
 * import { Wakeup } from "./_io.ts";
 *
 * const dataArrived = new Wakeup();
 * const waiting = dataArrived.wait();
 * dataArrived.wake();
 * await waiting;
 * ```
 */
export class Wakeup {
  #waiters: PromiseWithResolvers<void> | null = null;

  /**
   * Waits for the next wake-up.
   *
   * @returns A promise all current waiters share.
   */
  wait(): Promise<void> {
    this.#waiters ??= Promise.withResolvers<void>();
    return this.#waiters.promise;
  }

  /** Wakes everyone waiting now. */
  wake(): void {
    const waiters = this.#waiters;
    this.#waiters = null;
    waiters?.resolve();
  }
}
