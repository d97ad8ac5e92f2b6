/**
 * The stop signals of a long-running command: the first SIGINT or SIGTERM
 * asks for a clean stop, a second one means "now".
 *
 * @module
 */

/** The signals that stop a server. */
export const STOP_SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];

/** The conventional exit status after a fatal signal: 128 + its number. */
export const SIGNAL_EXIT_STATUS: Partial<Record<Deno.Signal, number>> = {
  SIGINT: 130,
  SIGTERM: 143,
};

/** A watch on the stop signals. */
export interface StopSignals extends Disposable {
  /** Resolves with the first stop signal received. */
  first: Promise<Deno.Signal>;
}

/**
 * Watches SIGINT and SIGTERM until disposed.
 *
 * @param onSecond Called on every stop signal after the first.
 * @returns The watch; dispose it to restore the default handling.
 *
 * @example
 * ```ts ignore
 * using signals = watchStopSignals((signal) => Deno.exit(SIGNAL_EXIT_STATUS[signal]));
 * const signal = await signals.first; // begin a clean stop
 * ```
 */
export function watchStopSignals(onSecond: (signal: Deno.Signal) => void): StopSignals {
  const first = Promise.withResolvers<Deno.Signal>();
  let received = 0;
  const listeners = STOP_SIGNALS.map((signal) => {
    const listener = (): void => {
      if (received++ === 0) first.resolve(signal);
      else onSecond(signal);
    };
    Deno.addSignalListener(signal, listener);
    return [signal, listener] as const;
  });
  return {
    first: first.promise,
    [Symbol.dispose]() {
      for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
    },
  };
}
