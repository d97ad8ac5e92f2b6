/**
 * `socketproxy client`: the test client. By default, every line read from
 * stdin makes a new connection to the proxy, resumes the session exactly,
 * sends the line, prints the output the session has pending and whatever
 * arrives in a short wait, and disconnects. With `--stream` it stays
 * attached, a plain pipe from stdin to the destination and back to stdout.
 *
 * @module
 */

import { printOut } from "./cli.ts";
import { defineCommand, type ResolveOptions, resolveSettings } from "./settings.ts";
import { formatUsage } from "./usage.ts";
import {
  AckError,
  AuthError,
  ClientSession,
  ConnectionLostError,
  GapError,
  meaningOf,
  type PollOptions,
  ProtocolError,
  ProxyUnavailableError,
  type StreamEnd,
  UnknownDestinationError,
} from "../client/mod.ts";
import { CommandError, UsageError } from "../errors.ts";
import { formatHostPort, type HostPort, parseHostPort } from "../address.ts";
import { parseCount, parseDuration, tlsOptions } from "./config.ts";
import { SERVER_DEFAULTS } from "../proxy/config.ts";
import { DESTINATION_NAME_PATTERN, ID_PATTERN, SECRET_PATTERN } from "../protocol.ts";
import { SIGNAL_EXIT_STATUS, watchStopSignals } from "./signals.ts";
import { concatBytes } from "../bytes.ts";

/** The settings of `socketproxy client`: its flags, variables and file keys. */
export const CLIENT_COMMAND = defineCommand({
  command: "client",
  summary: "a test client: a connection per line typed",
  intro: `A test client for a socketproxy server. It opens a session (or resumes one)
and then, for every line read from stdin, makes a new connection, resumes
the session exactly, sends the line, prints the output the session has
pending and whatever arrives in a short wait, and disconnects. An empty
line just polls. Ctrl-C or the end of input leaves the session open and
prints how to come back to it. Status messages go to stderr, output to
stdout; when stdout's reader goes away (| head), the client detaches.`,
  settings: [
    {
      name: "proxy",
      kind: "string",
      value: "[HOST][:PORT]",
      help: "the proxy",
      default: "localhost:9009",
    },
    {
      name: "to",
      kind: "string",
      value: "NAME",
      help: "open the session to the server's destination NAME (server " +
        "--destination=NAME=HOST:PORT) instead of its default",
    },
    {
      name: "session",
      kind: "string",
      value: "ID:SECRET",
      help: "resume this session instead of creating one",
      secret: true,
    },
    {
      name: "ack",
      kind: "string",
      value: "N",
      help: "with --session: output bytes already received, to resume exactly " +
        "(default: the output no client has been sent yet)",
    },
    {
      name: "stream",
      kind: "boolean",
      help: "stay attached: stdin goes to the destination as it is read, output to " +
        "stdout, until end of input or Ctrl-C",
    },
    {
      name: "wait",
      kind: "string",
      value: "DURATION",
      help: "how long to collect output after each line, or after the end of input " +
        "with --stream",
      default: "500ms",
    },
    { name: "crlf", kind: "boolean", help: "end each line sent with CR LF instead of LF" },
    {
      name: "tls",
      kind: "boolean",
      help: "speak TLS to the proxy (a server run with --tls-cert)",
    },
    {
      name: "ca",
      kind: "string",
      value: "FILE",
      help: "also trust this PEM certificate; implies --tls",
      complete: "file",
    },
    {
      name: "close",
      kind: "boolean",
      help: "end the session when done instead of leaving it open",
    },
  ],
  notes: "DURATION is a number with ms, s, m or h; a bare number counts seconds.",
});

/** The help text of `socketproxy client`. */
export const CLIENT_USAGE: string = formatUsage(CLIENT_COMMAND);

/** The name of a setting of `socketproxy client`. */
export type ClientSetting = (typeof CLIENT_COMMAND.settings)[number]["name"];

