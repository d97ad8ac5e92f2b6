/**
 * The stop signals of a long-running command: the first SIGINT or SIGTERM
 * asks for a clean stop, a second one means "now", and a clean stop that
 * overruns {@linkcode STOP_DEADLINE_MS} ends the process anyway.
 *
 * One Ctrl-C may arrive as several SIGINTs: under `deno task` the terminal
 * signals its whole foreground process group, the command included, and
 * deno task passes the SIGINT it got on to the command as well (Deno 2.9
 * sends it twice). Those copies come within a millisecond or so, a second
 * press far later, so SIGINTs close behind the one that counted are taken
 * for the same press.
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

/**
 * How long after a SIGINT that counted another one is taken for the same
 * Ctrl-C, in ms: longer than a runner takes to pass a signal on, shorter
 * than a person takes to press again.
 */
export const SIGINT_ECHO_MS = 200;

/** Ignores SIGINT for `ms`, without keeping the process alive for it. */
function swallowSigint(ms: number): void {
  function ignore(): void {}
  Deno.addSignalListener("SIGINT", ignore);
  Deno.unrefTimer(setTimeout(() => Deno.removeSignalListener("SIGINT", ignore), ms));
}

/** A watch on the stop signals. */
export interface StopSignals extends Disposable {
  /** Resolves with the first stop signal received. */
  first: Promise<Deno.Signal>;
}

/**
 * Watches SIGINT and SIGTERM until disposed. A SIGINT within
 * {@linkcode SIGINT_ECHO_MS} of the last one that counted is the same
 * Ctrl-C, and is not counted again.
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
  let interrupted = -Infinity;
  const listeners = STOP_SIGNALS.map((signal) => {
    const listener = (): void => {
      if (signal === "SIGINT") {
        // Not SIGTERM: a program sends that to a process, not to a group.
        if (performance.now() - interrupted < SIGINT_ECHO_MS) return;
        interrupted = performance.now();
      }
      if (received++ === 0) first.resolve(signal);
      else onSecond(signal);
    };
    Deno.addSignalListener(signal, listener);
    return [signal, listener] as const;
  });
  return {
    first: first.promise,
    [Symbol.dispose]() {
      // Copies of a Ctrl-C still on their way would meet the default
      // handling and kill a command that has just stopped cleanly.
      const echoes = SIGINT_ECHO_MS - (performance.now() - interrupted);
      if (echoes > 0) swallowSigint(echoes);
      for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
    },
  };
}

/**
 * The shutdown deadline, in ms: a command asked to stop exits by then,
 * inside the two seconds `server` and `demo` promise.
 */
export const STOP_DEADLINE_MS = 1800;

/**
 * Runs a clean stop under the shutdown deadline: should `stop` still be
 * running after {@linkcode STOP_DEADLINE_MS}, `onDeadline` is called and the
 * process exits with status 0, as after a clean stop.
 *
 * @param stop The clean stop.
 * @param onDeadline Called just before the exit at the deadline, to log it.
 * @returns Once `stop` has settled, as `stop` did.
 *
 * @example
 * ```ts ignore
 * await stopByDeadline(() => service.stop(), () => {
 *   logger.warn("server.stop_deadline", { after_ms: STOP_DEADLINE_MS });
 * });
 * ```
 */
export async function stopByDeadline(
  stop: () => PromiseLike<void>,
  onDeadline: () => void,
): Promise<void> {
  const deadline = setTimeout(() => {
    onDeadline();
    Deno.exit(0);
  }, STOP_DEADLINE_MS);
  try {
    await stop();
  } finally {
    clearTimeout(deadline);
  }
}
