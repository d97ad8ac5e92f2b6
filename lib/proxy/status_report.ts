/**
 * The status report: a snapshot of a running server (settings, totals and
 * one entry per session) as served by the admin port's `GET /status`, and
 * the source of its `GET /metrics`. It never contains a secret.
 *
 * @module
 */

import { formatHostPort, type HostPort } from "../address.ts";
import type { Counters } from "./counters.ts";
import type { DeliveryMode, SessionStats } from "./session.ts";

/** What a report says about one session. */
export interface SessionReport {
  /** Session id. */
  id: string;
  /** `attached` with a client, `detached` without, `closed` once the destination closed. */
  state: "attached" | "detached" | "closed";
  /** The attached client's address, or `null`. */
  client: string | null;
  /** The attached client's delivery mode, or `null`. */
  mode: DeliveryMode | null;
  /** When the session was created (ISO 8601). */
  created: string;
  /** When a client last attached (ISO 8601). */
  lastAttached: string;
  /** Seconds since the last client left; 0 while attached. */
  idleSeconds: number;
  /** Input bytes received from clients. */
  bytesIn: number;
  /** Output bytes read from the destination. */
  bytesOut: number;
  /** Output bytes retained now. */
  buffered: number;
  /** Lowest output offset a client may resume from. */
  ackFloor: number;
  /** Highest output offset sent to a client. */
  sent: number;
  /** Whether the destination connection is `open` or `closed`. */
  destination: "open" | "closed";
  /** The name of the destination (`default` for the positional one). */
  destinationName: string;
  /** Whom the session is for: the end user's address a gateway gave, or the creating client's. */
  endUser: string | null;
}

/** One destination in the report. */
export interface DestinationReport {
  /** Its name: `default` for the positional one. */
  name: string;
  /** Its address. */
  address: string;
  /** The PROXY header it is sent: `v1`, `v2`, or `null`. */
  sendProxy: "v1" | "v2" | null;
  /** Sessions open now. */
  sessionsOpen: number;
  /** Sessions created since the server started. */
  sessionsCreated: number;
}

/** The whole report. */
export interface StatusReport {
  /** socketproxy version. */
  version: string;
  /** When the server started (ISO 8601). */
  started: string;
  /** Seconds since the server started. */
  uptimeSeconds: number;
  /** `serving`; `draining` (no new sessions, resumes served); `stopping` during shutdown. */
  status: "serving" | "draining" | "stopping";
  /** The node name session ids start with, or `null`. */
  node: string | null;
  /** Where clients connect. */
  proxy: string;
  /** The admin port's address. */
  admin: string | null;
  /** The destination sessions connect to without `to=`; `null` when there are only named ones. */
  destination: string | null;
  /** Every destination, the default (`default`) first: address, PROXY header, sessions. */
  destinations: DestinationReport[];
  /** The limits in force. */
  limits: {
    bufferBytes: number;
    idleTimeoutMs: number;
    handshakeTimeoutMs: number;
    connectTimeoutMs: number;
    maxSessions: number;
  };
  /**
   * Counts of what is open now (the first six), then running totals since
   * the server started (the rest).
   */
  totals: {
    /** Sessions open now: attached, detached and destination-closed. */
    sessionsOpen: number;
    /** Open sessions with a client attached now. */
    sessionsAttached: number;
    /** Open sessions without a client, their destination still open. */
    sessionsDetached: number;
    /**
     * Open sessions without a client whose destination has closed: kept
     * until a client collects the rest of their output (state `closed`).
     */
    sessionsDestinationClosed: number;
    /** Client connections open now, in their handshake or attached. */
    connectionsOpen: number;
    /** Output bytes retained now, all sessions together. */
    bufferedBytes: number;
    /** Sessions created so far. */
    sessionsCreated: number;
    /** Sessions closed so far, for any reason (expired ones included). */
    sessionsEnded: number;
    /** Sessions closed by the idle timeout so far. */
    sessionsExpired: number;
    /** Client connections accepted so far. */
    connectionsAccepted: number;
    /** Input bytes received from clients so far. */
    bytesIn: number;
    /** Output bytes read from destinations so far. */
    bytesOut: number;
    /** Resumes refused with `ERR gap` so far. */
    gaps: number;
    /** Hellos refused for an unknown session or a wrong secret so far. */
    authFailures: number;
  };
  /** The open sessions, oldest first. */
  sessions: SessionReport[];
}

