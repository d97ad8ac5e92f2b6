/**
 * The client side of the telnet protocol (RFC 854, RFC 855) as MUD and BBS
 * clients speak it, for the browser terminal. It sits between the bytes the
 * proxy relays from a telnet server and the terminal emulator:
 * {@linkcode Telnet.receive} takes server bytes apart into what the terminal
 * shows, the negotiation answers to send back and the events the page hands
 * on (prompt marks, GMCP, MSDP and MSSP messages); {@linkcode Telnet.encodeInput}
 * turns keystrokes into what the server expects.
 *
 * Only standard JavaScript and the encoding API (`TextDecoder`,
 * `TextEncoder`) are used, no Deno or DOM APIs, so the same files are
 * bundled into the page and imported by the tests.
 *
 * This file is the engine, a state machine over the server's bytes. The
 * charsets are in `telnet_charset.ts`, the GMCP, MSDP and MSSP messages in
 * `telnet_messages.ts`, the events in `telnet_events.ts` and the protocol's
 * byte values in `telnet_codes.ts`; this module re-exports what the page and
 * library users need of them, so it stays the one entry point.
 *
 * The engine never asks for an option; it only answers. It agrees to ECHO,
 * SGA, EOR, GMCP, MSDP and MSSP from the server and to CHARSET in either
 * direction, performs SGA, NAWS and TTYPE (with MTTS) itself, and refuses
 * everything else, MCCP2 and MCCP3 included: a compressed stream could not be
 * resumed at a byte offset after a reload. Following RFC 1143, it answers a
 * request only when the request changes an option's state, so two peers
 * cannot loop. Every subnegotiation is bounded: 1 KiB for TTYPE, NAWS,
 * CHARSET and unknown options, {@linkcode TelnetOptions.maxMessage} for GMCP,
 * MSDP and MSSP, whose oversized messages are dropped whole.
 *
 * @module
 */

import {
  CHARSET,
  CHARSET_ACCEPTED,
  CHARSET_REJECTED,
  CHARSET_REQUEST,
  CHARSET_TTABLE_IS,
  CHARSET_TTABLE_REJECTED,
  CR,
  DO,
  DONT,
  ECHO,
  EOR,
  EOR_MARK,
  GA,
  GMCP,
  IAC,
  LF,
  MSDP,
  MSSP,
  NAWS,
  NUL,
  SB,
  SE,
  SGA,
  TTABLE_MARK,
  TTYPE,
  TTYPE_IS,
  TTYPE_SEND,
  WILL,
  WONT,
} from "./telnet_codes.ts";
import {
  chooseCharset,
  decodeText,
  encodeText,
  normalizeCharset,
  type TelnetCharset,
} from "./telnet_charset.ts";
import { encodeMsdp, type MsdpValue, parseGmcp, parseMsdp, parseMssp } from "./telnet_messages.ts";
import type { TelnetEvent } from "./telnet_events.ts";

export { TELNET_OPTION } from "./telnet_codes.ts";
export { decodeText, encodeText, normalizeCharset, type TelnetCharset } from "./telnet_charset.ts";
export type { GmcpEvent, MsdpEvent, MsdpValue, MsspEvent } from "./telnet_messages.ts";
export {
  type CharsetEvent,
  type OptionEvent,
  PAGE_EVENTS,
  pageEventName,
  type PromptEvent,
  type TelnetEvent,
} from "./telnet_events.ts";

/** Most subnegotiation data kept for TTYPE, NAWS, CHARSET and unknown options. */
const SUBNEGOTIATION_LIMIT = 1024;
/** Default bound on one GMCP, MSDP or MSSP message. */
const MESSAGE_LIMIT = 64 * 1024;

/** Options we let the server perform. */
const REMOTE_SUPPORTED: ReadonlySet<number> = new Set([ECHO, SGA, EOR, CHARSET, MSDP, MSSP, GMCP]);
/** Options we agree to perform. */
const LOCAL_SUPPORTED: ReadonlySet<number> = new Set([SGA, TTYPE, NAWS, CHARSET]);
/** Options whose subnegotiations are messages for the page, bounded by `maxMessage`. */
const MESSAGE_OPTIONS: ReadonlySet<number> = new Set([MSDP, MSSP, GMCP]);

