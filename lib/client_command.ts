/**
 * `socketproxy client`: the test client. By default, every line read from
 * stdin makes a new connection to the proxy, resumes the session exactly,
 * sends the line, prints the output the session has pending and whatever
 * arrives in a short wait, and disconnects. With `--stream` it stays
 * attached, a plain pipe from stdin to the destination and back to stdout.
 *
 * @module
 */

import { parseFlags, printOut, stringFlag } from "./cli.ts";
import {
  AckError,
  AuthError,
  BusyError,
  ClientSession,
  ConnectionLostError,
  GapError,
  HandshakeTimeoutError,
  ProtocolError,
  ProxyUnavailableError,
  UnreachableError,
} from "./client.ts";
import {
  CommandError,
  formatHostPort,
  type HostPort,
  parseCount,
  parseDuration,
  parseHostPort,
  SERVER_DEFAULTS,
  tlsOptions,
  UsageError,
} from "./config.ts";
import { SIGNAL_EXIT_STATUS, watchStopSignals } from "./signals.ts";

/** The help text of `socketproxy client`. */
export const CLIENT_USAGE = `Usage: socketproxy client [options]

A test client for a socketproxy server. It opens a session (or resumes one)
and then, for every line read from stdin, makes a new connection, resumes
the session exactly, sends the line, prints the output the session has
pending and whatever arrives in a short wait, and disconnects. An empty
line just polls. Ctrl-C or the end of input leaves the session open and
prints how to come back to it. Status messages go to stderr, output to stdout.

Options:
  --proxy=[HOST][:PORT]   the proxy (default localhost:9009)
  --session=ID:SECRET     resume this session instead of creating one
  --ack=N                 with --session: output bytes already received, to
                          resume exactly (default: the output no client
                          has been sent yet)
  --stream                stay attached: stdin goes to the destination as it
                          is read, output to stdout, until end of input or Ctrl-C
  --wait=DURATION         how long to collect output after each line, or
                          after the end of input with --stream (default 500ms)
  --crlf                  end each line sent with CR LF instead of LF
  --tls                   speak TLS to the proxy (a server run with --tls-cert)
  --ca=FILE               with --tls: also trust this PEM certificate
  --close                 end the session when done instead of leaving it open
  -h, --help              show this help`;