/** What the client was asked to do. */
export interface ClientConfig {
  /** The proxy. */
  proxy: HostPort;
  /** An existing session to resume, or `null` to create one. */
  session: { id: string; secret: string } | null;
  /** The named destination a new session is for; `undefined` for the server's default. */
  to: string | undefined;
  /** Output already received from the resumed session; `undefined`: what no client was sent. */
  ack: number | undefined;
  /** Stay attached instead of a connection per line. */
  stream: boolean;
  /** Line mode: how long to collect output after each line, in ms. */
  wait: number;
  /** The line ending sent. */
  newline: string;
  /** End the session when done. */
  close: boolean;
  /** TLS to the proxy, with extra trusted certificates; `undefined` for plain TCP. */
  tls: { caCerts?: string[] } | undefined;
}

/**
 * Parses the arguments of `socketproxy client`, with the environment and
 * `--config` file behind them.
 *
 * @param args The arguments after `client`.
 * @param options Where variables are read (the process's environment by default).
 * @returns The configuration, or `"help"`.
 * @throws {UsageError} For any invalid flag, variable, file or value.
 *
 * @example
 * ```ts
 * import { parseClientArgs } from "./client.ts";
 * import { environmentOf } from "./settings.ts";
 *
 * const config = parseClientArgs(["--stream"], {
 *   env: environmentOf({ SOCKETPROXY_CLIENT_PROXY: "example.com:9009" }),
 * });
 * console.assert(config !== "help" && config.stream && config.proxy.hostname === "example.com");
 * ```
 */
export function parseClientArgs(
  args: string[],
  options: ResolveOptions = {},
): ClientConfig | "help" {
  const settings = resolveSettings(CLIENT_COMMAND, args, options);
  if (settings.help) return "help";
  const label = (name: ClientSetting): string => settings.label(name);
  const proxyText = settings.string("proxy");
  const sessionText = settings.string("session");
  const ackText = settings.string("ack");
  const waitText = settings.string("wait");
  let session: ClientConfig["session"] = null;
  if (sessionText !== undefined) {
    const colon = sessionText.indexOf(":");
    const id = sessionText.slice(0, colon);
    const secret = sessionText.slice(colon + 1);
    if (colon < 0 || !ID_PATTERN.test(id) || !SECRET_PATTERN.test(secret)) {
      throw new UsageError(
        `${label("session")}: expected ID:SECRET, as printed when a session opens`,
      );
    }
    session = { id, secret };
  }
  if (ackText !== undefined && session === null) {
    throw new UsageError(`${label("ack")} needs --session`);
  }
  const to = settings.string("to");
  if (to !== undefined && session !== null) {
    throw new UsageError(
      `${label("to")} names a new session's destination: it cannot go with --session`,
    );
  }
  if (to !== undefined && !DESTINATION_NAME_PATTERN.test(to)) {
    throw new UsageError(
      `${label("to")}: a destination name is 1 to 64 characters of A-Z a-z 0-9 _ . -`,
    );
  }
  return {
    proxy: proxyText === undefined
      ? SERVER_DEFAULTS.proxy
      : parseHostPort(proxyText, label("proxy"), { defaults: SERVER_DEFAULTS.proxy }),
    session,
    to,
    ack: ackText === undefined ? undefined : parseCount(ackText, label("ack"), 0),
    stream: settings.boolean("stream"),
    wait: waitText === undefined ? 500 : parseDuration(waitText, label("wait")),
    newline: settings.boolean("crlf") ? "\r\n" : "\n",
    close: settings.boolean("close"),
    tls: tlsOptions(settings.boolean("tls"), settings.string("ca"), label("ca")),
  };
}

const encoder = new TextEncoder();

function status(message: string): void {
  const bytes = encoder.encode(`socketproxy client: ${message}\n`);
  let written = 0;
  while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
}

/** Stdout's reader has gone (`| head`): output ends here, and the client detaches. */
class OutputClosed extends Error {
  constructor() {
    super("stdout was closed");
    this.name = "OutputClosed";
  }
}

/**
 * The destination's output on its way to stdout. Output counts as received
 * only once written: what a closed stdout refused goes back to the session,
 * so the `--ack` printed to come back with does not skip it.
 */
class Output {
  readonly #session: ClientSession;
  #open = true;

