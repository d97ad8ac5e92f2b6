/**
 * Gives the memory of ended sessions back for reuse. V8 collects garbage
 * when JavaScript allocates, and a server whose sessions have all expired
 * allocates nothing: the ended sessions' objects, and the native memory
 * their buffers hold, would stay until the next burst of work, which then
 * grows the process instead of reusing that memory (`deno task bench
 * memory`: a second round of 10 000 sessions added 25 to 36% to the
 * first's resident memory; with this, at most a few percent). So once many
 * sessions have ended, it asks for one full collection, a second after the
 * last of the burst, and at most one in a while, so that a busy server with
 * steady churn never pauses for it often.
 *
 * @module
 */

import v8 from "node:v8";
import vm from "node:vm";

/** When a collection is due, and how it is made (a stand-in in tests). */
export interface CollectorOptions {
  /** Sessions ended since the last collection that make one due. */
  afterEnded: number;
  /** How long after the last ended session a due collection waits, ms. */
  quietMs: number;
  /** The least time between two collections, ms. */
  minIntervalMs: number;
  /** Makes the collection; V8's full garbage collection by default. */
  collect?: () => void;
}

/** The defaults: a thousand sessions (several MiB), a quiet second, five seconds apart. */
export const COLLECTOR_DEFAULTS: CollectorOptions = {
  afterEnded: 1000,
  quietMs: 1000,
  minIntervalMs: 5_000,
};

/** Counts ended sessions and collects garbage once enough have ended. */
export class EndedSessionsCollector implements Disposable {
  readonly #options: CollectorOptions;
  #ended = 0;
  #lastAt = -Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #dueAt: number | null = null;
  #collect: (() => void) | null | undefined;

  constructor(options: Partial<CollectorOptions> = {}) {
    this.#options = { ...COLLECTOR_DEFAULTS, ...options };
    this.#collect = options.collect;
  }

  /** When the next collection is due (on `performance.now()`'s clock), or `null` for none yet. */
  get dueAt(): number | null {
    return this.#dueAt;
  }

  /** One session has ended. */
  sessionEnded(): void {
    this.#ended++;
    if (this.#ended < this.#options.afterEnded) return;
    const wait = Math.max(
      this.#options.quietMs,
      this.#lastAt + this.#options.minIntervalMs - performance.now(),
    );
    clearTimeout(this.#timer);
    this.#dueAt = performance.now() + wait;
    this.#timer = setTimeout(() => this.#run(), wait);
  }

  #run(): void {
    this.#timer = undefined;
    this.#dueAt = null;
    this.#ended = 0;
    this.#lastAt = performance.now();
    this.#collect ??= fullCollection();
    this.#collect?.();
  }

  /** Cancels a collection not yet made (the session store does when the server stops). */
  [Symbol.dispose](): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#dueAt = null;
  }
}

/**
 * V8's full garbage collection, as `--expose-gc` gives it, without needing
 * that flag on every command line: the flag set now exposes `gc` in
 * contexts made from now on.
 *
 * @returns The collection, or `null` where the runtime does not allow it.
 */
export function fullCollection(): (() => void) | null {
  try {
    v8.setFlagsFromString("--expose-gc");
    const gc: unknown = vm.runInNewContext("gc");
    return typeof gc === "function" ? () => gc() : null;
  } catch {
    return null;
  }
}
