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
 * `TextEncoder`) are used, no Deno or DOM APIs, so the same file is bundled
 * into the page and imported by the tests.
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

const IAC = 255;
const DONT = 254;
const DO = 253;
const WONT = 252;
const WILL = 251;
const SB = 250;
const GA = 249;
const SE = 240;
/** IAC EOR, the end-of-record mark (RFC 885), not the option of that name. */
const EOR_MARK = 239;

const ECHO = 1;
const SGA = 3;
const TTYPE = 24;
const EOR = 25;
const NAWS = 31;
const CHARSET = 42;
const MSDP = 69;
const MSSP = 70;
const GMCP = 201;

/**
 * The telnet option codes the engine knows by name, for reading
 * {@linkcode Telnet.enabled} and {@linkcode OptionEvent}s. MCCP2 and MCCP3
 * are listed because they are refused on purpose.
 */
export const TELNET_OPTION = {
  ECHO,
  SGA,
  TTYPE,
  EOR,
  NAWS,
  CHARSET,
  MSDP,
  MSSP,
  MCCP2: 86,
  MCCP3: 87,
  GMCP,
} as const;

const TTYPE_IS = 0;
const TTYPE_SEND = 1;

// RFC 2066 subnegotiation commands.
const CHARSET_REQUEST = 1;
const CHARSET_ACCEPTED = 2;
const CHARSET_REJECTED = 3;
const CHARSET_TTABLE_IS = 4;
const CHARSET_TTABLE_REJECTED = 5;
/** A REQUEST that offers translation tables starts with this, then a version byte. */
const TTABLE_MARK = Array.from("[TTABLE]", (char) => char.charCodeAt(0));

// MSDP and MSSP share VAR and VAL; MSDP adds tables and arrays.
const VAR = 1;
const VAL = 2;
const TABLE_OPEN = 3;
const TABLE_CLOSE = 4;
const ARRAY_OPEN = 5;
const ARRAY_CLOSE = 6;

const NUL = 0;
const LF = 10;
const CR = 13;
const QUESTION_MARK = 0x3f;

/** Most subnegotiation data kept for TTYPE, NAWS, CHARSET and unknown options. */
const SUBNEGOTIATION_LIMIT = 1024;
/** Default bound on one GMCP, MSDP or MSSP message. */
const MESSAGE_LIMIT = 64 * 1024;
/** Most MSDP tables and arrays nested in one another; a deeper message is dropped. */
const MSDP_DEPTH_LIMIT = 32;

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
 * A character set the engine can decode and encode: the server's text and
 * the user's input. `utf-8` and `latin1` are also `TextDecoder` labels
 * (`latin1` decodes as windows-1252, as browsers do); `cp437` (the IBM PC
 * set of BBS art) has no `TextDecoder`, so use {@linkcode decodeText} or
 * {@linkcode Telnet.decode}.
 */
export type TelnetCharset = "utf-8" | "latin1" | "cp437";

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

/** A GMCP message from the server: `IAC SB GMCP <package> [<JSON>] IAC SE`. */
export interface GmcpEvent {
  /** The event's kind. */
  type: "gmcp";
  /** The package and message name as sent, such as `Char.Vitals` (GMCP matches it case-insensitively). */
  package: string;
  /** The text after the name, as UTF-8, or `""` when there is none. */
  text: string;
  /** `text` parsed as JSON, or `undefined` when it is empty or not JSON. */
  data: unknown;
}

/** An MSDP value: a string, an array of values or a table of named values. */
export type MsdpValue = string | MsdpValue[] | { [name: string]: MsdpValue };

/**
 * An MSDP subnegotiation from the server, decoded: each `MSDP_VAR` is a key;
 * one `MSDP_VAL` gives its value, several an array; tables become objects and
 * arrays arrays. Text is decoded in the charset in force.
 */
export interface MsdpEvent {
  /** The event's kind. */
  type: "msdp";
  /** The variables, by name. */
  variables: Record<string, MsdpValue>;
}

/**
 * An MSSP subnegotiation from the server: each `MSSP_VAR` with its value, or
 * its values when several `MSSP_VAL`s follow it.
 */
