/**
 * The logging settings every long-running command takes (`server`, `web`,
 * `demo`): one table and one reader, so their help, variables and checks
 * cannot drift apart.
 *
 * @module
 */

import { parseLogFormat, parseLogLevel } from "./config.ts";
import type { SettingSpec } from "./settings.ts";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "../log.ts";

/** `--log-level` and `--log-format`, for a command's settings table. */
export const LOG_SETTINGS = [
  {
    name: "log-level",
    kind: "string",
    value: "LEVEL",
    help: "debug, info, warn or error",
    default: "info",
    complete: LOG_LEVELS,
  },
  {
    name: "log-format",
    kind: "string",
    value: "FORMAT",
    help: "text or json",
    default: "text",
    complete: LOG_FORMATS,
  },
] as const satisfies readonly SettingSpec[];

/** The part of a command's resolved `Settings` that {@linkcode readLogSettings} reads. */
export interface LogSettingsSource {
  /** A string setting's value. */
  string(name: (typeof LOG_SETTINGS)[number]["name"]): string | undefined;
  /** Where a setting's value came from, for messages. */
  label(name: (typeof LOG_SETTINGS)[number]["name"]): string;
}

/** What {@linkcode readLogSettings} found: only what was given. */
export interface LogSettings {
  /** The level, when given. */
  logLevel?: LogLevel;
  /** The format, when given. */
  logFormat?: LogFormat;
}

/**
 * Reads `--log-level` and `--log-format` from a command's resolved settings.
 *
 * @param settings Settings of a command whose table has {@linkcode LOG_SETTINGS}.
 * @returns The values given, parsed.
 * @throws {UsageError} For an unknown level or format, naming where it came from.
 *
 * @example
 * ```ts
 * import { LOG_SETTINGS, readLogSettings } from "./log_settings.ts";
 * import { defineCommand, environmentOf, resolveSettings } from "./settings.ts";
 *
 * const spec = defineCommand({
 *   command: "example",
 *   summary: "an example",
 *   intro: "Does nothing.",
 *   settings: [...LOG_SETTINGS],
 * });
 * const settings = resolveSettings(spec, ["--log-format=json"], { env: environmentOf({}) });
 * console.assert(readLogSettings(settings).logFormat === "json");
 * ```
 */
export function readLogSettings(settings: LogSettingsSource): LogSettings {
  const found: LogSettings = {};
  const level = settings.string("log-level");
  if (level !== undefined) found.logLevel = parseLogLevel(level, settings.label("log-level"));
  const format = settings.string("log-format");
  if (format !== undefined) found.logFormat = parseLogFormat(format, settings.label("log-format"));
  return found;
}
