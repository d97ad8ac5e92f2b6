/**
 * The status report in the Prometheus text exposition format (version
 * 0.0.4), as served by the admin port's `GET /metrics`.
 *
 * @module
 */

import type { StatusReport } from "../proxy/status_report.ts";

/** The media type of {@linkcode formatMetrics}'s output. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

type Sample = [labels: Record<string, string>, value: number];

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function metric(
  name: string,
  type: "counter" | "gauge",
  help: string,
  samples: Sample[] | number,
): string {
  const rows = typeof samples === "number" ? [[{}, samples] as Sample] : samples;
  let text = `# HELP socketproxy_${name} ${help}\n# TYPE socketproxy_${name} ${type}\n`;
  for (const [labels, value] of rows) {
    const pairs = Object.entries(labels).map(([key, label]) => `${key}="${escapeLabel(label)}"`);
    text += `socketproxy_${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${value}\n`;
  }
  return text;
}

/**
 * Formats a status report as Prometheus metrics, all named `socketproxy_*`.
 *
 * @param report The report.
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
export function formatMetrics(report: StatusReport): string {
  const { totals, limits } = report;
  return [
    metric("info", "gauge", "Version of the running server.", [[{ version: report.version }, 1]]),
    metric("uptime_seconds", "gauge", "Seconds since the server started.", report.uptimeSeconds),
    metric(
      "sessions",
      "gauge",
      "Sessions open now, by state (closed: the destination has closed, output awaits a client).",
      [
        [{ state: "attached" }, totals.sessionsAttached],
        [{ state: "detached" }, totals.sessionsDetached],
        [{ state: "closed" }, totals.sessionsDestinationClosed],
      ],
    ),
    metric("sessions_created_total", "counter", "Sessions created.", totals.sessionsCreated),
    metric(
      "sessions_ended_total",
      "counter",
      "Sessions closed, for any reason.",
      totals.sessionsEnded,
    ),
    metric(
      "sessions_expired_total",
      "counter",
      "Sessions ended by the idle timeout.",
      totals.sessionsExpired,
    ),
    metric("connections", "gauge", "Client connections open now.", totals.connectionsOpen),
    metric(
      "connections_accepted_total",
      "counter",
      "Client connections accepted.",
      totals.connectionsAccepted,
    ),
    metric("input_bytes_total", "counter", "Input bytes received from clients.", totals.bytesIn),
    metric(
      "output_bytes_total",
      "counter",
      "Output bytes read from destinations.",
      totals.bytesOut,
    ),
    metric("buffered_bytes", "gauge", "Output bytes retained now.", totals.bufferedBytes),
    metric("gaps_total", "counter", "Resumes refused with ERR gap.", totals.gaps),
    metric(
      "auth_failures_total",
      "counter",
      "Hellos refused for an unknown session or a wrong secret.",
      totals.authFailures,
    ),
    metric("max_sessions", "gauge", "The session limit.", limits.maxSessions),
    metric("buffer_limit_bytes", "gauge", "Retained output limit per session.", limits.bufferBytes),
  ].join("");
}