  constructor(session: ClientSession) {
    this.#session = session;
  }

  /** Whether stdout still takes output. */
  get open(): boolean {
    return this.#open;
  }

  /**
   * Writes output in full.
   *
   * @throws {OutputClosed} When stdout is closed; the unwritten rest is given back.
   */
  async write(bytes: Uint8Array): Promise<void> {
    let written = 0;
    try {
      if (!this.#open) throw new Deno.errors.BrokenPipe("stdout was closed");
      while (written < bytes.length) written += await Deno.stdout.write(bytes.subarray(written));
    } catch (error) {
      if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
      this.#open = false;
      this.#session.holdBack(bytes.subarray(written));
      throw new OutputClosed();
    }
  }
}

/** Turns a library error into one line for the user. */
function explain(error: unknown, config: ClientConfig): CommandError | null {
  const meaning = meaningOf(error);
  if (!meaning) return null;
  // These name the address and the cause themselves.
  if (error instanceof ProxyUnavailableError || error instanceof ConnectionLostError) {
    return new CommandError(error.message, 1);
  }
  if (error instanceof AckError) {
    return new CommandError(
      `--ack=${config.ack} is beyond the ${error.sent} bytes the session has sent`,
      1,
    );
  }
  const detail = error instanceof AuthError || error instanceof UnknownDestinationError ||
      !(error instanceof ProtocolError)
    ? ""
    : `: ${error.message}`;
  return new CommandError(`${formatHostPort(config.proxy)} ${meaning.phrase}${detail}`, 1);
}

/** Splits a byte stream into lines, without their LF (and CR). */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  // Parts of a line not yet ended, joined once its LF comes: linear in the input.
  let parts: Uint8Array[] = [];
  for await (const chunk of stream) {
    let start = 0;
    for (let lf = chunk.indexOf(10); lf >= 0; lf = chunk.indexOf(10, start)) {
      parts.push(chunk.subarray(start, lf));
      const line = concatBytes(parts);
      parts = [];
      yield line.at(-1) === 13 ? line.subarray(0, -1) : line;
      start = lf + 1;
    }
    if (start < chunk.length) parts.push(chunk.slice(start));
  }
  if (parts.length > 0) yield concatBytes(parts);
}

/** Runs a session step; a gap is reported and skipped, other errors propagate. */
async function withGaps<T>(session: ClientSession, step: () => Promise<T>): Promise<T> {
  for (let attempt = 0;; attempt++) {
    try {
      return await step();
    } catch (error) {
      if (!(error instanceof GapError) || attempt > 0) throw error;
      const lost = session.skipGap(error);
      status(
        `${lost} bytes of output were lost before offset ${error.lowest}; continuing from there`,
      );
    }
  }
}

/** How a session's use ended. */
type Ending =
  /** This client detached: end of input, Ctrl-C, or stdout closed. */
  | "detached"
  /** A reply said the destination closed. */
  | "closed"
  /** The proxy closed a connection, and a hello to learn why could take the session from another client. */
  | "dropped"
  /** The proxy said another client took the session over (a stream, framed). */
  | "taken-over"
  /** The proxy said the session has ended: closed, or the proxy is stopping (a stream, framed). */
  | "ended";

/** What the client can say when the proxy closed a connection early. */
const DROPPED =
  "the proxy closed the connection: the destination closed, another client took the session over, or the proxy stopped";

/**
 * One poll, its output printed as it comes. When the server ends a poll
 * that had output, one more poll learns why (in line mode every poll takes
 * the session over anyway). When it drops a poll before any output, the
 * destination closed without a word or another client has just taken the
 * session over: the client says so and stops, without the hello that
 * would take the session back from that client.
 *
 * @returns How the session stands: `null` while the destination is open.
 */
async function pollAndPrint(
  session: ClientSession,
  output: Output,
  options: PollOptions,
): Promise<Ending | null> {
  const print = { onOutput: (bytes: Uint8Array) => output.write(bytes) };
  await withGaps(session, () => session.poll({ ...options, ...print }));
  if (session.state === "open" && session.detachedByServer && !options.signal?.aborted) {
    if (session.droppedByServer) {
      status(DROPPED);
      return "dropped";
    }
    await withGaps(
      session,
      () => session.poll({ ...print, ...(options.signal ? { signal: options.signal } : {}) }),
    );
  }
  if (session.state !== "closed") return null;
  status("the destination closed the session");
  return "closed";
}

