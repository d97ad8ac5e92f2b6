/**
 * The demo destination: a small telnet-speaking line service that
 * `socketproxy demo` puts behind the proxy, so there is something to talk
 * to on a machine with no network.
 *
 *     browser or nc <--> gateway or proxy <--> demo service (this file)
 *
 * Each connection gets a coloured banner and a prompt; a line typed is
 * either a command (`help`, `colours`, `time`, `quit`) or echoed back. The
 * service offers SGA (IAC WILL SGA), refuses every other option once, and
 * takes telnet commands out of its input, so a telnet client and the
 * browser terminal's telnet engine both work. Input lines are bounded
 * ({@linkcode DemoServiceOptions.maxLineBytes}): a longer line is dropped
 * as it arrives and answered with an error line.
 *
 * @module
 */

import type { HostPort } from "../address.ts";
import { closeQuietly, writeAll } from "../_io.ts";
import { peerAddress } from "../address.ts";
import { describeError, Logger } from "../log.ts";
import { acceptLoop } from "../proxy/listener.ts";

/** Options for {@linkcode DemoService.listen}. */
export interface DemoServiceOptions {
  /**
   * Longest input line, in bytes; a longer one is refused with an error line.
   * @default {4096}
   */
  maxLineBytes?: number;
  /**
   * Most connections served at once; one more is told so and closed.
   * @default {1000}
   */
  maxConnections?: number;
  /**
   * Where connections and failures are logged (connections at debug).
   * @default {a new Logger}
   */
  logger?: Logger;
}

const IAC = 255;
const DONT = 254;
const DO = 253;
const WONT = 252;
const WILL = 251;
const SB = 250;
const SE = 240;
const SGA = 3;

const NUL = 0;
const BS = 8;
const TAB = 9;
const LF = 10;
const CR = 13;
const SPACE = 32;
const DEL = 127;

// Parser states: one per position inside a telnet command.
const DATA = 0;
/** After IAC. */
const COMMAND = 1;
/** After IAC WILL, WONT, DO or DONT: the option byte comes next. */
const OPTION = 2;
/** Inside a subnegotiation (IAC SB ... IAC SE), whose data is dropped. */
const SUBNEGOTIATION = 3;
/** After IAC inside a subnegotiation. */
const SUBNEGOTIATION_IAC = 4;

const READ_BUFFER_BYTES = 4096;

const RESET = "\x1b[0m";
const BOLD = "\x1b[1m";
const DIM = "\x1b[2m";
const PROMPT = `\x1b[1;32mdemo>${RESET} `;

// Everything sent is our own ASCII text or decoded UTF-8 (where 0xff never
// occurs), so no byte of it needs IAC doubling.
const BANNER = [
  `\x1b[1;45;97m socketproxy demo ${RESET} ${DIM}a small telnet service behind the proxy${RESET}`,
  `Type ${BOLD}help${RESET} for the commands; any other line is echoed back.`,
  `Drop the connection or reload the page: the session carries on where it was.`,
  "",
].join("\r\n");

const HELP = [
  "Commands:",
  `  ${BOLD}help${RESET}      this list`,
  `  ${BOLD}colours${RESET}   a colour chart`,
  `  ${BOLD}time${RESET}      the time here, on the demo service`,
  `  ${BOLD}quit${RESET}      close this connection (which ends the session)`,
  "Any other line is echoed back.",
  "",
].join("\r\n");

const COLOUR_NAMES = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"];

/** The reply to `colours`: the 16 foreground colours, the backgrounds and the styles. */
function colourChart(): string {
  const row = (label: string, code: (index: number) => string): string =>
    label.padEnd(12) +
    COLOUR_NAMES.map((name, index) => `\x1b[${code(index)}m${name.padEnd(8)}${RESET}`).join("");
  return [
    row("normal", (index) => `${30 + index}`),
    row("bright", (index) => `${90 + index}`),
    row("background", (index) => `${index === 7 ? 30 : 97};${40 + index}`),
    "styles".padEnd(12) +
    [["1", "bold"], ["2", "dim"], ["3", "italic"], ["4", "underline"], ["7", "reverse"]]
      .map(([code, name]) => `\x1b[${code}m${name}${RESET}`).join(" "),
    "",
  ].join("\r\n");
}

/** A line of input, or a line that was too long and dropped. */
type InputLine = { text: string } | { tooLong: true };

/** What one read of input came to. */
interface Decoded {
  /** Telnet negotiation answers, to send before anything else. */
  negotiation: number[];
  /** The lines completed. */
  lines: InputLine[];
}

/**
 * One connection's input, taken apart: telnet commands removed (and
 * options refused), backspaces applied, control bytes dropped, and the
 * rest split into lines at CR LF, CR NUL, bare CR or bare LF. A line never
 * holds more than the limit; the bytes beyond it are dropped as they come.
 */
