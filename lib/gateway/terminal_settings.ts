/**
 * How the browser page should speak to one destination: telnet or raw
 * bytes, the charset, what Enter sends and whether the page echoes what is
 * typed. The gateway is told these per destination name (`web
 * --terminal=NAME:...`) and hands them to the page (`GET /api/terminal`)
 * before it connects; the wire protocol to the server does not carry them.
 *
 * This file is imported by the page too (web/app.ts): it uses no Deno API.
 *
 * @module
 */

import { DESTINATION_NAME_PATTERN } from "../protocol.ts";
import { normalizeCharset, type TelnetCharset } from "../../web/telnet.ts";

/** How the page treats a destination's bytes. */
export type TerminalMode = "telnet" | "raw";

/** What the page sends when Enter is pressed. */
export type LineEnding = "crlf" | "lf" | "cr";

/** A destination's terminal settings, as the gateway hands them to the page. */
export interface TerminalSettings {
  /**
   * `telnet`: the page's telnet engine (negotiation, GMCP, prompt marks);
   * `raw`: bytes as they are, no telnet parsing, for a shell on a pty or
   * any service that does not speak telnet.
   */
  mode: TerminalMode;
  /**
   * The charset the destination's text is in, and the page's input is sent
   * in. In telnet mode, CHARSET negotiation may switch to UTF-8.
   */
  charset: TelnetCharset;
  /**
   * What Enter sends: `crlf`, `lf` or `cr`. In telnet mode `cr` goes out as
   * CR NUL, as telnet wants a bare CR.
   */
  lineEnding: LineEnding;
  /**
   * Whether the page shows the lines it sends itself (line mode on). In
   * telnet mode the server's WILL ECHO turns it off while it lasts.
   */
  localEcho: boolean;
}

/** The settings of a telnet destination, and of every destination the gateway is not told about. */
export const TELNET_TERMINAL: Readonly<TerminalSettings> = Object.freeze({
  mode: "telnet",
  charset: "utf-8",
  lineEnding: "crlf",
  localEcho: true,
});

/** The settings a raw destination starts from: as a terminal is, Enter is CR and the destination echoes. */
export const RAW_TERMINAL: Readonly<TerminalSettings> = Object.freeze({
  mode: "raw",
  charset: "utf-8",
  lineEnding: "cr",
  localEcho: false,
});

const MODES: readonly TerminalMode[] = ["telnet", "raw"];
const LINE_ENDINGS: readonly LineEnding[] = ["crlf", "lf", "cr"];
const TRUE_WORDS: ReadonlySet<string> = new Set(["true", "on", "yes", "1"]);
const FALSE_WORDS: ReadonlySet<string> = new Set(["false", "off", "no", "0"]);
/** Setting names as written on the command line, camelCase ones accepted too. */
const KEYS: Readonly<Record<string, keyof TerminalSettings>> = {
  "mode": "mode",
  "charset": "charset",
  "line-ending": "lineEnding",
  "lineending": "lineEnding",
  "local-echo": "localEcho",
  "localecho": "localEcho",
};

/** One `--terminal` value, parsed: the destination's name and its settings. */
export interface NamedTerminalSettings {
  /** The destination name, as the server knows it. */
  name: string;
  /** Its settings, the mode's defaults filled in. */
  settings: TerminalSettings;
}

/**
 * Parses one `--terminal` value: `NAME:key=value,...`, with keys `mode`
 * (`telnet` or `raw`), `charset` (`utf-8`, `latin1`, `cp437` and their
 * aliases), `line-ending` (`crlf`, `lf`, `cr`) and `local-echo` (`on` or
 * `off`, `true` or `false`). What is not given is the mode's default
 * ({@linkcode TELNET_TERMINAL} or {@linkcode RAW_TERMINAL}); `NAME` alone
 * means telnet defaults.
 *
 * @param value The flag's value.
 * @returns The name and its settings.
 * @throws {TypeError} When the value is not `NAME:key=value,...`, the name
 *   is not a destination name, or a key is unknown or repeated.
 * @throws {RangeError} When a value is not one its key takes.
 *
 * @example
 * ```ts
 * import { parseTerminalSettings } from "./terminal_settings.ts";
 *
 * const { name, settings } = parseTerminalSettings("shell:mode=raw,charset=cp437");
 * console.assert(name === "shell" && settings.mode === "raw" && settings.charset === "cp437");
 * console.assert(settings.lineEnding === "cr" && settings.localEcho === false);
 * ```
 */
