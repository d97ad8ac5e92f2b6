/**
 * Structured logging: one line per event on stderr, as `text` (timestamp,
 * level, event, key=value fields) or `json` (one object per line).
 *
 * Every part of socketproxy logs through a {@linkcode Logger}, naming the
 * event (`session.created`) and passing its facts as fields. Secrets are never
 * passed to a logger, so they cannot appear in a log line.
 *
 * @module
 */

/** Severity of a log line, from most to least verbose. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Output shape of log lines. */
export type LogFormat = "text" | "json";

/** The facts of one event. `undefined` fields are left out. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

/** One event as handed to a {@linkcode LogSink}. */
export interface LogRecord {
  /** When the event happened. */
  time: Date;
  /** Its severity. */
  level: LogLevel;
  /** Dotted event name such as `session.attached`. */
  event: string;
  /** The facts of the event. */
  fields: LogFields;
}

/** Receives every record at or above the logger's level, already formatted. */
export type LogSink = (line: string, record: LogRecord) => void;

/** The accepted values of `--log-level`, most verbose first. */
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/** The accepted values of `--log-format`. */
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

/** Options for {@linkcode Logger}. */
export interface LoggerOptions {
  /**
   * Lowest level written.
   * @default {"info"}
   */
  level?: LogLevel;
  /**
   * Line format.
   * @default {"text"}
   */
  format?: LogFormat;
  /**
   * Where lines go.
   * @default {writes each line to stderr}
   */
  sink?: LogSink;
}

const encoder = new TextEncoder();

/** Writes a line to stderr in full, synchronously, so lines never interleave. */
function writeStderr(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let written = 0;
  try {
    while (written < bytes.length) {
      written += Deno.stderr.writeSync(bytes.subarray(written));
    }
  } catch {
    // A closed stderr must not take the server down with it.
  }
}

/** Quotes a text value when it would not read back as one token. */
function formatValue(value: string | number | boolean | null): string {
  if (typeof value !== "string") return String(value);
  return /^[\x21-\x7e]+$/.test(value) && !value.includes('"') ? value : JSON.stringify(value);
}

/**
 * Formats one record as a text line:
 * `2026-11-25T10:00:00.000Z INFO session.created id=abc peer=127.0.0.1:5000`.
 *
 * @param record The record to format.
 * @returns The line, without a trailing newline.
 */
export function formatText(record: LogRecord): string {
  let line = `${record.time.toISOString()} ${record.level.toUpperCase()} ${record.event}`;
  for (const [key, value] of Object.entries(record.fields)) {
    if (value !== undefined) line += ` ${key}=${formatValue(value)}`;
  }
  return line;
}

/**
 * Formats one record as a JSON line with `time`, `level` and `event` first.
 *
 * @param record The record to format.
 * @returns The line, without a trailing newline.
 */
export function formatJson(record: LogRecord): string {
  const object: Record<string, unknown> = {
    time: record.time.toISOString(),
    level: record.level,
    event: record.event,
  };
  for (const [key, value] of Object.entries(record.fields)) {
    // A field never hides the record's own time, level or event.
    object[key in object ? `field_${key}` : key] = value;
  }
  return JSON.stringify(object);
}

/**
 * A leveled, structured logger.
 *
 * @example Log a session event
 * ```ts
 * import { Logger } from "./log.ts";
 *
 * const lines: string[] = [];
 * const log = new Logger({ sink: (line) => lines.push(line) });
 * log.info("session.created", { id: "abc", peer: "127.0.0.1:5000" });
 * ```
 */
export class Logger {
  #threshold: number;
  #format: (record: LogRecord) => string;
  #sink: LogSink;

  /**
   * Creates a logger.
   *
   * @param options Level, format and sink.
   */
  constructor(options: LoggerOptions = {}) {
    this.#threshold = LOG_LEVELS.indexOf(options.level ?? "info");
    this.#format = options.format === "json" ? formatJson : formatText;
    this.#sink = options.sink ?? writeStderr;
  }

  /**
   * Whether lines of this level are written, to skip building costly fields.
   *
   * @param level The level to test.
   * @returns `true` when the level is at or above the threshold.
   */
  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) >= this.#threshold;
  }

  /**
   * Logs one event.
   *
   * @param level Severity.
   * @param event Dotted event name.
   * @param fields Facts of the event.
   */
  log(level: LogLevel, event: string, fields: LogFields = {}): void {
    if (!this.enabled(level)) return;
    const record: LogRecord = { time: new Date(), level, event, fields };
    this.#sink(this.#format(record), record);
  }

  /** Logs at `debug` level. See {@linkcode Logger.log}. */
  debug(event: string, fields?: LogFields): void {
    this.log("debug", event, fields);
  }

  /** Logs at `info` level. See {@linkcode Logger.log}. */
  info(event: string, fields?: LogFields): void {
    this.log("info", event, fields);
  }

  /** Logs at `warn` level. See {@linkcode Logger.log}. */
  warn(event: string, fields?: LogFields): void {
    this.log("warn", event, fields);
  }

  /** Logs at `error` level. See {@linkcode Logger.log}. */
  error(event: string, fields?: LogFields): void {
    this.log("error", event, fields);
  }
}

/**
 * Writes at most one warning an interval for each event, so that a flood
 * of refused requests cannot flood the log; the line that gets through
 * says how many were held back before it (`held_back`).
 *
 * @example
 * ```ts
 * import { Logger, RateLimitedLog } from "./log.ts";
 *
 * const lines: string[] = [];
 * const log = new RateLimitedLog(new Logger({ sink: (line) => lines.push(line) }));
 * log.warn("web.host_not_allowed", { host: "evil.example" });
 * log.warn("web.host_not_allowed", { host: "evil.example" });
 * console.assert(lines.length === 1);
 * ```
 */
export class RateLimitedLog {
  readonly #logger: Logger;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #events = new Map<string, { at: number; held: number }>();

  /**
   * Creates a rate-limited view of a logger.
   *
   * @param logger Where the lines go.
   * @param options The shortest time between two lines of one event (default 10 s), and a clock for tests.
   */
  constructor(logger: Logger, options: { intervalMs?: number; now?: () => number } = {}) {
    this.#logger = logger;
    this.#intervalMs = options.intervalMs ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Logs a warning, unless one of `event` was logged within the interval.
   *
   * @param event A fixed event name (one entry is kept for each name).
   * @param fields Facts of the event.
   */
  warn(event: string, fields: LogFields = {}): void {
    const now = this.#now();
    const last = this.#events.get(event);
    if (last && now - last.at < this.#intervalMs) {
      last.held++;
      return;
    }
    this.#events.set(event, { at: now, held: 0 });
    this.#logger.warn(event, last?.held ? { ...fields, held_back: last.held } : fields);
  }
}

/**
 * Describes a caught error in a few words for a log field, without a stack.
 *
 * @param error What was caught.
 * @returns For example `ConnectionReset: Connection reset by peer (os error 104)`.
 */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
