/**
 * The client side of the telnet protocol (RFC 854, RFC 855), for the browser
 * terminal. It sits between the bytes the proxy relays from a telnet server
 * and the terminal emulator: {@linkcode Telnet.receive} takes server bytes
 * apart into what the terminal shows and the negotiation answers to send
 * back, and {@linkcode Telnet.encodeInput} turns keystrokes into what the
 * server expects.
 *
 * Only standard JavaScript is used (no Deno or DOM APIs), so the same file is
 * bundled into the page and imported by the tests.
 *
 * The engine never asks for an option; it only answers. It agrees to ECHO and
 * SGA from the server, performs SGA, NAWS and TTYPE itself, and refuses
 * everything else. Following RFC 1143, it answers a request only when the
 * request changes an option's state, so two peers cannot loop.
 *
 * @module
 */

const IAC = 255;
const DONT = 254;
const DO = 253;
const WONT = 252;
const WILL = 251;
const SB = 250;
const SE = 240;

const ECHO = 1;
const SGA = 3;
const TTYPE = 24;
const NAWS = 31;

const TTYPE_IS = 0;
const TTYPE_SEND = 1;

const NUL = 0;
const LF = 10;
const CR = 13;

/** Most subnegotiation data kept; a hostile server's excess is dropped. */
const SUBNEGOTIATION_LIMIT = 1024;

/** Options we let the server perform. */
const REMOTE_SUPPORTED: ReadonlySet<number> = new Set([ECHO, SGA]);
/** Options we agree to perform. */
const LOCAL_SUPPORTED: ReadonlySet<number> = new Set([SGA, TTYPE, NAWS]);

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

/** Options for {@linkcode Telnet}. */
export interface TelnetOptions {
  /** Terminal type answered to TTYPE SEND. @default "xterm-256color" */
  terminalType?: string;
  /** Initial window size for NAWS. @default { columns: 80, rows: 24 } */
  size?: { columns: number; rows: number };
}

/**
 * A {@linkcode Telnet} engine's state as plain data, to keep across page
 * reloads: the options agreed and where the parser stands.
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
}

/**
 * The telnet state of one connection, as seen from the client: the parser's
 * position in the server's byte stream, the options in force and the
 * terminal's size.
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
 */
export class Telnet {
  #terminalType: number[];
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
  /** The option of the subnegotiation being read, or -1 when it has none. */
  #sbOption = -1;
  #sbData = new Uint8Array(SUBNEGOTIATION_LIMIT);
  #sbLength = 0;