export interface MsspEvent {
  /** The event's kind. */
  type: "mssp";
  /** The variables, by name, such as `NAME`, `PLAYERS` and `UPTIME`. */
  variables: Record<string, string | string[]>;
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
    const payload: number[] = [VAR];
    this.#pushMsdpText(payload, variable);
    if (Array.isArray(value)) {
      for (const item of value) {
        payload.push(VAL);
        this.#pushMsdpValue(payload, item, 1);
      }
    } else {
      payload.push(VAL);
      this.#pushMsdpValue(payload, value, 0);
    }
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
    const chosen = whole ? chooseCharset(data.subarray(1), this.#initialCharset) : undefined;
    if (!chosen) {
      reply.push(IAC, SB, CHARSET, CHARSET_REJECTED, IAC, SE);
      return;
    }
    reply.push(...subnegotiation(CHARSET, [CHARSET_ACCEPTED, ...chosen.name]));
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

  /** Appends `text` in the charset in force, refusing MSDP's reserved bytes. */
  #pushMsdpText(out: number[], text: string): void {
    const bytes = encodeText(String(text), this.#charset);
    if (bytes.some((byte) => byte <= ARRAY_CLOSE)) {
      throw new TypeError(`MSDP text cannot hold bytes 0 to 6: got ${JSON.stringify(text)}`);
    }
    out.push(...bytes);
  }

  /** Appends an MSDP value after its MSDP_VAL. */
  #pushMsdpValue(out: number[], value: MsdpValue, depth: number): void {
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
      this.#pushMsdpText(out, String(value));
      return;
    }
    if (typeof value !== "object" || value === null) {
      throw new TypeError(`MSDP values must be strings, arrays or objects: got ${String(value)}`);
    }
    if (depth >= MSDP_DEPTH_LIMIT) throw new RangeError("MSDP values nest deeper than 32");
    if (Array.isArray(value)) {
      out.push(ARRAY_OPEN);
      for (const item of value) {
        out.push(VAL);
        this.#pushMsdpValue(out, item, depth + 1);
      }
      out.push(ARRAY_CLOSE);
    } else {
      out.push(TABLE_OPEN);
      for (const [name, item] of Object.entries(value)) {
        out.push(VAR);
        this.#pushMsdpText(out, name);
        out.push(VAL);
        this.#pushMsdpValue(out, item, depth + 1);
      }
      out.push(TABLE_CLOSE);
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
 * The charset a label names, for configuration and CHARSET: `UTF-8`,
 * `ISO-8859-1`, `latin1`, `CP437`, `IBM437` and their usual aliases, in any
 * case.
 *
 * @param label A charset name.
 * @returns The charset, or `undefined` when it is not one the engine has.
 *
 * @example
 * ```ts
 * import { normalizeCharset } from "./telnet.ts";
 *
 * console.assert(normalizeCharset("ISO-8859-1") === "latin1");
 * console.assert(normalizeCharset("koi8-r") === undefined);
 * ```
 */
export function normalizeCharset(label: string): TelnetCharset | undefined {
  const key = String(label).toLowerCase().replace(/[^a-z0-9]/g, "");
  if (key === "utf8") return "utf-8";
  if (LATIN1_LABELS.has(key)) return "latin1";
  if (CP437_LABELS.has(key)) return "cp437";
  return undefined;
}

const LATIN1_LABELS: ReadonlySet<string> = new Set([
  "latin1",
  "l1",
  "iso88591",
  "iso885911987",
  "isoir100",
  "csisolatin1",
  "cp819",
  "ibm819",
  // What TextDecoder("latin1") decodes, by its own names.
  "windows1252",
  "cp1252",
]);

const CP437_LABELS: ReadonlySet<string> = new Set([
  "cp437",
  "ibm437",
  "437",
  "cspc8codepage437",
  "oem437",
]);

/**
 * CP437's upper half, bytes 0x80 to 0xFF, 16 to a row. The lower half is
 * ASCII: BBSes send control codes (ESC for ANSI art) there, not CP437's
 * glyphs for them.
 */
const CP437_HIGH = [
  "ÇüéâäàåçêëèïîìÄÅ", // 0x80
  "ÉæÆôöòûùÿÖÜ¢£¥₧ƒ", // 0x90
  "áíóúñÑªº¿⌐¬½¼¡«»", // 0xA0
  "░▒▓│┤╡╢╖╕╣║╗╝╜╛┐", // 0xB0
  "└┴┬├─┼╞╟╚╔╩╦╠═╬╧", // 0xC0
  "╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀", // 0xD0
  "αßΓπΣσµτΦΘΩδ∞φε∩", // 0xE0
  "≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0", // 0xF0
].join("");

/** Every byte's character in CP437, made on first use. */
let cp437Chars: string[] | undefined;
/** Code points above 0x7F to their byte, per charset, made on first use. */
const encodings = new Map<TelnetCharset, Map<number, number>>();
let utf8Decoder: TextDecoder | undefined;
let latin1Decoder: TextDecoder | undefined;

/**
 * Decodes bytes in a charset, all at once (for a stream of UTF-8, use
 * {@linkcode Telnet.decode}). Latin-1 decodes as `TextDecoder("latin1")`
 * does, that is as windows-1252; CP437 by its table, with ASCII below 0x80.
 *
 * @param bytes The bytes.
 * @param charset Their charset.
 * @returns The text.
 *
 * @example
 * ```ts
 * import { decodeText } from "./telnet.ts";
 *
 * console.assert(decodeText(Uint8Array.of(0xc9, 0xcd, 0xbb), "cp437") === "╔═╗");
 * console.assert(decodeText(Uint8Array.of(0xe9), "latin1") === "é");
 * ```
 */
export function decodeText(bytes: Uint8Array, charset: TelnetCharset): string {
  switch (charset) {
    case "utf-8":
      utf8Decoder ??= new TextDecoder("utf-8");
      return utf8Decoder.decode(bytes);
    case "latin1":
      latin1Decoder ??= new TextDecoder("latin1");
      return latin1Decoder.decode(bytes);
    case "cp437": {
      cp437Chars ??= Array.from(
        { length: 256 },
        (_, byte) => byte < 0x80 ? String.fromCharCode(byte) : CP437_HIGH.charAt(byte - 0x80),
      );
      const chars = cp437Chars;
      return Array.from(bytes, (byte) => chars[byte] ?? "").join("");
    }
  }
}

/**
 * Encodes text in a charset, the inverse of {@linkcode decodeText}; a
 * character the charset lacks becomes `?`.
 *
 * @param text The text.
 * @param charset The charset.
 * @returns The bytes.
 *
 * @example
 * ```ts
 * import { encodeText } from "./telnet.ts";
 *
 * console.assert(encodeText("é€✓", "latin1").join() === "233,128,63");
 * console.assert(encodeText("═", "cp437").join() === "205");
 * ```
 */
export function encodeText(text: string, charset: TelnetCharset): Uint8Array {
  if (charset === "utf-8") return new TextEncoder().encode(text);
  let table = encodings.get(charset);
  if (!table) {
    table = new Map();
    for (let byte = 0x80; byte <= 0xff; byte++) {
      const char = decodeText(Uint8Array.of(byte), charset);
      table.set(char.codePointAt(0) ?? 0, byte);
    }
    encodings.set(charset, table);
  }
  const out: number[] = [];
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    out.push(code < 0x80 ? code : table.get(code) ?? QUESTION_MARK);
  }
  return Uint8Array.from(out);
}

/** The charset chosen from a CHARSET REQUEST's list, and its name as offered. */
interface ChosenCharset {
  name: Uint8Array;
  charset: TelnetCharset;
}

/**
 * Picks a charset from the list of a CHARSET REQUEST (RFC 2066): an optional
 * `[TTABLE]` and version byte, then a separator byte and the names it
 * separates. UTF-8 comes first, then `fallback`.
 */
function chooseCharset(list: Uint8Array, fallback: TelnetCharset): ChosenCharset | undefined {
  let at = 0;
  if (TTABLE_MARK.every((byte, i) => list[i] === byte)) at = TTABLE_MARK.length + 1;
  const separator = list[at];
  if (separator === undefined) return undefined;
  const names: Uint8Array[] = [];
  let start = at + 1;
  for (let i = start; i <= list.length; i++) {
    if (i === list.length || list[i] === separator) {
      if (i > start) names.push(list.subarray(start, i));
      start = i + 1;
    }
  }
  for (const wanted of ["utf-8", fallback]) {
    for (const name of names) {
      if (normalizeCharset(String.fromCharCode(...name).trim()) === wanted) {
        return { name, charset: wanted };
      }
    }
  }
  return undefined;
}

/**
 * A GMCP message: the package name up to the first space, then the data
 * (GMCP is UTF-8 text). `undefined` for a message without a name.
 */
function parseGmcp(bytes: Uint8Array): GmcpEvent | undefined {
  const message = decodeText(bytes, "utf-8");
  const space = message.search(/[ \t\r\n]/);
  const name = space < 0 ? message : message.slice(0, space);
  if (name === "") return undefined;
  const text = space < 0 ? "" : message.slice(space + 1);
  let data: unknown = undefined;
  if (text.trim() !== "") {
    try {
      data = JSON.parse(text);
    } catch {
      // Not JSON: the page gets the text alone.
    }
  }
  return { type: "gmcp", package: name, text, data };
}

/**
 * An MSDP message's variables; `undefined` when it nests deeper than
 * {@linkcode MSDP_DEPTH_LIMIT}. Stray bytes and unmatched closers are
 * skipped, and what an unclosed table or array holds is kept.
 */
function parseMsdp(
  bytes: Uint8Array,
  charset: TelnetCharset,
): Record<string, MsdpValue> | undefined {
  const reader = new MsdpReader(bytes, charset);
  return reader.read();
}

/** Reads MSDP's VAR, VAL, TABLE and ARRAY structure, one position at a time. */
class MsdpReader {
  #bytes: Uint8Array;
  #charset: TelnetCharset;
  #at = 0;
  #tooDeep = false;