async function lineMode(
  session: ClientSession,
  config: ClientConfig,
  stop: AbortSignal,
  output: Output,
): Promise<Ending> {
  // Whatever is already pending, first.
  const first = await pollAndPrint(session, output, { signal: stop });
  if (first) return first;
  const input = lines(Deno.stdin.readable);
  const newline = encoder.encode(config.newline);
  // A read of stdin cannot be cancelled: Ctrl-C stops waiting for it instead.
  const interrupted = new Promise<null>((resolve) => {
    if (stop.aborted) resolve(null);
    stop.addEventListener("abort", () => resolve(null), { once: true });
  });
  while (!stop.aborted) {
    const next = await Promise.race([input.next(), interrupted]);
    if (next === null || next.done) return "detached";
    // The line and its ending in one piece: one write, one segment.
    if (next.value.length > 0) session.send(concatBytes([next.value, newline]));
    // Output is printed as it arrives; Ctrl-C ends the wait.
    const ending = await pollAndPrint(session, output, {
      wait: config.wait,
      until: "deadline",
      signal: stop,
    });
    if (ending) return ending;
  }
  return "detached";
}

async function streamMode(
  session: ClientSession,
  config: ClientConfig,
  stop: AbortSignal,
  output: Output,
): Promise<Ending> {
  const detach = new AbortController();
  const onStop = (): void => detach.abort();
  stop.addEventListener("abort", onStop, { once: true });
  if (stop.aborted) detach.abort();
  const input = Deno.stdin.readable.getReader();
  let linger: ReturnType<typeof setTimeout> | undefined;
  let reading: Promise<void> | null = null;
  /** How the stream ended, as the library tells it. */
  let end = "detached" as StreamEnd;
  async function readInput(): Promise<void> {
    try {
      for (let next = await input.read(); !next.done; next = await input.read()) {
        session.send(next.value);
        // No faster than it goes out; this is also where the library may
        // re-attach to drop confirmed input, so memory stays bounded.
        await session.flush();
        if (detach.signal.aborted) return;
      }
    } catch {
      // stdin went away: as good as its end.
    }
    if (detach.signal.aborted) return;
    // End of input: make sure it all went out, give the destination a
    // moment to answer it, then detach.
    await session.flush();
    linger = setTimeout(() => detach.abort(), config.wait);
  }
  try {
    await withGaps(session, async () => {
      const chunks = session.stream({ signal: detach.signal });
      try {
        // Asking for the first chunk starts the attach; stdin is read from
        // then on, so that flush() waits for the connection.
        let next = chunks.next();
        reading ??= readInput();
        for (let chunk = await next;; chunk = await next) {
          if (chunk.done) {
            end = chunk.value;
            break;
          }
          await output.write(chunk.value);
          next = chunks.next();
        }
      } finally {
        await chunks.return("detached");
      }
    });
  } catch (error) {
    if (!(error instanceof OutputClosed)) throw error;
    end = "detached";
  } finally {
    stop.removeEventListener("abort", onStop);
    detach.abort();
    await input.cancel().catch(() => {});
    await reading;
    clearTimeout(linger);
  }
  switch (end) {
    case "detached":
      return "detached";
    case "destination-closed":
      status("the destination closed the session");
      return "closed";
    case "taken-over":
      status("another client took the session over");
      return "taken-over";
    case "closed":
      status(`session ${session.id} was closed on the proxy`);
      return "ended";
    case "server-stopping":
      status("the proxy is stopping: the session does not survive it");
      return "ended";
    case "dropped":
      // Only from a version 1 proxy, polled: asking why would be a RESUME,
      // which takes the session back from a client that just took it over.
      status(DROPPED);
      return "dropped";
  }
}