  /**
   * Creates the state of a new connection, with every option off.
   *
   * @param options Terminal type and initial size.
   * @throws {TypeError} When the terminal type is not printable ASCII.
   * @throws {RangeError} When the size is not two integers from 0 to 65535.
   */
  constructor(options: TelnetOptions = {}) {
    const terminalType = options.terminalType ?? "xterm-256color";
    if (!/^[\x21-\x7e]+$/.test(terminalType)) {
      throw new TypeError(
        `Terminal type must be printable ASCII without spaces: got ${JSON.stringify(terminalType)}`,
      );
    }
    this.#terminalType = Array.from(terminalType, (char) => char.charCodeAt(0));
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
    };
  }

  /**
   * Brings back a state taken with {@linkcode Telnet.snapshot}, as if the
   * bytes before it had been fed to this engine.
   *
   * @param state The state.
   * @throws {TypeError} When `state` is not a snapshot.
   */
  restore(state: TelnetState): void {
    const byte = (value: unknown): boolean =>
      Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 255;
    if (
      !Array.isArray(state.remote) || !state.remote.every(byte) ||
      !Array.isArray(state.local) || !state.local.every(byte) ||
      !Number.isInteger(state.parser) || state.parser < DATA || state.parser > SB_COMMAND ||
      !byte(state.verb) || typeof state.afterCr !== "boolean" ||
      !(state.sbOption === -1 || byte(state.sbOption)) ||
      !Array.isArray(state.sbData) || state.sbData.length > SUBNEGOTIATION_LIMIT ||
      !state.sbData.every(byte)
    ) {
      throw new TypeError("Not a telnet state snapshot");
    }
    this.#remote = new Set(state.remote);
    this.#local = new Set(state.local);
    this.#state = state.parser;
    this.#verb = state.verb;
    this.#afterCr = state.afterCr;
    this.#sbOption = state.sbOption;
    this.#sbData.set(state.sbData);
    this.#sbLength = state.sbData.length;
  }

  /**
   * Feeds bytes from the server. Returns the bytes to show on the terminal
   * (all telnet commands removed, IAC IAC turned into one 0xFF) and the bytes
   * to send back to the server (negotiation answers, possibly empty). State
   * is kept across calls, so a command split across two calls (even between
   * IAC and its next byte, or inside a subnegotiation) is handled exactly
   * like an unsplit one.
   *
   * @param bytes Bytes read from the server; not kept nor changed.
   * @returns New arrays: `display` for the terminal, `reply` for the server.
   */
  receive(bytes: Uint8Array): { display: Uint8Array; reply: Uint8Array } {
    // Every input byte yields at most one display byte.
    const display = new Uint8Array(bytes.length);
    let shown = 0;
    const reply: number[] = [];
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
            this.#command(byte);
          }
          break;
        case OPTION:
          this.#negotiate(this.#verb, byte, reply);
          this.#state = DATA;
          break;
        case SB_OPTION:
          this.#sbLength = 0;
          if (byte === IAC) {
            this.#sbOption = -1;
            this.#state = SB_COMMAND;
          } else {
            this.#sbOption = byte;
            this.#state = SB_DATA;
          }
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
            this.#subnegotiate(reply);
            this.#state = DATA;
          } else {
            // A malformed subnegotiation: the server most likely lost its
            // IAC SE, so drop it and take IAC <byte> as a command rather
            // than swallow everything that follows.
            this.#command(byte);
          }
          break;
      }
    }
    return { display: display.subarray(0, shown), reply: Uint8Array.from(reply) };
  }

  /**
   * Encodes user input for the server: every 0xFF doubled (IAC IAC); a lone
   * CR (Enter) sent as CR LF when `crlf` is true (default) or CR NUL
   * otherwise, and a CR already followed by LF left alone.
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

  /** Handles IAC followed by `byte`, which is neither IAC nor part of a subnegotiation. */
  #command(byte: number): void {
    if (byte >= WILL && byte <= DONT) {
      this.#verb = byte;
      this.#state = OPTION;
    } else if (byte === SB) {
      this.#state = SB_OPTION;
    } else {
      // NOP, GA, DM, BRK, IP, AO, AYT, EC, EL, SE and unassigned codes: nothing to show or answer.
      this.#state = DATA;
    }
  }

  /** Answers IAC `verb` `option`, changing state only as RFC 1143 allows. */
  #negotiate(verb: number, option: number, reply: number[]): void {
    switch (verb) {
      case WILL:
        if (!REMOTE_SUPPORTED.has(option)) {
          reply.push(IAC, DONT, option);
        } else if (!this.#remote.has(option)) {
          this.#remote.add(option);
          reply.push(IAC, DO, option);
        }
        break;
      case WONT:
        if (this.#remote.delete(option)) reply.push(IAC, DONT, option);
        break;
      case DO:
        if (!LOCAL_SUPPORTED.has(option)) {
          reply.push(IAC, WONT, option);
        } else if (!this.#local.has(option)) {
          this.#local.add(option);
          reply.push(IAC, WILL, option);
          // RFC 1073: the size follows the agreement without being asked for.
          if (option === NAWS) this.#pushWindowSize(reply);
        }
        break;
      case DONT:
        if (this.#local.delete(option)) reply.push(IAC, WONT, option);
        break;
    }
  }

  /** Keeps one byte of subnegotiation data, up to the limit. */
  #keep(byte: number): void {
    if (this.#sbLength < SUBNEGOTIATION_LIMIT) this.#sbData[this.#sbLength++] = byte;
  }

  /** Acts on a complete subnegotiation; only TTYPE SEND has an answer. */
  #subnegotiate(reply: number[]): void {
    if (
      this.#sbOption === TTYPE && this.#local.has(TTYPE) && this.#sbLength > 0 &&
      this.#sbData[0] === TTYPE_SEND
    ) {
      reply.push(IAC, SB, TTYPE, TTYPE_IS, ...this.#terminalType, IAC, SE);
    }
    this.#sbLength = 0;
  }

  /** Appends IAC SB NAWS with the current size, 0xFF bytes doubled, and IAC SE. */
  #pushWindowSize(out: number[]): void {
    out.push(IAC, SB, NAWS);
    for (
      const byte of [this.#columns >> 8, this.#columns & 0xff, this.#rows >> 8, this.#rows & 0xff]
    ) {
      out.push(byte);
      if (byte === IAC) out.push(IAC);
    }
    out.push(IAC, SE);
  }
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