/** The facts about a server that do not change while it runs. */
export interface ServerIdentity {
  /** socketproxy version. */
  version: string;
  /** When it started (ms since the epoch). */
  startedAt: number;
  /** The admin port's address, or `null` when disabled. */
  admin: HostPort | null;
  /** The limits in force. */
  limits: StatusReport["limits"];
}

/**
 * What a report is taken from: a running proxy server (a `ProxyServer`),
 * seen only through what the report reads.
 */
export interface StatusSource {
  /** Where the server listens. */
  readonly addr: HostPort;
  /** Where it reaches the default destination. */
  readonly destination: HostPort | null;
  /** Every destination, the default first. */
  readonly destinations: readonly {
    name: string;
    addr: HostPort;
    sendProxy: "v1" | "v2" | null;
  }[];
  /** Client connections open now, in a hello or attached. */
  readonly connections: number;
  /** The server's running totals. */
  readonly counters: Counters;
  /** The open sessions. */
  readonly store: {
    list(): readonly {
      readonly id: string;
      readonly destinationName: string;
      readonly client: string | null;
      stats(): SessionStats;
    }[];
  };
}

/**
 * Takes a snapshot of a server.
 *
 * @param server The proxy server.
 * @param identity Its version, start time, admin address and limits, and whether it is stopping.
 * @returns The report.
 */
export function collectStatus(
  server: StatusSource,
  identity: ServerIdentity & { stopping?: boolean; draining?: boolean; node?: string | null },
): StatusReport {
  const stopping = identity.stopping ?? false;
  const now = Date.now();
  const sessions: SessionReport[] = server.store.list().map((session) => {
    const stats = session.stats();
    return {
      id: session.id,
      state: stats.attached ? "attached" : stats.state === "closed" ? "closed" : "detached",
      client: stats.peer,
      mode: stats.mode,
      created: new Date(stats.createdAt).toISOString(),
      lastAttached: new Date(stats.lastAttachedAt).toISOString(),
      idleSeconds: stats.detachedAt === null ? 0 : (now - stats.detachedAt) / 1000,
      bytesIn: stats.bytesIn,
      bytesOut: stats.bytesOut,
      buffered: stats.buffered,
      ackFloor: stats.floor,
      sent: stats.sent,
      destination: stats.state,
      destinationName: session.destinationName,
      endUser: session.client,
    };
  });
  const counters = server.counters;
  const count = (state: SessionReport["state"]): number =>
    sessions.filter((session) => session.state === state).length;
  return {
    version: identity.version,
    started: new Date(identity.startedAt).toISOString(),
    uptimeSeconds: (now - identity.startedAt) / 1000,
    status: stopping ? "stopping" : identity.draining ? "draining" : "serving",
    node: identity.node ?? null,
    proxy: formatHostPort(server.addr),
    admin: identity.admin ? formatHostPort(identity.admin) : null,
    destination: server.destination ? formatHostPort(server.destination) : null,
    destinations: server.destinations.map((target) => ({
      name: target.name,
      address: formatHostPort(target.addr),
      sendProxy: target.sendProxy,
      sessionsOpen: sessions.filter((session) => session.destinationName === target.name).length,
      sessionsCreated: counters.sessionsByDestination.get(target.name) ?? 0,
    })),
    limits: identity.limits,
    totals: {
      sessionsOpen: sessions.length,
      sessionsAttached: count("attached"),
      sessionsDetached: count("detached"),
      sessionsDestinationClosed: count("closed"),
      connectionsOpen: server.connections,
      bufferedBytes: sessions.reduce((sum, session) => sum + session.buffered, 0),
      sessionsCreated: counters.sessionsCreated,
      sessionsEnded: counters.sessionsEnded,
      sessionsExpired: counters.sessionsExpired,
      connectionsAccepted: counters.connectionsAccepted,
      bytesIn: counters.bytesIn,
      bytesOut: counters.bytesOut,
      gaps: counters.gaps,
      authFailures: counters.authFailures,
    },
    sessions,
  };
}