export function parseTerminalSettings(value: string): NamedTerminalSettings {
  const colon = value.indexOf(":");
  const name = colon < 0 ? value : value.slice(0, colon);
  if (!DESTINATION_NAME_PATTERN.test(name)) {
    throw new TypeError(
      `Cannot parse terminal settings ${JSON.stringify(value)}: ` +
        "expected NAME:key=value,... with a destination name of 1 to 64 of A-Z a-z 0-9 _ . -",
    );
  }
  return { name, settings: parseTerminalKeys(colon < 0 ? "" : value.slice(colon + 1), value) };
}

/**
 * Parses the `key=value,...` part of a `--terminal` value, the mode's
 * defaults filled in (`web --terminal=mode=raw` gives it without a name,
 * for the default destination).
 *
 * @param list The pairs; empty for telnet defaults.
 * @param value The whole value, for messages.
 * @returns The settings.
 * @throws {TypeError} When a key is unknown or repeated.
 * @throws {RangeError} When a value is not one its key takes.
 */
export function parseTerminalKeys(list: string, value: string = list): TerminalSettings {
  const given: Partial<Record<keyof TerminalSettings, string>> = {};
  for (const pair of list === "" ? [] : list.split(",")) {
    const equals = pair.indexOf("=");
    const rawKey = (equals < 0 ? pair : pair.slice(0, equals)).trim();
    const key = KEYS[rawKey.toLowerCase()];
    if (equals < 0 || key === undefined || !Object.hasOwn(KEYS, rawKey.toLowerCase())) {
      throw new TypeError(
        `Cannot parse terminal settings ${JSON.stringify(value)}: ` +
          `unknown setting ${JSON.stringify(pair)} (use mode, charset, line-ending, local-echo)`,
      );
    }
    if (given[key] !== undefined) {
      throw new TypeError(
        `Cannot parse terminal settings ${JSON.stringify(value)}: ${rawKey} given twice`,
      );
    }
    given[key] = pair.slice(equals + 1).trim();
  }
  return settingsFrom(
    given,
    (detail) =>
      new RangeError(`Cannot parse terminal settings ${JSON.stringify(value)}: ${detail}`),
  );
}

/**
 * Checks settings the page received from the gateway (`GET
 * /api/terminal`), filling in the mode's defaults for what is missing.
 *
 * @param value The parsed JSON.
 * @returns The settings.
 * @throws {TypeError} When `value` is not an object.
 * @throws {RangeError} When a field holds a value it does not take.
 *
 * @example
 * ```ts
 * import { terminalSettingsOf } from "./terminal_settings.ts";
 *
 * const settings = terminalSettingsOf({ mode: "raw", lineEnding: "lf", localEcho: true });
 * console.assert(settings.charset === "utf-8" && settings.lineEnding === "lf");
 * ```
 */
export function terminalSettingsOf(value: unknown): TerminalSettings {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError("Terminal settings must be an object");
  }
  const record = value as Record<string, unknown>;
  const given: Partial<Record<keyof TerminalSettings, string>> = {};
  for (const key of ["mode", "charset", "lineEnding", "localEcho"] as const) {
    const field = record[key];
    if (field === undefined) continue;
    if (typeof field !== "string" && typeof field !== "boolean") {
      throw new RangeError(`Terminal setting ${key} must be a string: got ${String(field)}`);
    }
    given[key] = String(field);
  }
  return settingsFrom(given, (detail) => new RangeError(`Bad terminal settings: ${detail}`));
}

/** Settings from the given values (as text), the mode's defaults for the rest. */
function settingsFrom(
  given: Partial<Record<keyof TerminalSettings, string>>,
  fail: (detail: string) => Error,
): TerminalSettings {
  const mode = given.mode ?? "telnet";
  if (!MODES.includes(mode as TerminalMode)) {
    throw fail(`mode must be telnet or raw: got ${JSON.stringify(mode)}`);
  }
  const base = mode === "raw" ? RAW_TERMINAL : TELNET_TERMINAL;
  const charset = given.charset === undefined ? base.charset : normalizeCharset(given.charset);
  if (charset === undefined) {
    throw fail(`charset must be utf-8, latin1 or cp437: got ${JSON.stringify(given.charset)}`);
  }
  const lineEnding = given.lineEnding ?? base.lineEnding;
  if (!LINE_ENDINGS.includes(lineEnding as LineEnding)) {
    throw fail(`line-ending must be crlf, lf or cr: got ${JSON.stringify(lineEnding)}`);
  }
  let localEcho = base.localEcho;
  if (given.localEcho !== undefined) {
    const word = given.localEcho.toLowerCase();
    if (!TRUE_WORDS.has(word) && !FALSE_WORDS.has(word)) {
      throw fail(`local-echo must be on or off: got ${JSON.stringify(given.localEcho)}`);
    }
    localEcho = TRUE_WORDS.has(word);
  }
  return { mode: mode as TerminalMode, charset, lineEnding: lineEnding as LineEnding, localEcho };
}
