/**
 * Server-wide counters, kept as plain numbers that the byte path increments
 * and the status report reads, and the durations the server measures, as
 * histograms for the admin port's `/metrics`.
 *
 * @module
 */

import { Histogram } from "../prometheus.ts";

/** Durations the server measures, in seconds. */
export interface Timings {
  /** A `RESUME`: its hello read to its reply written (the guessing throttle's waits included). */
  resume: Histogram;
  /** An acknowledged attachment (a poll): attached to detached. */
  poll: Histogram;
  /** A `NEW`'s destination connect, when it succeeds. */
  connect: Histogram;
}

/** Totals since the server started. */
export interface Counters {
  /** Client connections accepted on the proxy port. */
  connectionsAccepted: number;
  /** Input bytes received from clients. */
  bytesIn: number;
  /** Output bytes read from destinations. */
  bytesOut: number;
  /** Sessions created. */
  sessionsCreated: number;
  /** Sessions ended, for any reason. */
  sessionsEnded: number;
  /** Sessions ended by the idle timeout. */
  sessionsExpired: number;
  /** Resumes refused with `ERR gap`. */
  gaps: number;
  /** Hellos refused for an unknown id or a wrong secret. */
  authFailures: number;
  /** Durations, as histograms. */
  readonly timings: Timings;
  /** Sessions created, by destination name. */
  readonly sessionsByDestination: Map<string, number>;
}

/**
 * Creates a set of counters, all zero.
 *
 * @returns The counters.
 */
export function newCounters(): Counters {
  return {
    connectionsAccepted: 0,
    bytesIn: 0,
    bytesOut: 0,
    sessionsCreated: 0,
    sessionsEnded: 0,
    sessionsExpired: 0,
    gaps: 0,
    authFailures: 0,
    timings: { resume: new Histogram(), poll: new Histogram(), connect: new Histogram() },
    sessionsByDestination: new Map(),
  };
}
