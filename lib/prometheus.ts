/**
 * The Prometheus text exposition format (version 0.0.4), written once for
 * both of socketproxy's metrics ports: the admin port's `/metrics`
 * (lib/admin/metrics.ts) and the gateway's `web --metrics` port
 * (lib/gateway/metrics.ts). Every metric is named `socketproxy_*`: the
 * prefix is added here.
 *
 * @module
 */

import process from "node:process";

/** The media type of {@linkcode formatPrometheus}'s output. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** One sample: its labels and its value. */
export type Sample = readonly [labels: Readonly<Record<string, string>>, value: number];

/** A counter or a gauge and its samples. */
export interface ValueMetric {
  /** The name after `socketproxy_` (or the whole name, with `standard`), such as `sessions_created_total`. */
  name: string;
  /** A counter only goes up (until a restart); a gauge is a value now. */
  type: "counter" | "gauge";
  /** One sentence: what is counted or measured. */
  help: string;
  /** One unlabelled value, or one sample per label set. */
  samples: number | readonly Sample[];
  /**
   * A name every Prometheus client library exports (`process_*`): written
   * as it is, without the `socketproxy_` prefix.
   * @default {false}
   */
  standard?: boolean;
}

/** A histogram and its label sets. */
export interface HistogramMetric {
  /** The name after `socketproxy_`, such as `resume_duration_seconds`. */
  name: string;
  /** The metric type. */
  type: "histogram";
  /** One sentence: what is measured. */
  help: string;
  /** One unlabelled histogram, or one per label set. */
  samples: Histogram | readonly (readonly [Readonly<Record<string, string>>, Histogram])[];
}

/** A metric and its samples. */
export type Metric = ValueMetric | HistogramMetric;

/** The default buckets of the official Prometheus client libraries, in seconds. */
export const DEFAULT_BUCKETS: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/**
 * Observations counted into buckets, as a Prometheus histogram: each
 * bucket counts the observations at or below its upper bound.
 *
 * @example
 * ```ts
 * import { Histogram } from "./prometheus.ts";
 *
 * const histogram = new Histogram([0.1, 1]);
 * histogram.observe(0.05);
 * histogram.observe(2);
 * console.assert(histogram.count === 2 && histogram.cumulative()[0] === 1);
 * ```
 */
export class Histogram {
  /** The upper bounds, in increasing order (`+Inf` is implied). */
  readonly bounds: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  /**
   * Creates an empty histogram.
   *
   * @param bounds The bucket upper bounds, increasing.
   */
  constructor(bounds: readonly number[] = DEFAULT_BUCKETS) {
    this.bounds = bounds;
    this.#counts = new Array(bounds.length).fill(0);
  }

  /** Observations so far. */
  get count(): number {
    return this.#count;
  }

  /** The sum of all observations. */
  get sum(): number {
    return this.#sum;
  }

  /**
   * Counts one observation.
   *
   * @param value The value, such as a duration in seconds.
   */
  observe(value: number): void {
    this.#count++;
    this.#sum += value;
    const bucket = this.bounds.findIndex((bound) => value <= bound);
    if (bucket >= 0) this.#counts[bucket] = (this.#counts[bucket] ?? 0) + 1;
  }

  /**
   * Counts the time since `startedAt` (a `performance.now()` reading), in seconds.
   *
   * @param startedAt When it began.
   */
  observeSince(startedAt: number): void {
    this.observe((performance.now() - startedAt) / 1000);
  }

  /** @returns The observations at or below each bound, in the order of {@linkcode bounds}. */
  cumulative(): number[] {
    let total = 0;
    return this.#counts.map((count) => total += count);
  }
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
  for (const metric of metrics) {
    const name = metric.type !== "histogram" && metric.standard
      ? metric.name
      : `socketproxy_${metric.name}`;
    text += `# HELP ${name} ${metric.help}\n# TYPE ${name} ${metric.type}\n`;
    if (metric.type === "histogram") {
      const sets = metric.samples instanceof Histogram
        ? [[{}, metric.samples] as const]
        : metric.samples;
      for (const [labels, histogram] of sets) text += formatHistogram(name, labels, histogram);
      continue;
    }
    const rows: readonly Sample[] = typeof metric.samples === "number"
      ? [[{}, metric.samples]]
      : metric.samples;
    for (const [labels, value] of rows) text += `${name}${formatLabels(labels)} ${value}\n`;
  }
  return text;
}

function formatHistogram(
  name: string,
  labels: Readonly<Record<string, string>>,
  histogram: Histogram,
): string {
  let text = "";
  const cumulative = histogram.cumulative();
  for (const [index, bound] of histogram.bounds.entries()) {
    text += `${name}_bucket${formatLabels({ ...labels, le: String(bound) })} ${
      cumulative[index]
    }\n`;
  }
  text += `${name}_bucket${formatLabels({ ...labels, le: "+Inf" })} ${histogram.count}\n`;
  text += `${name}_sum${formatLabels(labels)} ${histogram.sum}\n`;
  text += `${name}_count${formatLabels(labels)} ${histogram.count}\n`;
  return text;
}

function formatLabels(labels: Readonly<Record<string, string>>): string {
  const pairs = Object.entries(labels).map(([key, label]) => `${key}="${escapeLabel(label)}"`);
  return pairs.length ? `{${pairs.join(",")}}` : "";
}

/**
 * The process figures every official Prometheus client library exports,
 * under their standard names: start time, CPU seconds, resident memory,
 * open and most file descriptors (the last two where `/proc` tells, on Linux).
 *
 * @returns The metrics, in the order to write them.
 */
export function processMetrics(): Metric[] {
  const cpu = process.cpuUsage();
  const metrics: Metric[] = [
    {
      name: "process_start_time_seconds",
      type: "gauge",
      help: "Start time of the process since the Unix epoch, in seconds.",
      samples: Math.round(performance.timeOrigin) / 1000,
      standard: true,
    },
    {
      name: "process_cpu_seconds_total",
      type: "counter",
      help: "Total user and system CPU time spent, in seconds.",
      samples: (cpu.user + cpu.system) / 1e6,
      standard: true,
    },
    {
      name: "process_resident_memory_bytes",
      type: "gauge",
      help: "Resident memory size, in bytes.",
      samples: Deno.memoryUsage().rss,
      standard: true,
    },
  ];
  const open = openDescriptors();
  if (open !== null) {
    metrics.push({
      name: "process_open_fds",
      type: "gauge",
      help: "Open file descriptors.",
      samples: open,
      standard: true,
    });
  }
  const most = maxDescriptors();
  if (most !== null) {
    metrics.push({
      name: "process_max_fds",
      type: "gauge",
      help: "The most file descriptors the process may open.",
      samples: most,
      standard: true,
    });
  }
  return metrics;
}

/** Open descriptors, from `/proc/self/fd`; `null` where it cannot be read. */
function openDescriptors(): number | null {
  try {
    let count = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) count++;
    return count - 1; // the directory being read
  } catch {
    return null;
  }
}

/** The soft descriptor limit, from `/proc/self/limits`; `null` where it cannot be read. */
function maxDescriptors(): number | null {
  try {
    const limits = Deno.readTextFileSync("/proc/self/limits");
    const soft = /^Max open files\s+(\d+)/m.exec(limits)?.[1];
    return soft === undefined ? null : Number(soft);
  } catch {
    return null;
  }
}

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}
