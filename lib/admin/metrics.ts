/**
 * The status report in the Prometheus text exposition format (version
 * 0.0.4), as served by the admin port's `GET /metrics`; the format itself
 * is written in lib/prometheus.ts.
 *
 * @module
 */

import { formatPrometheus, type Metric, processMetrics } from "../prometheus.ts";
import type { StatusReport } from "../proxy/status_report.ts";
import type { Timings } from "../proxy/counters.ts";

export { METRICS_CONTENT_TYPE } from "../prometheus.ts";

/**
 * Formats a status report as Prometheus metrics, named `socketproxy_*`,
 * with the server's duration histograms and the standard `process_*` figures.
 *
 * @param report The report.
 * @param timings The server's duration histograms.
 * @returns The exposition text.
 *
 * @example
 * ```ts ignore
 * const text = formatMetrics(collectStatus(server, identity));
 * // # HELP socketproxy_sessions Sessions open now, by state.
 * // # TYPE socketproxy_sessions gauge
 * // socketproxy_sessions{state="attached"} 1
 * ```
 */
export function formatMetrics(report: StatusReport, timings?: Timings): string {
  const { totals, limits } = report;
  return formatPrometheus([
    ...(timings ? timingMetrics(timings) : []),
    ...processMetrics(),
    {
      name: "info",
      type: "gauge",
      // The node name is here only, not on every series: Prometheus' practice
      // for an identifying constant is an info metric that queries join on
      // (`* on (job, instance) group_left (node) socketproxy_info`).
      help: "Version of the running server, and its node name (empty without --node); " +
        "join on job and instance to label other series by node.",
      samples: [[{ version: report.version, node: report.node ?? "" }, 1]],
    },
    {
      name: "draining",
      type: "gauge",
      help: "1 while the server drains (takes no new sessions), else 0.",
      samples: report.status === "draining" ? 1 : 0,
    },
    {
      name: "uptime_seconds",
      type: "gauge",
      help: "Seconds since the server started.",
      samples: report.uptimeSeconds,
    },
    {
      name: "sessions",
      type: "gauge",
      help:
        "Sessions open now, by state (closed: the destination has closed, output awaits a client).",
      samples: [
        [{ state: "attached" }, totals.sessionsAttached],
        [{ state: "detached" }, totals.sessionsDetached],
        [{ state: "closed" }, totals.sessionsDestinationClosed],
      ],
    },
    {
      name: "destination_sessions",
      type: "gauge",
      help: "Sessions open now, by destination (default: the positional one).",
      samples: report.destinations.map((
        target,
      ) => [{ destination: target.name }, target.sessionsOpen]),
    },
    {
      name: "destination_sessions_created_total",
      type: "counter",
      help: "Sessions created, by destination.",
      samples: report.destinations.map((target) => [
        { destination: target.name },
        target.sessionsCreated,
      ]),
    },
    {
      name: "sessions_created_total",
      type: "counter",
      help: "Sessions created.",
      samples: totals.sessionsCreated,
    },
    {
      name: "sessions_ended_total",
      type: "counter",
      help: "Sessions closed, for any reason.",
      samples: totals.sessionsEnded,
    },
    {
      name: "sessions_expired_total",
      type: "counter",
      help: "Sessions ended by the idle timeout.",
      samples: totals.sessionsExpired,
    },
    {
      name: "connections",
      type: "gauge",
      help: "Client connections open now.",
      samples: totals.connectionsOpen,
    },
    {
      name: "connections_accepted_total",
      type: "counter",
      help: "Client connections accepted.",
      samples: totals.connectionsAccepted,
    },
    {
      name: "input_bytes_total",
      type: "counter",
      help: "Input bytes received from clients.",
      samples: totals.bytesIn,
    },
    {
      name: "output_bytes_total",
      type: "counter",
      help: "Output bytes read from destinations.",
      samples: totals.bytesOut,
    },
    {
      name: "buffered_bytes",
      type: "gauge",
      help: "Output bytes retained now.",
      samples: totals.bufferedBytes,
    },
    {
      name: "gaps_total",
      type: "counter",
      help: "Resumes refused with ERR gap.",
      samples: totals.gaps,
    },
    {
      name: "auth_failures_total",
      type: "counter",
      help: "Hellos refused for an unknown session or a wrong secret.",
      samples: totals.authFailures,
    },
    {
      name: "max_sessions",
      type: "gauge",
      help: "The session limit.",
      samples: limits.maxSessions,
    },
    {
      name: "buffer_limit_bytes",
      type: "gauge",
      help: "Retained output limit per session.",
      samples: limits.bufferBytes,
    },
  ]);
}

/** The server's duration histograms, in seconds. */
function timingMetrics(timings: Timings): Metric[] {
  return [
    {
      name: "resume_duration_seconds",
      type: "histogram",
      help: "RESUME hellos: the hello read to the reply written, in seconds.",
      samples: timings.resume,
    },
    {
      name: "poll_duration_seconds",
      type: "histogram",
      help: "Acknowledged attachments (polls): attached to detached, in seconds.",
      samples: timings.poll,
    },
    {
      name: "destination_connect_seconds",
      type: "histogram",
      help: "Destination connects of NEW hellos that succeeded, in seconds.",
      samples: timings.connect,
    },
  ];
}
