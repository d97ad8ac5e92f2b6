/**
 * What the browser terminal's telnet engine reports besides display and
 * reply bytes: the {@linkcode TelnetEvent}s of `Telnet.receive`, and the
 * names under which the page hands some of them on to the embedding site
 * ({@linkcode PAGE_EVENTS}).
 *
 * @module
 */

import type { TelnetCharset } from "./telnet_charset.ts";
import type { GmcpEvent, MsdpEvent, MsspEvent } from "./telnet_messages.ts";

/**
 * A prompt ends here: the server sent IAC EOR (RFC 885) or IAC GA (RFC 854)
 * after it. `at` is the offset in this call's `display` where the prompt
 * ends, so `display.subarray(0, at)` ends with the prompt.
 */
export interface PromptEvent {
  /** The event's kind. */
  type: "prompt";
  /** Offset in the `display` of the same {@linkcode Telnet.receive} call. */
  at: number;
  /** Which mark the server used. */
  mark: "eor" | "ga";
}

/**
 * The charset in force changed, agreed with CHARSET: from now on the page
 * decodes and encodes text in it ({@linkcode Telnet.decode} and
 * {@linkcode Telnet.encode} follow it).
 */
export interface CharsetEvent {
  /** The event's kind. */
  type: "charset";
  /** The charset in force from now on. */
  charset: TelnetCharset;
}

/**
 * An option was turned on or off: `local` options we perform, `remote` ones
 * the server performs. The page can, say, send GMCP once GMCP is on.
 */
export interface OptionEvent {
  /** The event's kind. */
  type: "option";
  /** The option's code (see {@linkcode TELNET_OPTION}). */
  option: number;
  /** Who performs it. */
  side: "local" | "remote";
  /** Whether it is on now. */
  enabled: boolean;
}

/** What {@linkcode Telnet.receive} reports besides display and reply bytes. */
export type TelnetEvent =
  | PromptEvent
  | GmcpEvent
  | MsdpEvent
  | MsspEvent
  | CharsetEvent
  | OptionEvent;

/**
 * The names under which the page dispatches events to the embedding site:
 * `window` `CustomEvent`s whose `detail` is the event, and `postMessage` to a
 * parent frame as `{ type: name, detail: event }`.
 */
export const PAGE_EVENTS = {
  gmcp: "socketproxy:gmcp",
  msdp: "socketproxy:msdp",
  mssp: "socketproxy:mssp",
  prompt: "socketproxy:prompt",
} as const;

/**
 * The page event name of an engine event, from {@linkcode PAGE_EVENTS}.
 *
 * @param event An event from {@linkcode Telnet.receive}.
 * @returns Its name, or `undefined` for events the page keeps to itself
 *   (`option`, `charset`).
 *
 * @example
 * ```ts
 * import { pageEventName } from "./telnet.ts";
 *
 * console.assert(pageEventName({ type: "prompt", at: 3, mark: "ga" }) === "socketproxy:prompt");
 * ```
 */
export function pageEventName(event: TelnetEvent): string | undefined {
  switch (event.type) {
    case "gmcp":
    case "msdp":
    case "mssp":
    case "prompt":
      return PAGE_EVENTS[event.type];
    default:
      return undefined;
  }
}