/**
 * Runs `socketproxy client`.
 *
 * @param args The arguments after `client`.
 * @returns The exit status: 0, or 1 for a proxy that is not there or a
 * protocol error (one line, then what was left behind).
 * @throws {CommandError} For bad arguments (exit 2).
 */
export async function clientCommand(args: string[]): Promise<number> {
  const config = parseClientArgs(args);
  if (config === "help") {
    printOut(CLIENT_USAGE);
    return 0;
  }
  const stop = new AbortController();
  using signals = watchStopSignals((signal) => Deno.exit(SIGNAL_EXIT_STATUS[signal] ?? 1));
  signals.first.then(() => stop.abort());
  let session: ClientSession | null = null;
  try {
    if (config.session) {
      session = ClientSession.resume(config.session, {
        proxy: config.proxy,
        ...(config.tls ? { tls: config.tls } : {}),
        ...(config.ack === undefined ? {} : { ack: config.ack }),
      });
    } else {
      // Ctrl-C meanwhile is seen once the session exists, so its secret is not lost.
      session = await ClientSession.create({
        proxy: config.proxy,
        ...(config.tls ? { tls: config.tls } : {}),
        ...(config.to === undefined ? {} : { to: config.to }),
      });
      status(`opened session ${session.id}`);
    }
    const output = new Output(session);
    let ending: Ending = "detached";
    try {
      if (!stop.signal.aborted) {
        ending = await (config.stream
          ? streamMode(session, config, stop.signal, output)
          : lineMode(session, config, stop.signal, output));
      }
    } catch (error) {
      if (!(error instanceof OutputClosed)) throw error;
    }
    await farewell(session, config, output, ending);
    return 0;
  } catch (error) {
    const explained = explain(error, config);
    if (!explained) throw error;
    // The error first, then what it leaves behind.
    status(explained.message);
    if (session) {
      reportInput(session);
      if (!(error instanceof AuthError || error instanceof AckError)) {
        hint(session, "the session may still be open");
      }
    }
    return explained.exitCode;
  }
}

function hint(session: ClientSession, what: string): void {
  const ack = session.offsetKnown ? ` --ack=${session.received}` : "";
  status(
    `${what}; to come back: socketproxy client --session=${session.id}:${session.secret}${ack}`,
  );
}

/** Says what became of input that was not confirmed. */
function reportInput(session: ClientSession): void {
  if (session.undelivered > 0) {
    status(`${session.undelivered} bytes of input not delivered: the destination had closed`);
  }
  if (session.unconfirmed > 0) {
    status(`${session.unconfirmed} bytes of input may not have reached the destination`);
  }
}

/** Ends the session (--close), lets the server forget a finished one, or says how to come back. */
async function farewell(
  session: ClientSession,
  config: ClientConfig,
  output: Output,
  ending: Ending,
): Promise<void> {
  // After a drop or a takeover, any hello would take the session back from whoever took it.
  const mayAsk = ending !== "dropped" && ending !== "taken-over" && !session.ended;
  if (mayAsk && session.state !== "closed" && session.unconfirmed > 0) {
    // Input typed but not yet confirmed: one more try to get it through.
    const more = await session.poll({ signal: AbortSignal.timeout(5000) }).catch(() => null);
    if (more) await output.write(more).catch(ignoreOutputClosed);
  }
  reportInput(session);
  if (config.close) {
    await session.close().catch((error) => {
      if (!(error instanceof AuthError)) throw error; // already gone
    });
    status(`closed session ${session.id}`);
    return;
  }
  if (session.state === "closed") {
    // Acknowledge the end of the output once it is all printed, so that the
    // server can forget the session now; a reply that acknowledges all of
    // it ends the session, and the library asks no more.
    for (let round = 0; mayAsk && output.open && !session.ended && round < 3; round++) {
      await output.write(await session.poll()).catch(ignoreOutputClosed);
    }
    if (!session.ended) hint(session, "the rest of the output waits");
    return;
  }
  hint(
    session,
    ending === "dropped"
      ? "the session may still be open"
      : ending === "taken-over"
      ? "the other client has the session"
      : "session left open",
  );
}

function ignoreOutputClosed(error: unknown): void {
  if (!(error instanceof OutputClosed)) throw error;
}