// Parser states, one per position inside a command.
/** Plain data. */
const DATA = 0;
/** After IAC. */
const COMMAND = 1;
/** After IAC WILL, WONT, DO or DONT: the option byte comes next. */
const OPTION = 2;
/** After IAC SB: the option byte comes next. */
const SB_OPTION = 3;
/** Inside a subnegotiation's data. */
const SB_DATA = 4;
/** After IAC inside a subnegotiation. */
const SB_COMMAND = 5;

/**
 * The capabilities the engine reports in MTTS, the MUD Terminal Type
 * Standard (tintin.mudhalla.net/protocols/mtts): the third answer to TTYPE
 * SEND is `MTTS <bits>`, the sum of the bits of what is true.
 */
export interface MttsOptions {
  /** ANSI colours (bit 1). @default true */
  ansi?: boolean;
  /** VT100 escape codes (bit 2). @default false */
  vt100?: boolean;
  /** The charset in force is UTF-8 (bit 4). @default true while the charset in force is utf-8 */
  utf8?: boolean;
  /** 256 colours (bit 8). @default true */
  colors256?: boolean;
  /** xterm mouse tracking (bit 16). @default false */
  mouseTracking?: boolean;
  /** The OSC colour palette (bit 32). @default false */
  oscColorPalette?: boolean;
  /** A screen reader is in use (bit 64). @default false */
  screenReader?: boolean;
  /**
   * The client is a proxy for many users, who may then share an address
   * (bit 128): set it when the session comes through the gateway.
   * @default false
   */
  proxy?: boolean;
  /** 24-bit colours (bit 256). @default true */
  truecolor?: boolean;
}

/** Options for {@linkcode Telnet}. */
export interface TelnetOptions {
  /** Terminal type, TTYPE's second answer (its only one without MTTS). @default "xterm-256color" */
  terminalType?: string;
  /** Initial window size for NAWS. @default { columns: 80, rows: 24 } */
  size?: { columns: number; rows: number };
  /** Client name: TTYPE's first answer and GMCP `Core.Hello`'s `client`. @default "SOCKETPROXY" */
  clientName?: string;
  /** Client version, in GMCP `Core.Hello`. @default "1.0" */
  clientVersion?: string;
  /**
   * The MTTS capabilities, or `false` to answer every TTYPE SEND with the
   * terminal type alone, as before MTTS.
   * @default {}
   */
  mtts?: MttsOptions | false;
  /**
   * The charset of a server that sends text without negotiating one (a BBS
   * in CP437, an old MUD in Latin-1). A server that negotiates CHARSET and
   * offers UTF-8 switches the engine to UTF-8; offering this charset keeps it.
   * @default "utf-8"
   */
  charset?: TelnetCharset;
  /**
   * GMCP packages sent in `Core.Supports.Set` right after `Core.Hello` when
   * the server turns GMCP on, such as `"Char 1"` or `"Room 1"`; none means
   * no `Core.Supports.Set`.
   * @default []
   */
  gmcpSupports?: readonly string[];
  /**
   * Bytes one GMCP, MSDP or MSSP message may have, from 1 024 to 16 MiB; a
   * longer one is dropped whole.
   * @default 65536
   */
  maxMessage?: number;
}
/** The result of {@linkcode Telnet.receive}. */
export interface TelnetReceived {
  /** Bytes for the terminal, telnet commands removed. */
  display: Uint8Array;
  /** Bytes to send to the server: negotiation answers, possibly none. */
  reply: Uint8Array;
  /** What happened, in stream order. */
  events: TelnetEvent[];
}
/**
 * A {@linkcode Telnet} engine's state as plain data, to keep across page
 * reloads: the options agreed and where the parser stands. Fields added
 * after the first version are optional, so an older snapshot still restores.
 */
export interface TelnetState {
  /** Options the server performs. */
  remote: number[];
  /** Options we perform. */
  local: number[];
  /** The parser's state. */
  parser: number;
  /** A WILL, WONT, DO or DONT waiting for its option. */
  verb: number;
  /** Whether the last byte shown was CR. */
  afterCr: boolean;
  /** The subnegotiation's option, or -1. */
  sbOption: number;
  /** The subnegotiation's data so far. */
  sbData: number[];
  /** Whether the subnegotiation has outgrown its limit. @default false */
  sbOverflow?: boolean;
  /** The next answer in the TTYPE cycle, from 0 to 3. @default 0 */
  ttype?: number;
  /** The charset in force. @default the engine's `charset` option */
  charset?: TelnetCharset;
}