class LineDecoder {
  readonly #line: Uint8Array;
  #length = 0;
  #tooLong = false;
  #afterCr = false;
  #state = DATA;
  #verb = 0;
  /** Options refused already: each is refused once, so two peers cannot loop. */
  readonly #refused = new Set<number>();
  readonly #text = new TextDecoder();

  constructor(maxLineBytes: number) {
    this.#line = new Uint8Array(maxLineBytes);
  }

  /** Takes the next bytes read. */
  push(bytes: Uint8Array): Decoded {
    const decoded: Decoded = { negotiation: [], lines: [] };
    for (const byte of bytes) {
      switch (this.#state) {
        case DATA:
          this.#data(byte, decoded.lines);
          break;
        case COMMAND:
          this.#command(byte);
          break;
        case OPTION:
          this.#option(byte, decoded.negotiation);
          this.#state = DATA;
          break;
        case SUBNEGOTIATION:
          if (byte === IAC) this.#state = SUBNEGOTIATION_IAC;
          break;
        case SUBNEGOTIATION_IAC:
          this.#state = byte === SE ? DATA : SUBNEGOTIATION;
          break;
      }
    }
    return decoded;
  }

  #data(byte: number, lines: InputLine[]): void {
    const afterCr = this.#afterCr;
    this.#afterCr = false;
    if (byte === IAC) {
      this.#state = COMMAND;
    } else if (byte === CR) {
      this.#afterCr = true;
      lines.push(this.#endLine());
    } else if (byte === LF || byte === NUL) {
      // CR LF and CR NUL end one line, not two; a bare LF ends one too.
      if (!afterCr && byte === LF) lines.push(this.#endLine());
    } else if (byte === BS || byte === DEL) {
      this.#erase();
    } else if (byte === TAB) {
      this.#append(SPACE);
    } else if (byte >= SPACE) {
      this.#append(byte);
    }
  }

  #command(byte: number): void {
    if (byte === IAC) {
      this.#state = DATA;
      this.#append(IAC); // an escaped 0xff data byte
    } else if (byte === WILL || byte === WONT || byte === DO || byte === DONT) {
      this.#verb = byte;
      this.#state = OPTION;
    } else {
      this.#state = byte === SB ? SUBNEGOTIATION : DATA;
    }
  }

  /** Answers a request to turn an option on with a refusal, SGA apart (which we offered). */
  #option(option: number, negotiation: number[]): void {
    const wanted = this.#verb === WILL || (this.#verb === DO && option !== SGA);
    if (!wanted || this.#refused.has(option)) return;
    this.#refused.add(option);
    negotiation.push(IAC, this.#verb === WILL ? DONT : WONT, option);
  }

  #append(byte: number): void {
    if (this.#length === this.#line.length) this.#tooLong = true;
    else this.#line[this.#length++] = byte;
  }

  /** Removes the last character, all of its UTF-8 bytes. */
  #erase(): void {
    while (this.#length > 0 && ((this.#line[--this.#length] ?? 0) & 0xc0) === 0x80);
  }

  #endLine(): InputLine {
    const line: InputLine = this.#tooLong
      ? { tooLong: true }
      : { text: this.#text.decode(this.#line.subarray(0, this.#length)) };
    this.#length = 0;
    this.#tooLong = false;
    return line;
  }
}

/**
 * The service's answer to one line, prompt included.
 *
 * @param line The line typed.
 * @param maxLineBytes The line limit, for the error line.
 * @returns The text to send, and whether to close the connection after it.
 */
function answer(line: InputLine, maxLineBytes: number): { text: string; quit: boolean } {
  if ("tooLong" in line) {
    return {
      text: `\x1b[31mThat line is over ${maxLineBytes} bytes: ignored${RESET}\r\n${PROMPT}`,
      quit: false,
    };
  }
  const text = line.text.trim();
  switch (text.toLowerCase()) {
    case "":
      return { text: PROMPT, quit: false };
    case "help":
    case "?":
      return { text: HELP + PROMPT, quit: false };
    case "colours":
    case "colors":
      return { text: colourChart() + PROMPT, quit: false };
    case "time":
      return { text: `It is ${new Date().toISOString()} here.\r\n${PROMPT}`, quit: false };
    case "quit":
    case "exit":
      return { text: "Bye.\r\n", quit: true };
    default:
      // C0 controls never reach a line; C1 ones (such as U+009B, a CSI) go here.
      return {
        text: `\x1b[33myou said:${RESET} ${text.replace(/[\u0080-\u009f]/g, "")}\r\n${PROMPT}`,
        quit: false,
      };
  }
}

const encoder = new TextEncoder();

/**
 * The demo destination service: a TCP listener and the connections it
 * serves, all closed on dispose.
 *
 * @example Talk to it directly
 * ```ts
 * import { DemoService } from "./service.ts";
 *
 * await using demo = DemoService.listen();
 * using conn = await Deno.connect({ hostname: "127.0.0.1", port: demo.addr.port });
 * const buffer = new Uint8Array(3);
 * await conn.read(buffer);
 * console.assert(buffer.join() === "255,251,3"); // IAC WILL SGA
 * ```
 */
export class DemoService implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #logger: Logger;
  readonly #maxLineBytes: number;
  readonly #maxConnections: number;
  readonly #stop = new AbortController();
  readonly #conns = new Set<Deno.TcpConn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;
  #closing: Promise<void> | null = null;

