/**
 * Slows down guessing: the answer to a failed attempt is held back a little
 * longer for each recent failure from its address, up to a small cap, and
 * the count is forgotten after a quiet minute. Only failures wait: an
 * attempt with the right credentials is answered at once, so an attacker
 * sharing the owner's address (a host, a NAT, a gateway) never slows the
 * owner down, and other addresses are not slowed at all.
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
   * Most addresses remembered; the least recently failing are dropped.
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
  /**
   * Addresses never slowed down (web gateways, which slow each browser
   * themselves); their failures are still counted.
   * @default {none}
   */
  exempt?: Iterable<string>;
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
 * throttle.failed("203.0.113.7");
 * throttle.failed("203.0.113.7");
 * console.assert(throttle.delay("203.0.113.7") === 200);
 * console.assert(throttle.delay("198.51.100.1") === 0);
 * // Before answering the second failure: waits 200 ms, or until the server stops.
 * await throttle.hold("203.0.113.7", AbortSignal.abort());
 * ```
 */
export class AuthThrottle {
  readonly #step: number;
  readonly #max: number;
  readonly #forgetAfter: number;
  readonly #capacity: number;
  readonly #maxHeld: number;
  readonly #now: () => number;
  readonly #exempt: Set<string>;
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
    this.#exempt = new Set([...options.exempt ?? []].map(plainAddress));
  }

  /**
   * How long the answer to a failure from `address` is held back.
   *
   * @param address The client's IP address.
   * @returns The delay, in ms: 0 for an address with no recent failures.
   */
  delay(address: string): number {
    if (this.#exempt.size > 0 && this.#exempt.has(plainAddress(address))) return 0;
    const record = this.#current(address);
    return record ? Math.min(this.#max, this.#step * record.failures) : 0;
  }

  /**
   * Records a failed authentication from `address`.
   *
   * @param address The client's IP address.
   * @returns The address's recent failures, this one included.
   */
  failed(address: string): number {
    const failures = (this.#current(address)?.failures ?? 0) + 1;
    this.#records.delete(address);
    this.#records.set(address, { failures, last: this.#now() });
    if (this.#records.size > this.#capacity) {
      const oldest = this.#records.keys().next().value;
      if (oldest !== undefined) this.#records.delete(oldest);
    }
    return failures;
  }

  /**
   * Holds back the answer to a failure from `address`, already recorded
   * with {@linkcode AuthThrottle.failed}, for the address's delay. The
   * guesser learns the result only after the wait; callers answer the right
   * credentials without calling this, so the owner never waits.
   *
   * @param address The client's IP address.
   * @param signal Ends the wait at once (the server is stopping).
   * @returns Resolves when the answer may go; at once when there is no
   * delay, when `signal` has aborted, or when the address already has
   * `maxHeld` answers held back.
   */
  async hold(address: string, signal: AbortSignal): Promise<void> {
    const delay = this.delay(address);
    const held = this.#held.get(address) ?? 0;
    if (delay === 0 || held >= this.#maxHeld) return;
    this.#held.set(address, held + 1);
    try {
      await sleep(delay, signal);
    } finally {
      const left = (this.#held.get(address) ?? 1) - 1;
      if (left === 0) this.#held.delete(address);
      else this.#held.set(address, left);
    }
  }

  #current(address: string): Record | undefined {
    const record = this.#records.get(address);
    if (record && this.#now() - record.last > this.#forgetAfter) {
      this.#records.delete(address);
      return undefined;
    }
    return record;
  }
}

/** An IPv4 address as IPv4 even when a dual-stack socket reports it IPv4-mapped (`::ffff:a.b.c.d`). */
function plainAddress(address: string): string {
  return address.toLowerCase().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, "");
}