  constructor(bytes: Uint8Array, charset: TelnetCharset) {
    this.#bytes = bytes;
    this.#charset = charset;
  }

  /** The top-level variables, or `undefined` if the message nests too deep. */
  read(): Record<string, MsdpValue> | undefined {
    const variables = this.#table(0, -1);
    return this.#tooDeep ? undefined : variables;
  }

  /** VAR name, VAL value pairs until `close` (or the end). */
  #table(depth: number, close: number): Record<string, MsdpValue> {
    const table: Record<string, MsdpValue> = {};
    while (this.#at < this.#bytes.length && !this.#tooDeep) {
      const byte = this.#bytes[this.#at++];
      if (byte === close) break;
      if (byte !== VAR) continue;
      const name = this.#string();
      const values: MsdpValue[] = [];
      while (this.#bytes[this.#at] === VAL && !this.#tooDeep) {
        this.#at++;
        values.push(this.#value(depth));
      }
      setOwn(table, name, values.length === 1 ? values[0] ?? "" : values.length ? values : "");
    }
    return table;
  }

  /** The value after a VAL: a table, an array or a string. */
  #value(depth: number): MsdpValue {
    const byte = this.#bytes[this.#at];
    if (byte !== TABLE_OPEN && byte !== ARRAY_OPEN) return this.#string();
    if (depth >= MSDP_DEPTH_LIMIT) {
      this.#tooDeep = true;
      return "";
    }
    this.#at++;
    return byte === TABLE_OPEN ? this.#table(depth + 1, TABLE_CLOSE) : this.#array(depth + 1);
  }

