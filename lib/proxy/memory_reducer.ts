/**
 * Gives memory back once a burst of sessions is over. V8 collects garbage
 * when JavaScript allocates, and a server whose sessions have all been
 * created, or have all expired, allocates nothing: the ended sessions'
 * objects, and the young generation grown while thousands of sessions
 * were created at once (tens of MiB, empty once they are old), stayed
 * resident until the next burst of work, which then grew the process
 * instead of reusing that memory. So once many sessions have started or
 * ended, it asks for one memory-reducing collection (V8's "last resort"
 * one: the old generation compacted, the young one shrunk back), a quiet
 * second after the last of the burst and at most one in a while, so that a
 * server with steady churn never pauses for it often. `deno task bench
 * memory`: without it a second round of 10 000 sessions added 25 to 36% to
 * the first's resident memory, and 10 000 detached sessions took 11.2 KiB
 * each; with it, a few percent and 5.5 KiB.
 *
 * @module
 */

import v8 from "node:v8";
import vm from "node:vm";

/** When a collection is due, and how it is made (a stand-in in tests). */
export interface MemoryReducerOptions {
  /** Sessions created or ended since the last collection that make one due. */
  afterChanges: number;
  /** How long after the last session created or ended a due collection waits, ms. */
  quietMs: number;
  /** The least time between two collections, ms. */
  minIntervalMs: number;
  /** Makes the collection; V8's memory-reducing garbage collection by default. */
  collect?: () => void;
}

/** The defaults: a thousand sessions (several MiB), a quiet second, five seconds apart. */
export const MEMORY_REDUCER_DEFAULTS: MemoryReducerOptions = {
  afterChanges: 1000,
  quietMs: 1000,
  minIntervalMs: 5_000,
};

/** Counts sessions created and ended, and collects garbage once a burst of them is over. */
export class MemoryReducer implements Disposable {
  readonly #options: MemoryReducerOptions;
  #changes = 0;
  #lastChangeAt = -Infinity;
  #lastCollectedAt = -Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #collect: (() => void) | null | undefined;
  #disposed = false;

  constructor(options: Partial<MemoryReducerOptions> = {}) {
    this.#options = { ...MEMORY_REDUCER_DEFAULTS, ...options };
    this.#collect = options.collect;
  }

  /** When the next collection is due (on `performance.now()`'s clock), or `null` for none yet. */
  get dueAt(): number | null {
    if (this.#changes < this.#options.afterChanges) return null;
    return Math.max(
      this.#lastChangeAt + this.#options.quietMs,
      this.#lastCollectedAt + this.#options.minIntervalMs,
    );
  }

  /** One session was created or has ended. */
  sessionChanged(): void {
    // Sessions still ending after the server has stopped arm nothing.
    if (this.#disposed) return;
    this.#changes++;
    this.#lastChangeAt = performance.now();
    // One timer for the burst: when it fires it looks again (below), so a
    // session changing does not re-arm it.
    const dueAt = this.dueAt;
    if (this.#timer === undefined && dueAt !== null) this.#wait(dueAt - this.#lastChangeAt);
  }

  /** Collects after `ms`, or later if sessions changed in the meantime. */
  #wait(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const dueAt = this.dueAt;
      if (dueAt === null) return;
      const left = dueAt - performance.now();
      if (left > 0) this.#wait(left);
      else this.#run();
    }, Math.max(0, ms));
  }

  #run(): void {
    this.#changes = 0;
    this.#lastCollectedAt = performance.now();
    this.#collect ??= memoryReducingCollection();
    this.#collect?.();
  }

  /** Cancels a collection not yet made, and any later (the session store does when the server stops). */
  [Symbol.dispose](): void {
    this.#disposed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#changes = 0;
  }
}

/**
 * V8's memory-reducing garbage collection (the "last resort" flavour of
 * `gc()`: full collections until nothing more is freed, with the old
 * generation compacted and the young one shrunk), without needing
 * `--expose-gc` on every command line: the flag set now exposes `gc` in
 * contexts made from now on. It pauses the server for a full collection
 * or two: 70 to 160 ms with 10 000 to 20 000 sessions on our machines.
 *
 * @returns The collection, or `null` where the runtime does not allow it.
 */
export function memoryReducingCollection(): (() => void) | null {
  try {
    v8.setFlagsFromString("--expose-gc");
    const gc: unknown = vm.runInNewContext("gc");
    return typeof gc === "function" ? () => gc({ type: "major", flavor: "last-resort" }) : null;
  } catch {
    return null;
  }
}
