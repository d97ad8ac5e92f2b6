/**
 * The Prometheus text exposition format (version 0.0.4), written once for
 * both of socketproxy's metrics ports: the admin port's `/metrics`
 * (lib/admin/metrics.ts) and the gateway's `web --metrics` port
 * (lib/gateway/metrics.ts). Every metric is named `socketproxy_*`: the
 * prefix is added here.
 *
 * @module
 */

/** The media type of {@linkcode formatPrometheus}'s output. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** One sample: its labels and its value. */
export type Sample = readonly [labels: Readonly<Record<string, string>>, value: number];

/** A metric and its samples. */
export interface Metric {
  /** The name after `socketproxy_`, such as `sessions_created_total`. */
  name: string;
  /** A counter only goes up (until a restart); a gauge is a value now. */
  type: "counter" | "gauge";
  /** One sentence: what is counted or measured. */
  help: string;
  /** One unlabelled value, or one sample per label set. */
  samples: number | readonly Sample[];
}

/**
 * Formats metrics in the Prometheus text format.
 *
 * @param metrics The metrics, in the order they are written.
 * @returns The exposition text: `# HELP`, `# TYPE`, then the samples of each.
 *
 * @example
 * ```ts
 * import { formatPrometheus } from "./prometheus.ts";
 *
 * const text = formatPrometheus([
 *   { name: "gaps_total", type: "counter", help: "Resumes refused.", samples: 2 },
 * ]);
 * console.assert(text.endsWith("\nsocketproxy_gaps_total 2\n"));
 * ```
 */
export function formatPrometheus(metrics: readonly Metric[]): string {
  let text = "";
  for (const { name, type, help, samples } of metrics) {
    const rows: readonly Sample[] = typeof samples === "number" ? [[{}, samples]] : samples;
    text += `# HELP socketproxy_${name} ${help}\n# TYPE socketproxy_${name} ${type}\n`;
    for (const [labels, value] of rows) {
      const pairs = Object.entries(labels).map(([key, label]) => `${key}="${escapeLabel(label)}"`);
      text += `socketproxy_${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${value}\n`;
    }
  }
  return text;
}

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}