const FLAGS = {
  proxy: { type: "string" },
  session: { type: "string" },
  ack: { type: "string" },
  stream: { type: "boolean" },
  wait: { type: "string" },
  crlf: { type: "boolean" },
  tls: { type: "boolean" },
  ca: { type: "string" },
  close: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** What the client was asked to do. */
export interface ClientConfig {
  /** The proxy. */
  proxy: HostPort;
  /** An existing session to resume, or `null` to create one. */
  session: { id: string; secret: string } | null;
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
 * Parses the arguments of `socketproxy client`.
 *
 * @param args The arguments after `client`.
 * @returns The configuration, or `"help"`.
 * @throws {UsageError} For any invalid flag or value.
 */
export function parseClientArgs(args: string[]): ClientConfig | "help" {
  const flags = parseFlags(args, FLAGS);
  if (flags.values.help) return "help";
  if (flags.positionals.length > 0) {
    throw new UsageError(`unexpected argument "${flags.positionals[0]}"`);
  }
  const proxyText = stringFlag(flags, "proxy");
  const sessionText = stringFlag(flags, "session");
  const ackText = stringFlag(flags, "ack");
  const waitText = stringFlag(flags, "wait");
  let session: ClientConfig["session"] = null;
  if (sessionText !== undefined) {
    const match = /^([A-Za-z0-9_-]{1,64}):([A-Za-z0-9_-]{22,64})$/.exec(sessionText);
    if (!match) {
      throw new UsageError("--session: expected ID:SECRET, as printed when a session opens");
    }
    session = { id: match[1] ?? "", secret: match[2] ?? "" };
  }
  if (ackText !== undefined && session === null) throw new UsageError("--ack needs --session");
  return {
    proxy: proxyText === undefined
      ? SERVER_DEFAULTS.proxy
      : parseHostPort(proxyText, "--proxy", { defaults: SERVER_DEFAULTS.proxy }),
    session,
    ack: ackText === undefined ? undefined : parseCount(ackText, "--ack", 0),
    stream: flags.values.stream === true,
    wait: waitText === undefined ? 500 : parseDuration(waitText, "--wait"),
    newline: flags.values.crlf ? "\r\n" : "\n",
    close: flags.values.close === true,
    tls: tlsOptions(flags.values.tls === true, stringFlag(flags, "ca")),
  };
}

const encoder = new TextEncoder();

function status(message: string): void {
  const bytes = encoder.encode(`socketproxy client: ${message}\n`);
  let written = 0;
  while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
}

async function writeStdout(bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await Deno.stdout.write(bytes.subarray(written));
}

/** Turns a library error into one line for the user. */
function explain(error: unknown, config: ClientConfig): CommandError | null {
  const proxy = formatHostPort(config.proxy);
  if (error instanceof ProxyUnavailableError || error instanceof ConnectionLostError) {
    return new CommandError(error.message, 1);
  }
  if (error instanceof AuthError) {
    return new CommandError(
      `${proxy} knows no such session (ended, expired, or a wrong secret)`,
      1,
    );
  }
  if (error instanceof UnreachableError) {
    return new CommandError(`${proxy} cannot reach its destination: ${error.message}`, 1);
  }
  if (error instanceof BusyError) {
    return new CommandError(`${proxy} is at its session limit: ${error.message}`, 1);
  }
  if (error instanceof HandshakeTimeoutError) {
    return new CommandError(`${proxy} timed out our hello: ${error.message}`, 1);
  }
  if (error instanceof AckError) {
    return new CommandError(`--ack is beyond the ${error.sent} bytes the session has sent`, 1);
  }
  if (error instanceof ProtocolError) {
    return new CommandError(`${proxy} refused: ${error.code} ${error.message}`, 1);
  }
  return null;
}

/** Splits a byte stream into lines, without their LF (and CR). */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  // Parts of a line not yet ended, joined once its LF comes: linear in the input.
  let parts: Uint8Array[] = [];
  for await (const chunk of stream) {
    let start = 0;
    for (let lf = chunk.indexOf(10); lf >= 0; lf = chunk.indexOf(10, start)) {
      parts.push(chunk.subarray(start, lf));
      const line = joinBytes(parts);
      parts = [];
      yield line.at(-1) === 13 ? line.subarray(0, -1) : line;
      start = lf + 1;
    }
    if (start < chunk.length) parts.push(chunk.slice(start));
  }
  if (parts.length > 0) yield joinBytes(parts);
}

function joinBytes(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] ?? new Uint8Array(0);
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Runs a session step; a gap is reported and skipped, other errors propagate. */
async function withGaps<T>(session: ClientSession, step: () => Promise<T>): Promise<T> {
  for (let attempt = 0;; attempt++) {
    try {
      return await step();
    } catch (error) {
      if (!(error instanceof GapError) || attempt > 0) throw error;
      status(
        `${
          error.lowest - session.received
        } bytes of output were lost before offset ${error.lowest}; continuing from there`,
      );
      session.skipGap(error);
    }
  }
}

async function lineMode(
  session: ClientSession,
  config: ClientConfig,
  stop: AbortSignal,
): Promise<void> {
  // Whatever is already pending, first.
  await writeStdout(await withGaps(session, () => session.poll({ signal: stop })));
  const input = lines(Deno.stdin.readable);
  // A read of stdin cannot be cancelled: Ctrl-C stops waiting for it instead.
  const interrupted = new Promise<null>((resolve) => {
    if (stop.aborted) resolve(null);
    stop.addEventListener("abort", () => resolve(null), { once: true });
  });
  while (!stop.aborted) {
    const next = await Promise.race([input.next(), interrupted]);
    if (next === null || next.done) return;
    if (next.value.length > 0) {
      session.send(next.value);
      session.send(config.newline);
    }
    // Output is printed as it arrives; Ctrl-C ends the wait.
    await withGaps(
      session,
      () =>
        session.poll({ wait: config.wait, until: "deadline", signal: stop, onOutput: writeStdout }),
    );
    if (session.state === "closed") {
      status("the destination closed the session");
      return;
    }
  }
}

async function streamMode(
  session: ClientSession,
  config: ClientConfig,
  stop: AbortSignal,
): Promise<void> {
  const connection = await withGaps(session, () => session.connect("streaming"));
  let detaching = false;
  let linger: ReturnType<typeof setTimeout> | undefined;
  function detach(): void {
    detaching = true;
    connection.close();
  }
  stop.addEventListener("abort", detach, { once: true });
  const input = Deno.stdin.readable.getReader();
  const reading = (async () => {
    try {
      for (let next = await input.read(); !next.done; next = await input.read()) {
        session.send(next.value);
      }
    } catch {
      // stdin went away: as good as its end.
    }
    if (detaching) return;
    // End of input: make sure it all went out, give the destination a
    // moment to answer it, then detach.
    await session.flush();
    linger = setTimeout(detach, config.wait);
  })();
  try {
    for (let chunk = await connection.read(); chunk !== null; chunk = await connection.read()) {
      await writeStdout(chunk);
    }
    if (!detaching) {
      // The proxy closed the connection: learn why, collecting anything left.
      await writeStdout(await withGaps(session, () => session.poll()));
      status(
        session.state === "closed"
          ? "the destination closed the session"
          : "the proxy disconnected this client (another client took the session over?)",
      );
    }
  } finally {
    stop.removeEventListener("abort", detach);
    detaching = true;
    connection.close();
    await input.cancel().catch(() => {});
    await reading;
    clearTimeout(linger);
  }
}

/**
 * Runs `socketproxy client`.
 *
 * @param args The arguments after `client`.
 * @returns The exit status.
 * @throws {CommandError} For a proxy that is not there or a protocol error (exit 1) or bad arguments (exit 2).
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
      });
      status(`opened session ${session.id}`);
    }
    if (!stop.signal.aborted) {
      await (config.stream
        ? streamMode(session, config, stop.signal)
        : lineMode(session, config, stop.signal));
    }
    await farewell(session, config);
    return 0;
  } catch (error) {
    const explained = explain(error, config);
    if (session && !(error instanceof AuthError)) hint(session);
    if (!explained) throw error;
    throw explained;
  }
}

function hint(session: ClientSession): void {
  const ack = session.offsetKnown ? ` --ack=${session.received}` : "";
  status(
    `session left open; to come back: socketproxy client --session=${session.id}:${session.secret}${ack}`,
  );
}

/** Ends the session (--close), lets the server forget a finished one, or says how to come back. */
async function farewell(session: ClientSession, config: ClientConfig): Promise<void> {
  if (session.unconfirmed > 0) {
    // Input typed but not yet confirmed: one more try to get it through.
    await session.poll({ signal: AbortSignal.timeout(5000) }).then(writeStdout, () => {});
    if (session.unconfirmed > 0) {
      status(`${session.unconfirmed} bytes of input may not have reached the destination`);
    }
  }
  if (config.close) {
    await session.close().catch((error) => {
      if (!(error instanceof AuthError)) throw error; // already gone
    });
    status(`closed session ${session.id}`);
  } else if (session.state === "closed") {
    // Acknowledge the end of the output, so the server can end the session.
    await session.poll().catch((error) => {
      if (!(error instanceof AuthError)) throw error;
    });
  } else {
    hint(session);
  }
}