  private constructor(listener: Deno.TcpListener, options: Required<DemoServiceOptions>) {
    this.#listener = listener;
    this.#logger = options.logger;
    this.#maxLineBytes = options.maxLineBytes;
    this.#maxConnections = options.maxConnections;
    this.#accepting = acceptLoop(listener, (conn) => this.#accept(conn as Deno.TcpConn), {
      logger: this.#logger,
      signal: this.#stop.signal,
    });
  }

  /**
   * Starts listening.
   *
   * @param addr Where to listen.
   * @param options Line and connection limits, and the logger.
   * @returns The running service.
   * @throws {Deno.errors.AddrInUse} When the port is taken, and the other errors of `Deno.listen`.
   */
  static listen(
    addr: HostPort = { hostname: "127.0.0.1", port: 0 },
    options: DemoServiceOptions = {},
  ): DemoService {
    const { maxLineBytes = 4096, maxConnections = 1000, logger = new Logger() } = options;
    if (!(Number.isSafeInteger(maxLineBytes) && maxLineBytes >= 1)) {
      throw new RangeError(
        `Cannot use maxLineBytes "${maxLineBytes}": must be a whole number >= 1`,
      );
    }
    if (!(Number.isSafeInteger(maxConnections) && maxConnections >= 1)) {
      throw new RangeError(
        `Cannot use maxConnections "${maxConnections}": must be a whole number >= 1`,
      );
    }
    const listener = Deno.listen({ hostname: addr.hostname, port: addr.port });
    return new DemoService(listener, { maxLineBytes, maxConnections, logger });
  }

  /** The address the service listens on. */
  get addr(): Deno.NetAddr {
    return this.#listener.addr;
  }

  /** Connections open now. */
  get connections(): number {
    return this.#conns.size;
  }

  #accept(conn: Deno.TcpConn): void {
    // Accepted just as the service closes: close() has already swept the connections.
    if (this.#stop.signal.aborted) {
      closeQuietly(conn);
      return;
    }
    const task = this.#serve(conn).finally(() => this.#tasks.delete(task));
    this.#tasks.add(task);
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    const peer = peerAddress(conn);
    this.#conns.add(conn);
    try {
      if (this.#conns.size > this.#maxConnections) {
        this.#logger.warn("demo.busy", { peer, connections: this.#conns.size - 1 });
        await writeAll(conn, encoder.encode("The demo service is busy: try again later.\r\n"));
        return;
      }
      this.#logger.debug("demo.connected", { peer });
      conn.setNoDelay(true);
      await writeAll(conn, new Uint8Array([IAC, WILL, SGA, ...encoder.encode(BANNER + PROMPT)]));
      const input = new LineDecoder(this.#maxLineBytes);
      const buffer = new Uint8Array(READ_BUFFER_BYTES);
      while (true) {
        const count = await conn.read(buffer);
        if (count === null) break;
        const { negotiation, lines } = input.push(buffer.subarray(0, count));
        if (negotiation.length > 0) await writeAll(conn, new Uint8Array(negotiation));
        for (const line of lines) {
          const { text, quit } = answer(line, this.#maxLineBytes);
          await writeAll(conn, encoder.encode(text));
          if (quit) return;
        }
      }
    } catch (error) {
      // A reset peer, or the service closing: either way this connection is done.
      if (!this.#stop.signal.aborted) {
        this.#logger.debug("demo.connection_failed", { peer, error: describeError(error) });
      }
    } finally {
      this.#conns.delete(conn);
      closeQuietly(conn);
      this.#logger.debug("demo.disconnected", { peer });
    }
  }

  /** Stops accepting and closes every connection. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stop.abort();
      closeQuietly(this.#listener);
      for (const conn of this.#conns) closeQuietly(conn);
      await this.#accepting;
      await Promise.all(this.#tasks);
    })();
    return this.#closing;
  }

  /** See {@linkcode DemoService.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