/**
 * The telnet state of one connection, as seen from the client: the parser's
 * position in the server's byte stream, the options in force, the charset
 * and the terminal's size.
 *
 * @example Answer a server's negotiation and show its text
 * ```ts
 * import { Telnet } from "./telnet.ts";
 *
 * const telnet = new Telnet();
 * // IAC WILL ECHO, then "hi"
 * const { display, reply } = telnet.receive(new Uint8Array([255, 251, 1, 104, 105]));
 * console.assert(new TextDecoder().decode(display) === "hi");
 * console.assert(reply.join() === "255,253,1"); // IAC DO ECHO
 * console.assert(telnet.remoteEcho);
 * const input = telnet.encodeInput(new TextEncoder().encode("ls\r"));
 * console.assert(input.join() === "108,115,13,10"); // "ls" CR LF
 * ```
 *
 * @example GMCP both ways, and a prompt mark
 * ```ts
 * import { Telnet } from "./telnet.ts";
 *
 * const telnet = new Telnet({ clientName: "MYCLIENT" });
 * const gmcp = new TextEncoder().encode('Char.Vitals {"hp":10}');
 * const { events } = telnet.receive(
 *   Uint8Array.of(255, 251, 201, 255, 250, 201, ...gmcp, 255, 240, 62, 32, 255, 249),
 * );
 * // IAC WILL GMCP, the message, "> " and IAC GA
 * const message = events.find((event) => event.type === "gmcp");
 * console.assert(message?.type === "gmcp" && message.package === "Char.Vitals");
 * console.assert(events.some((event) => event.type === "prompt" && event.at === 2));
 * const bytes = telnet.sendGmcp("Core.Ping"); // IAC SB GMCP "Core.Ping" IAC SE, to send
 * console.assert(bytes.length === 14);
 * ```
 */
export class Telnet {
  #terminalType: number[];
  #clientName: number[];
  #clientVersion: string;
  #mtts: MttsOptions | false;
  #gmcpSupports: string[];
  #maxMessage: number;
  /** The charset of the `charset` option, which a snapshot of a new engine holds. */
  #initialCharset: TelnetCharset;
  /** The charset in force. */
  #charset: TelnetCharset;
  /** A streaming UTF-8 decoder for {@linkcode Telnet.decode}, made on first use. */
  #decoder: TextDecoder | null = null;
  #columns: number;
  #rows: number;
  /** Options the server performs. */
  #remote = new Set<number>();
  /** Options we perform. */
  #local = new Set<number>();
  #state = DATA;
  /** The WILL, WONT, DO or DONT waiting for its option byte. */
  #verb = 0;
  /** The last data byte shown was CR, so a NUL right after it is padding. */
  #afterCr = false;
  /** The next answer in the TTYPE cycle: client name, terminal type, MTTS, MTTS again. */
  #ttypeStep = 0;
  /** The option of the subnegotiation being read, or -1 when it has none. */
  #sbOption = -1;
  /** Grown on demand up to `#sbLimit`, so an idle engine holds little. */
  #sbData = new Uint8Array(256);
  #sbLength = 0;
  #sbLimit = SUBNEGOTIATION_LIMIT;
  /** The subnegotiation has outgrown its limit: its excess is gone. */
  #sbOverflow = false;

  /**
   * Creates the state of a new connection, with every option off.
   *
   * @param options Names, terminal type, size, MTTS bits, charset and limits.
   * @throws {TypeError} When the terminal type or client name is not
   *   printable ASCII, or a GMCP package is not a string.
   * @throws {RangeError} When the size is not two integers from 0 to 65535,
   *   the charset is unknown or `maxMessage` is out of range.
   */
  constructor(options: TelnetOptions = {}) {
    const terminalType = options.terminalType ?? "xterm-256color";
    if (!/^[\x21-\x7e]+$/.test(terminalType)) {
      throw new TypeError(
        `Terminal type must be printable ASCII without spaces: got ${JSON.stringify(terminalType)}`,
      );
    }
    this.#terminalType = asciiBytes(terminalType);
    const clientName = options.clientName ?? "SOCKETPROXY";
    if (!/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/.test(clientName)) {
      throw new TypeError(`Client name must be printable ASCII: got ${JSON.stringify(clientName)}`);
    }
    this.#clientName = asciiBytes(clientName);
    this.#clientVersion = String(options.clientVersion ?? "1.0");
    this.#mtts = options.mtts === false ? false : { ...options.mtts };
    const supports = options.gmcpSupports ?? [];
    if (!supports.every((name) => typeof name === "string")) {
      throw new TypeError("GMCP packages must be strings");
    }
    this.#gmcpSupports = [...supports];
    const maxMessage = options.maxMessage ?? MESSAGE_LIMIT;
    if (!Number.isInteger(maxMessage) || maxMessage < 1024 || maxMessage > 16 * 1024 * 1024) {
      throw new RangeError(
        `Message limit must be an integer from 1024 to 16 MiB: got ${maxMessage}`,
      );
    }
    this.#maxMessage = maxMessage;
    const charset = normalizeCharset(options.charset ?? "utf-8");
    if (!charset) {
      throw new RangeError(
        `Unsupported charset ${JSON.stringify(options.charset)}: use utf-8, latin1 or cp437`,
      );
    }
    this.#initialCharset = charset;
    this.#charset = charset;
    const { columns, rows } = options.size ?? { columns: 80, rows: 24 };
    checkSize(columns, rows);
    this.#columns = columns;
    this.#rows = rows;
  }

