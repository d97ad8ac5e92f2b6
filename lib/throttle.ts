/**
 * Slows down guessing. Every failed attempt is counted for its address and,
 * when it named a real session, for that address and session together:
 *
 * - the answer to a failure is held back a little longer for each recent
 *   failure from its address, up to a small cap ({@linkcode AuthThrottle.hold}),
 *   so a guesser that waits for its answers is slowed, and an unknown id
 *   and a wrong secret take the same time;
 * - an attempt on a session that its address has recently failed on waits
 *   as long before it is checked at all ({@linkcode AuthThrottle.wait}), so
 *   a guesser that gives up early learns nothing, however it times out.
 *
 * An attempt with the right credentials waits only in the second case: an
 * owner sharing a guesser's address (a host, a NAT, a gateway) is slowed,
 * never refused, and only while that very session is being guessed at;
 * other sessions and other addresses are not slowed at all. Counts are
 * forgotten after a quiet minute.
 *
 * @module
 */

import { sleep } from "./_io.ts";

/** Options for {@linkcode AuthThrottle}. */
export interface AuthThrottleOptions {
  /**
   * Delay added per recent failure, in ms.
   * @default {100}
   */
  step?: number;
  /**
   * Longest delay, in ms.
   * @default {2000}
   */
  max?: number;
  /**
   * Failures are forgotten this long after the last one, in ms.
   * @default {60000}
   */
  forgetAfter?: number;
  /**
   * Most addresses (and address and session pairs) remembered; the least
   * recently failing are dropped.
   * @default {10000}
   */
  capacity?: number;
  /**
   * Most answers held back at once per address; failures beyond are
   * answered at once. A guesser gains nothing from that it could not get by
   * giving up on a held answer, and one address cannot pile up connections.
   * @default {64}
   */
  maxHeld?: number;
  /**
   * The clock, in ms.
   * @default {Date.now}
   */
  now?: () => number;
}

interface Record {
  failures: number;
  last: number;
}

/**
 * Failure counts per client address, and the delay they earn.
 *
 * @example
 * ```ts
 * import { AuthThrottle } from "./throttle.ts";
 *
 * const throttle = new AuthThrottle({ step: 100, max: 2000 });
 * throttle.failed("203.0.113.7"); // an unknown id
 * throttle.failed("203.0.113.7", "y628R3CsuneQiYrH"); // a wrong secret for a session
 * console.assert(throttle.delay("203.0.113.7") === 200);
 * console.assert(throttle.delay("203.0.113.7", "y628R3CsuneQiYrH") === 100);
 * console.assert(throttle.delay("198.51.100.1") === 0);
 * // The next attempt on that session waits 100 ms before it is checked, and
 * // if it fails, its answer waits until 200 ms have passed; both end at once
 * // when the server stops.
 * const stopping = AbortSignal.abort();
 * const waited = await throttle.wait("203.0.113.7", { id: "y628R3CsuneQiYrH", signal: stopping });
 * await throttle.hold("203.0.113.7", stopping, { waited });
 * ```
 */
export class AuthThrottle {
  readonly #step: number;
  readonly #max: number;
  readonly #forgetAfter: number;
  readonly #capacity: number;
  readonly #maxHeld: number;
  readonly #now: () => number;
  /** In order of last failure, oldest first (a Map keeps insertion order). */
  readonly #records = new Map<string, Record>();
  /** Answers being held back now, per address. */
  readonly #held = new Map<string, number>();

  /** @param options Step, cap, memory and clock. */
  constructor(options: AuthThrottleOptions = {}) {
    this.#step = options.step ?? 100;
    this.#max = options.max ?? 2000;
    this.#forgetAfter = options.forgetAfter ?? 60_000;
    this.#capacity = options.capacity ?? 10_000;
    this.#maxHeld = options.maxHeld ?? 64;
    this.#now = options.now ?? Date.now;
  }

  /**
   * How long the answer to a failure from `address` is held back or, with
   * `id`, how long an attempt from `address` on session `id` waits before
   * it is checked.
   *
   * @param address The client's IP address.
   * @param id A session id the address presented.
   * @returns The delay, in ms: 0 without recent failures.
   */
  delay(address: string, id?: string): number {
    const record = this.#current(id === undefined ? address : pairKey(address, id));
    return record ? Math.min(this.#max, this.#step * record.failures) : 0;
  }

  /**
   * Records a failed authentication from `address`; with `id`, also one on
   * that session. Pass `id` only when it names a real session, so that
   * made-up ids cannot crowd out the pairs worth remembering.
   *
   * @param address The client's IP address.
   * @param id The session the address failed on, when it exists.
   * @returns The address's recent failures, this one included.
   */
  failed(address: string, id?: string): number {
    if (id !== undefined) this.#count(pairKey(address, id));
    return this.#count(address);
  }

  /**
   * Waits before checking credentials that `address` presents: for
   * session `options.id`, as long as the address's failures on that
   * session earn; without an id, as long as all its failures earn (for
   * credentials, such as an admin token, that name no session).
   *
   * @param address The client's IP address.
   * @param options The session id presented, and a signal that ends the
   * wait at once (the server is stopping).
   * @returns The time waited, in ms, to pass to {@linkcode AuthThrottle.hold}.
   */
  async wait(address: string, options: { id?: string; signal: AbortSignal }): Promise<number> {
    const delay = this.delay(address, options.id);
    if (delay > 0) await sleep(delay, options.signal);
    return delay;
  }

  /**
   * Holds back the answer to a failure from `address`, already recorded
   * with {@linkcode AuthThrottle.failed}, until the address's delay has
   * passed since the attempt was made. The guesser learns the result only
   * after the wait; callers answer the right credentials without calling
   * this.
   *
   * @param address The client's IP address.
   * @param signal Ends the wait at once (the server is stopping).
   * @param options `waited`: what {@linkcode AuthThrottle.wait} already
   * waited for this attempt, in ms (default 0).
   * @returns Resolves when the answer may go; at once when there is no
   * delay left, when `signal` has aborted, or when the address already has
   * `maxHeld` answers held back.
   */
  async hold(
    address: string,
    signal: AbortSignal,
    options: { waited?: number } = {},
  ): Promise<void> {
    const delay = this.delay(address) - (options.waited ?? 0);
    if (delay <= 0) return;
    const held = this.#held.get(address) ?? 0;
    if (held >= this.#maxHeld) return;
    this.#held.set(address, held + 1);
    try {
      await sleep(delay, signal);
    } finally {
      const left = (this.#held.get(address) ?? 1) - 1;
      if (left === 0) this.#held.delete(address);
      else this.#held.set(address, left);
    }
  }

  /** Counts one more failure for `key`, an address or a pair. */
  #count(key: string): number {
    const failures = (this.#current(key)?.failures ?? 0) + 1;
    this.#records.delete(key);
    this.#records.set(key, { failures, last: this.#now() });
    if (this.#records.size > this.#capacity) {
      const oldest = this.#records.keys().next().value;
      if (oldest !== undefined) this.#records.delete(oldest);
    }
    return failures;
  }

  #current(key: string): Record | undefined {
    const record = this.#records.get(key);
    if (record && this.#now() - record.last > this.#forgetAfter) {
      this.#records.delete(key);
      return undefined;
    }
    return record;
  }
}

/** The record key of an address and a session (a space never occurs in either). */
function pairKey(address: string, id: string): string {
  return `${address} ${id}`;
}
