/**
 * Slows down guessing. Every failed attempt is counted for its address and,
 * when it named a real session, for that address and session together:
 *
 * - the answer to a failure is held back a little longer for each recent
 *   failure from its address, up to a small cap
 *   ({@linkcode AuthThrottle.answerDelay}), so a guesser that waits for its
 *   answers is slowed;
 * - an attempt on a session that its address has recently failed on waits
 *   before it is checked at all ({@linkcode AuthThrottle.delay} with an
 *   id), so a guesser that gives up early learns nothing.
 *
 * Both are read when an attempt starts, and the answer to a failure always
 * comes `answerDelay` after that start, so that neither the existence of an
 * id nor other attempts in flight show in its timing. An attempt with the
 * right credentials waits only in the second case: an owner sharing a
 * guesser's address (a host, a NAT, a gateway) is slowed, never refused,
 * and only while that very session is being guessed at; other sessions and
 * other addresses are not slowed at all. Counts are forgotten after a quiet
 * minute. The caller does the waiting.
 *
 * @module
 */

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
 * // The next attempt from that address on that session waits 100 ms
 * // before it is checked, and the answer to any failure from the address
 * // goes out 300 ms after the attempt started.
 * console.assert(throttle.answerDelay("203.0.113.7") === 300);
 * console.assert(throttle.answerDelay("198.51.100.1") === 100);
 * ```
 */
export class AuthThrottle {
  readonly #step: number;
  readonly #max: number;
  readonly #forgetAfter: number;
  readonly #capacity: number;
  readonly #now: () => number;
  /** In order of last failure, oldest first (a Map keeps insertion order). */
  readonly #records = new Map<string, Record>();

  /** @param options Step, cap, memory and clock. */
  constructor(options: AuthThrottleOptions = {}) {
    this.#step = options.step ?? 100;
    this.#max = options.max ?? 2000;
    this.#forgetAfter = options.forgetAfter ?? 60_000;
    this.#capacity = options.capacity ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * How long an attempt from `address` waits before its credentials are
   * checked: with `id`, as long as the address's failures on that session
   * earn; without, as long as all its failures earn (for credentials, such
   * as an admin token, that name no session).
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
   * How long after the start of an attempt from `address` the answer to
   * its failure goes out: a step more than the address's delay, up to the
   * cap. Read it when the attempt starts.
   *
   * @param address The client's IP address.
   * @returns The delay, in ms; at least {@linkcode AuthThrottle.delay} for
   * any session id.
   */
  answerDelay(address: string): number {
    return Math.min(this.#max, this.#step * ((this.#current(address)?.failures ?? 0) + 1));
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