  /**
   * True while the server has agreed to echo (WILL ECHO accepted): the page
   * then does not echo locally and can send keystrokes at once.
   */
  get remoteEcho(): boolean {
    return this.#remote.has(ECHO);
  }

  /** True when suppress-go-ahead is on in the server's direction. */
  get suppressGoAhead(): boolean {
    return this.#remote.has(SGA);
  }

  /**
   * Options currently enabled, for tests and debugging: `local` lists the
   * option codes we agreed to perform, `remote` those the server performs,
   * each in ascending order.
   */
  get enabled(): { local: number[]; remote: number[] } {
    return { local: sorted(this.#local), remote: sorted(this.#remote) };
  }

  /**
   * The charset in force: the `charset` option until CHARSET agrees on
   * another. Decode the display in it, and encode input in it.
   */
  get charset(): TelnetCharset {
    return this.#charset;
  }

  /** The MTTS bit vector the engine reports now (0 when MTTS is off). */
  get mtts(): number {
    const mtts = this.#mtts;
    if (mtts === false) return 0;
    const bits: [boolean, number][] = [
      [mtts.ansi ?? true, 1],
      [mtts.vt100 ?? false, 2],
      [mtts.utf8 ?? this.#charset === "utf-8", 4],
      [mtts.colors256 ?? true, 8],
      [mtts.mouseTracking ?? false, 16],
      [mtts.oscColorPalette ?? false, 32],
      [mtts.screenReader ?? false, 64],
      [mtts.proxy ?? false, 128],
      [mtts.truecolor ?? true, 256],
    ];
    return bits.reduce((sum, [on, bit]) => (on ? sum + bit : sum), 0);
  }

  /**
   * Takes a snapshot of the state, as plain data (JSON-safe).
   *
   * @returns The state; {@linkcode Telnet.restore} brings it back.
   */
  snapshot(): TelnetState {
    return {
      remote: sorted(this.#remote),
      local: sorted(this.#local),
      parser: this.#state,
      verb: this.#verb,
      afterCr: this.#afterCr,
      sbOption: this.#sbOption,
      sbData: Array.from(this.#sbData.subarray(0, this.#sbLength)),
      sbOverflow: this.#sbOverflow,
      ttype: this.#ttypeStep,
      charset: this.#charset,
    };
  }

  /**
   * Brings back a state taken with {@linkcode Telnet.snapshot}, as if the
   * bytes before it had been fed to this engine. A snapshot without the
   * later fields (an older page's) restores with their defaults.
   *
   * @param state The state.
   * @throws {TypeError} When `state` is not a snapshot.
   */
  restore(state: TelnetState): void {
    const byte = (value: unknown): boolean =>
      Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 255;
    const valid = typeof state === "object" && state !== null &&
      Array.isArray(state.remote) && state.remote.every(byte) &&
      Array.isArray(state.local) && state.local.every(byte) &&
      Number.isInteger(state.parser) && state.parser >= DATA && state.parser <= SB_COMMAND &&
      byte(state.verb) && typeof state.afterCr === "boolean" &&
      (state.sbOption === -1 || byte(state.sbOption)) &&
      Array.isArray(state.sbData) && state.sbData.every(byte) &&
      (state.sbOverflow === undefined || typeof state.sbOverflow === "boolean") &&
      (state.ttype === undefined ||
        (Number.isInteger(state.ttype) && state.ttype >= 0 && state.ttype <= 3)) &&
      (state.charset === undefined || normalizeCharset(String(state.charset)) === state.charset);
    const remote = new Set(valid ? state.remote : []);
    if (!valid || state.sbData.length > this.#limitFor(state.sbOption, remote)) {
      throw new TypeError("Not a telnet state snapshot");
    }
    this.#remote = remote;
    this.#local = new Set(state.local);
    this.#state = state.parser;
    this.#verb = state.verb;
    this.#afterCr = state.afterCr;
    this.#sbOption = state.sbOption;
    this.#sbLimit = this.#limitFor(state.sbOption, remote);
    this.#sbData = new Uint8Array(Math.max(256, state.sbData.length));
    this.#sbData.set(state.sbData);
    this.#sbLength = state.sbData.length;
    this.#sbOverflow = state.sbOverflow ?? false;
    this.#ttypeStep = state.ttype ?? 0;
    this.#charset = state.charset ?? this.#initialCharset;
    this.#decoder = null;
  }

  /**
   * Feeds bytes from the server. Returns the bytes to show on the terminal
   * (all telnet commands removed, IAC IAC turned into one 0xFF), the bytes
   * to send back to the server (negotiation answers, possibly empty) and the
   * events found (prompt marks, GMCP, MSDP and MSSP messages, options turned
   * on or off, a new charset). State is kept across calls, so a command
   * split across two calls (even between IAC and its next byte, or inside a
   * subnegotiation) is handled exactly like an unsplit one.
   *
   * @param bytes Bytes read from the server; not kept nor changed.
   * @returns New arrays: `display` for the terminal, `reply` for the server,
   *   `events` in stream order.
   */
  receive(bytes: Uint8Array): TelnetReceived {
    // Every input byte yields at most one display byte.
    const display = new Uint8Array(bytes.length);
    let shown = 0;
    const reply: number[] = [];
    const events: TelnetEvent[] = [];
    for (const byte of bytes) {
      switch (this.#state) {
        case DATA:
          if (byte === IAC) {
            this.#state = COMMAND;
          } else if (byte === NUL && this.#afterCr) {
            // CR NUL is how NVT sends a bare carriage return.
            this.#afterCr = false;
          } else {
            this.#afterCr = byte === CR;
            display[shown++] = byte;
          }
          break;
        case COMMAND:
          if (byte === IAC) {
            this.#afterCr = false;
            display[shown++] = IAC;
            this.#state = DATA;
          } else {
            this.#command(byte, shown, events);
          }
          break;
        case OPTION:
          this.#negotiate(this.#verb, byte, reply, events);
          this.#state = DATA;
          break;
        case SB_OPTION:
          this.#sbLength = 0;
          this.#sbOverflow = false;
          if (byte === IAC) {
            this.#sbOption = -1;
            this.#state = SB_COMMAND;
          } else {
            this.#sbOption = byte;
            this.#state = SB_DATA;
          }
          this.#sbLimit = this.#limitFor(this.#sbOption, this.#remote);
          break;
        case SB_DATA:
          if (byte === IAC) this.#state = SB_COMMAND;
          else this.#keep(byte);
          break;
        case SB_COMMAND:
          if (byte === IAC) {
            this.#keep(IAC);
            this.#state = SB_DATA;
          } else if (byte === SE) {
            this.#subnegotiate(reply, events);
            this.#state = DATA;
          } else {
            // A malformed subnegotiation: the server most likely lost its
            // IAC SE, so drop it and take IAC <byte> as a command rather
            // than swallow everything that follows.
            this.#sbLength = 0;
            this.#sbOverflow = false;
            this.#command(byte, shown, events);
          }
          break;
      }
    }
    return { display: display.subarray(0, shown), reply: Uint8Array.from(reply), events };
  }

  /**
   * Encodes user input for the server: every 0xFF doubled (IAC IAC); a lone
   * CR (Enter) sent as CR LF when `crlf` is true (default) or CR NUL
   * otherwise, and a CR already followed by LF left alone. Text goes through
   * {@linkcode Telnet.encode} first.
   *
   * Each call stands alone: a CR that ends `bytes` counts as lone.
   *
   * @param bytes Input from the terminal; not changed.
   * @param crlf Whether Enter is sent as CR LF rather than CR NUL.
   * @returns A new array to send to the server.
   */
  encodeInput(bytes: Uint8Array, crlf = true): Uint8Array {
    let length = bytes.length;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] === IAC || (bytes[i] === CR && bytes[i + 1] !== LF)) length++;
    }
    if (length === bytes.length) return bytes.slice();
    const out = new Uint8Array(length);
    let at = 0;
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i] ?? 0;
      out[at++] = byte;
      if (byte === IAC) out[at++] = IAC;
      else if (byte === CR && bytes[i + 1] !== LF) out[at++] = crlf ? LF : NUL;
    }
    return out;
  }

  /**
   * Decodes display bytes into text in the charset in force. UTF-8 is
   * decoded as a stream: a character split between two calls comes out
   * whole with the second. Invalid bytes become U+FFFD.
   *
   * @param bytes `display` bytes from {@linkcode Telnet.receive}, in order.
   * @returns The text.
   */
  decode(bytes: Uint8Array): string {
    if (this.#charset !== "utf-8") return decodeText(bytes, this.#charset);
    this.#decoder ??= new TextDecoder("utf-8");
    return this.#decoder.decode(bytes, { stream: true });
  }

  /**
   * Encodes text typed by the user in the charset in force; a character the
   * charset lacks becomes `?`. Telnet escaping is
   * {@linkcode Telnet.encodeInput}'s: send `encodeInput(encode(text))`.
   *
   * @param text The text.
   * @returns Its bytes.
   */
  encode(text: string): Uint8Array {
    return encodeText(text, this.#charset);
  }

  /**
   * Records a new terminal size; returns the NAWS subnegotiation to send if
   * NAWS is active, otherwise an empty array.
   *
   * @param columns Width in characters, from 0 to 65535.
   * @param rows Height in characters, from 0 to 65535.
   * @returns The bytes to send to the server, possibly none.
   * @throws {RangeError} When a dimension is not an integer from 0 to 65535.
   */
  resize(columns: number, rows: number): Uint8Array {
    checkSize(columns, rows);
    this.#columns = columns;
    this.#rows = rows;
    const out: number[] = [];
    if (this.#local.has(NAWS)) this.#pushWindowSize(out);
    return Uint8Array.from(out);
  }

  /**
   * Builds a GMCP message for the server: `IAC SB GMCP <name> <JSON> IAC SE`,
   * IAC-escaped. Returns no bytes while GMCP is off, as the server would
   * not understand them.
   *
   * @param name Package and message, such as `Core.Supports.Set`.
   * @param data The message's data, sent as JSON; none when `undefined`.
   * @returns The bytes to send to the server, possibly none.
   * @throws {TypeError} When `name` is not printable ASCII without spaces,
   *   or `data` cannot be turned into JSON.
   */
  sendGmcp(name: string, data?: unknown): Uint8Array {
    if (typeof name !== "string" || !/^[\x21-\x7e]+$/.test(name)) {
      throw new TypeError(
        `GMCP package must be printable ASCII without spaces: got ${JSON.stringify(name)}`,
      );
    }
    const json = data === undefined ? undefined : JSON.stringify(data);
    const message = json === undefined ? name : `${name} ${json}`;
    if (!this.#remote.has(GMCP)) return new Uint8Array(0);
    return Uint8Array.from(subnegotiation(GMCP, new TextEncoder().encode(message)));
  }

  /**
   * Builds an MSDP message for the server: `IAC SB MSDP MSDP_VAR <variable>`
   * then the value, IAC-escaped: a string as one `MSDP_VAL`, an array as one
   * `MSDP_VAL` per element (as `REPORT` and `SEND` take several names), a
   * nested array or object as `MSDP_ARRAY` or `MSDP_TABLE`. Returns no bytes
   * while MSDP is off.
   *
   * @param variable The variable or command, such as `REPORT` or `LIST`.
   * @param value Its value.
   * @returns The bytes to send to the server, possibly none.
   * @throws {TypeError} When a string holds a byte MSDP reserves (0 to 6 in
   *   the charset in force) or a value is not a string, array or object.
   * @throws {RangeError} When values nest deeper than 32.
   */
  sendMsdp(variable: string, value: MsdpValue): Uint8Array {
    const payload = encodeMsdp([variable, value], this.#charset);
    if (!this.#remote.has(MSDP)) return new Uint8Array(0);
    return Uint8Array.from(subnegotiation(MSDP, payload));
  }

  /** Handles IAC followed by `byte`, which is neither IAC nor part of a subnegotiation. */
  #command(byte: number, at: number, events: TelnetEvent[]): void {
    if (byte >= WILL && byte <= DONT) {
      this.#verb = byte;
      this.#state = OPTION;
    } else if (byte === SB) {
      this.#state = SB_OPTION;
    } else {
      // GA and EOR mark the end of a prompt, negotiated or not (MUD servers
      // send GA unasked); NOP, DM, BRK, IP, AO, AYT, EC, EL, SE and
      // unassigned codes have nothing to show or answer.
      if (byte === GA || byte === EOR_MARK) {
        events.push({ type: "prompt", at, mark: byte === GA ? "ga" : "eor" });
      }
      this.#state = DATA;
    }
  }

  /** Answers IAC `verb` `option`, changing state only as RFC 1143 allows. */
  #negotiate(verb: number, option: number, reply: number[], events: TelnetEvent[]): void {
    switch (verb) {
      case WILL:
        if (!REMOTE_SUPPORTED.has(option)) {
          reply.push(IAC, DONT, option);
        } else if (!this.#remote.has(option)) {
          this.#remote.add(option);
          reply.push(IAC, DO, option);
          events.push({ type: "option", option, side: "remote", enabled: true });
          // GMCP: Core.Hello must be the client's first message.
          if (option === GMCP) this.#pushGmcpHello(reply);
        }
        break;
      case WONT:
        if (this.#remote.delete(option)) {
          reply.push(IAC, DONT, option);
          events.push({ type: "option", option, side: "remote", enabled: false });
        }
        break;
      case DO:
        if (!LOCAL_SUPPORTED.has(option)) {
          reply.push(IAC, WONT, option);
        } else if (!this.#local.has(option)) {
          this.#local.add(option);
          reply.push(IAC, WILL, option);
          events.push({ type: "option", option, side: "local", enabled: true });
          // RFC 1073: the size follows the agreement without being asked for.
          if (option === NAWS) this.#pushWindowSize(reply);
          // MUD servers restart the MTTS cycle with DONT TTYPE, DO TTYPE.
          if (option === TTYPE) this.#ttypeStep = 0;
        }
        break;
      case DONT:
        if (this.#local.delete(option)) {
          reply.push(IAC, WONT, option);
          events.push({ type: "option", option, side: "local", enabled: false });
        }
        break;
    }
  }

  /** The most subnegotiation data kept for `option`, given the options the server performs. */
  #limitFor(option: number, remote: ReadonlySet<number>): number {
    return MESSAGE_OPTIONS.has(option) && remote.has(option)
      ? this.#maxMessage
      : SUBNEGOTIATION_LIMIT;
  }

  /** Keeps one byte of subnegotiation data, up to the limit; past it, marks the overflow. */
  #keep(byte: number): void {
    if (this.#sbLength >= this.#sbLimit) {
      this.#sbOverflow = true;
      return;
    }
    if (this.#sbLength === this.#sbData.length) {
      const grown = new Uint8Array(Math.min(this.#sbLimit, this.#sbData.length * 2));
      grown.set(this.#sbData);
      this.#sbData = grown;
    }
    this.#sbData[this.#sbLength++] = byte;
  }

  /** Acts on a complete subnegotiation of an option that is on; drops any other. */
  #subnegotiate(reply: number[], events: TelnetEvent[]): void {
    const data = this.#sbData.subarray(0, this.#sbLength);
    const whole = !this.#sbOverflow;
    this.#sbLength = 0;
    this.#sbOverflow = false;
    switch (this.#sbOption) {
      case TTYPE:
        // Only the first byte matters, so even a capped SEND is answered.
        if (this.#local.has(TTYPE) && data[0] === TTYPE_SEND) this.#pushTerminalType(reply);
        break;
      case CHARSET:
        if (this.#local.has(CHARSET) || this.#remote.has(CHARSET)) {
          this.#charsetCommand(data, whole, reply, events);
        }
        break;
      case GMCP:
        if (this.#remote.has(GMCP) && whole) {
          const event = parseGmcp(data);
          if (event) events.push(event);
        }
        break;
      case MSDP:
        if (this.#remote.has(MSDP) && whole) {
          const variables = parseMsdp(data, this.#charset);
          if (variables) events.push({ type: "msdp", variables });
        }
        break;
      case MSSP:
        if (this.#remote.has(MSSP) && whole) {
          events.push({ type: "mssp", variables: parseMssp(data, this.#charset) });
        }
        break;
    }
  }

  /**
   * Answers TTYPE SEND. With MTTS the answers cycle: client name, terminal
   * type, `MTTS <bits>`, the same again (the repeat tells the server the
   * list is over, RFC 1091), then the client name again.
   */
  #pushTerminalType(reply: number[]): void {
    let name = this.#terminalType;
    if (this.#mtts !== false) {
      const step = this.#ttypeStep;
      this.#ttypeStep = (step + 1) % 4;
      if (step === 0) name = this.#clientName;
      else if (step >= 2) name = asciiBytes(`MTTS ${this.mtts}`);
    }
    reply.push(IAC, SB, TTYPE, TTYPE_IS, ...name, IAC, SE);
  }

  /**
   * Answers a CHARSET subnegotiation (RFC 2066): a REQUEST with ACCEPTED
   * (UTF-8 if offered, else the `charset` option if offered) or REJECTED,
   * a TTABLE-IS with TTABLE-REJECTED (we never offer tables); ACCEPTED and
   * REJECTED answer requests we never make, so they are ignored.
   */
  #charsetCommand(data: Uint8Array, whole: boolean, reply: number[], events: TelnetEvent[]): void {
    if (data[0] === CHARSET_TTABLE_IS) {
      reply.push(IAC, SB, CHARSET, CHARSET_TTABLE_REJECTED, IAC, SE);
      return;
    }
    if (data[0] !== CHARSET_REQUEST) return;
    // A capped list may end in half a name, so it is refused, not guessed at.
    const names = whole ? offeredCharsets(data.subarray(1)) : [];
    const labels = names.map((name) => String.fromCharCode(...name));
    const chosen = chooseCharset(labels, this.#initialCharset);
    const name = chosen && names[chosen.index];
    if (!chosen || !name) {
      reply.push(IAC, SB, CHARSET, CHARSET_REJECTED, IAC, SE);
      return;
    }
    reply.push(...subnegotiation(CHARSET, [CHARSET_ACCEPTED, ...name]));
    if (chosen.charset !== this.#charset) {
      this.#charset = chosen.charset;
      this.#decoder = null;
      events.push({ type: "charset", charset: chosen.charset });
    }
  }

  /** Appends GMCP `Core.Hello` and, if configured, `Core.Supports.Set`. */
  #pushGmcpHello(reply: number[]): void {
    const encoder = new TextEncoder();
    const client = String.fromCharCode(...this.#clientName);
    const hello = JSON.stringify({ client, version: this.#clientVersion });
    reply.push(...subnegotiation(GMCP, encoder.encode(`Core.Hello ${hello}`)));
    if (this.#gmcpSupports.length > 0) {
      const supports = JSON.stringify(this.#gmcpSupports);
      reply.push(...subnegotiation(GMCP, encoder.encode(`Core.Supports.Set ${supports}`)));
    }
  }

  /** Appends IAC SB NAWS with the current size, 0xFF bytes doubled, and IAC SE. */
  #pushWindowSize(out: number[]): void {
    out.push(
      ...subnegotiation(NAWS, [
        this.#columns >> 8,
        this.#columns & 0xff,
        this.#rows >> 8,
        this.#rows & 0xff,
      ]),
    );
  }
}

/**
 * The names a CHARSET REQUEST (RFC 2066) offers, from its list: an optional
 * `[TTABLE]` and version byte, then a separator byte and the names it
 * separates.
 */
function offeredCharsets(list: Uint8Array): Uint8Array[] {
  let at = 0;
  if (TTABLE_MARK.every((byte, i) => list[i] === byte)) at = TTABLE_MARK.length + 1;
  const separator = list[at];
  if (separator === undefined) return [];
  const names: Uint8Array[] = [];
  let start = at + 1;
  for (let i = start; i <= list.length; i++) {
    if (i === list.length || list[i] === separator) {
      if (i > start) names.push(list.subarray(start, i));
      start = i + 1;
    }
  }
  return names;
}

/** IAC SB `option`, `payload` with every 0xFF doubled, IAC SE. */
function subnegotiation(option: number, payload: ArrayLike<number>): number[] {
  const out = [IAC, SB, option];
  for (let i = 0; i < payload.length; i++) {
    const byte = payload[i] ?? 0;
    out.push(byte);
    if (byte === IAC) out.push(IAC);
  }
  out.push(IAC, SE);
  return out;
}

function asciiBytes(text: string): number[] {
  return Array.from(text, (char) => char.charCodeAt(0));
}

function checkSize(columns: number, rows: number): void {
  if (!(isUint16(columns) && isUint16(rows))) {
    throw new RangeError(`Terminal size must be integers from 0 to 65535: got ${columns}x${rows}`);
  }
}

function isUint16(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffff;
}

function sorted(options: Set<number>): number[] {
  return [...options].sort((a, b) => a - b);
}