  /** VAL value entries until ARRAY_CLOSE (or the end). */
  #array(depth: number): MsdpValue[] {
    const array: MsdpValue[] = [];
    while (this.#at < this.#bytes.length && !this.#tooDeep) {
      const byte = this.#bytes[this.#at++];
      if (byte === ARRAY_CLOSE) break;
      if (byte === VAL) array.push(this.#value(depth));
    }
    return array;
  }

  /** The text up to the next MSDP control byte. */
  #string(): string {
    const start = this.#at;
    while (this.#at < this.#bytes.length && (this.#bytes[this.#at] ?? 0) > ARRAY_CLOSE) {
      this.#at++;
    }
    return decodeText(this.#bytes.subarray(start, this.#at), this.#charset);
  }
}

/** An MSSP message's variables: each VAR with its VAL, or its VALs as an array. */
function parseMssp(bytes: Uint8Array, charset: TelnetCharset): Record<string, string | string[]> {
  const variables: Record<string, string | string[]> = {};
  let name: string | undefined;
  let values: string[] = [];
  function flush(): void {
    if (name === undefined) return;
    setOwn(variables, name, values.length === 1 ? values[0] ?? "" : values.length ? values : "");
  }
  let at = 0;
  while (at < bytes.length) {
    const byte = bytes[at++];
    if (byte !== VAR && byte !== VAL) continue;
    let end = at;
    while (end < bytes.length && bytes[end] !== VAR && bytes[end] !== VAL) end++;
    const text = decodeText(bytes.subarray(at, end), charset);
    at = end;
    if (byte === VAR) {
      flush();
      name = text;
      values = [];
    } else if (name !== undefined) {
      values.push(text);
    }
  }
  flush();
  return variables;
}

/**
 * Sets an own property even for a name like `__proto__`, which a plain
 * assignment would take as the object's prototype: the names come from the
 * server.
 */
function setOwn<T>(object: Record<string, T>, name: string, value: T): void {
  Object.defineProperty(object, name, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
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
