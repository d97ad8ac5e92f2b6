/**
 * The client's transport: opening a TCP or TLS connection to the proxy,
 * sending one hello and reading the reply line, within a timeout. What
 * arrives after the reply in the same read is handed on as early output.
 *
 * @module
 */

import { closeQuietly, writeAll } from "../_io.ts";
import { formatHostPort, type HostPort } from "../address.ts";
import { formatHello, type Hello, MAX_HELLO_BYTES, parseReply, type Reply } from "../protocol.ts";
import { ConnectionLostError, ProxyUnavailableError } from "./errors.ts";

/** Where the proxy is and how long to wait for it. */
export interface ClientOptions {
  /**
   * The proxy's address.
   * @default {{ hostname: "localhost", port: 9009 }}
   */
  proxy?: HostPort;
  /**
   * Time allowed to connect and to get the reply, in ms. The server
   * answers `NEW` only once the destination is connected.
   * @default {30000}
   */
  timeout?: number;
  /**
   * Speak TLS to the proxy (a server run with `--tls-cert`); `caCerts`
   * adds PEM certificates to trust beside the system's.
   * @default {undefined: plain TCP}
   */
  tls?: { caCerts?: string[] };
}

/** Where a client looks for the proxy when not told. */
export const DEFAULT_PROXY: HostPort = { hostname: "localhost", port: 9009 };
/** How long a client waits to connect and for a reply, in ms, when not told. */
export const DEFAULT_TIMEOUT_MS = 30_000;
const encoder = new TextEncoder();

/** A connection whose hello was answered: the reply, and any output that came with it. */
export interface Handshake {
  /** The connection, now carrying the session's stream. */
  conn: Deno.Conn;
  /** The server's reply line, parsed. */
  reply: Reply | { bye: string };
  /** Bytes after the reply line that arrived with it. */
  early: Uint8Array;
}

/** Describes a failed connect in a few words. */
function describeConnectError(error: unknown): string {
  if (error instanceof Deno.errors.ConnectionRefused) return "connection refused";
  if (error instanceof DOMException && error.name === "TimeoutError") return "timed out";
  const message = error instanceof Error ? error.message : String(error);
  if (/lookup address|dns/i.test(message)) return "host not found";
  return message;
}

/**
 * Opens a TCP or TLS connection to the proxy within `timeout`. TLS starts
 * over a TCP connection of our own, so that it too gets `setNoDelay` (a
 * `Deno.connectTls` connection has no way to set it).
 */
async function open(
  proxy: HostPort,
  timeout: number,
  tls: ClientOptions["tls"],
): Promise<Deno.Conn> {
  // A timer cleared once connected (AbortSignal.timeout would live on for the whole timeout).
  const abort = new AbortController();
  const timer = setTimeout(
    () => abort.abort(new DOMException("timed out", "TimeoutError")),
    timeout,
  );
  try {
    const tcp = await Deno.connect({
      hostname: proxy.hostname,
      port: proxy.port,
      signal: abort.signal,
    });
    tcp.setNoDelay(true);
    if (!tls) return tcp;
    let conn: Deno.TlsConn;
    try {
      conn = await Deno.startTls(tcp, {
        hostname: proxy.hostname,
        ...(tls.caCerts ? { caCerts: tls.caCerts } : {}),
      });
    } catch (error) {
      closeQuietly(tcp);
      throw error;
    }
    // Certificates are checked in the TLS handshake: fail here, clearly, not at the first read.
    const late = new Promise<never>((_, reject) => {
      if (abort.signal.aborted) reject(abort.signal.reason);
      abort.signal.addEventListener("abort", () => reject(abort.signal.reason), { once: true });
    });
    await Promise.race([conn.handshake(), late]).catch((error) => {
      closeQuietly(conn);
      throw error;
    });
    return conn;
  } finally {
    clearTimeout(timer);
  }
}

/** What to do about a certificate the client refused. */
function certificateHint(cause: string): string {
  if (/CaUsedAsEndEntity/.test(cause)) {
    return ": a self-signed certificate must be made with basicConstraints=critical,CA:FALSE";
  }
  if (/UnknownIssuer/.test(cause)) return ": not trusted (give its CA with --ca)";
  return "";
}

/** Connects, sends a hello and reads the reply line, within the timeout. */
export async function handshake(
  options: ClientOptions,
  hello: Hello,
): Promise<Handshake> {
  const proxy = options.proxy ?? DEFAULT_PROXY;
  const timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
  const where = formatHostPort(proxy);
  let conn: Deno.Conn;
  try {
    conn = await open(proxy, timeout, options.tls);
  } catch (error) {
    const cause = describeConnectError(error);
    if (options.tls && /certificate/i.test(cause)) {
      // The server answered; TLS refused it.
      throw new ProxyUnavailableError(`${where} over TLS: ${cause}${certificateHint(cause)}`);
    }
    throw new ProxyUnavailableError(
      `no socketproxy server answering on ${where}${options.tls ? " over TLS" : ""}: ${cause}`,
    );
  }
  const timer = setTimeout(() => closeQuietly(conn), timeout);
  try {
    await writeAll(conn, encoder.encode(formatHello(hello)));
    // Replies are short; what follows in the same read is early output.
    const buffer = new Uint8Array(4 * MAX_HELLO_BYTES);
    let filled = 0;
    while (true) {
      let count: number | null;
      try {
        count = await conn.read(buffer.subarray(filled));
      } catch (error) {
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
          throw new ConnectionLostError(`no reply from ${where} within ${timeout} ms`);
        }
        throw new ConnectionLostError(
          `connection to ${where} failed: ${describeConnectError(error)}`,
        );
      }
      if (count === null) {
        throw new ConnectionLostError(
          `${where} closed the connection without a reply${
            options.tls ? "" : " (a TLS port? then use --tls)"
          }`,
        );
      }
      const lf = buffer.subarray(filled, filled + count).indexOf(10);
      filled += count;
      if (lf >= 0) {
        const end = filled - count + lf;
        const reply = parseReply(String.fromCharCode(...buffer.subarray(0, end)));
        return { conn, reply, early: buffer.slice(end + 1, filled) };
      }
      if (filled === buffer.length) {
        throw new ConnectionLostError(`${where} sent no reply line: is it a socketproxy server?`);
      }
    }
  } catch (error) {
    closeQuietly(conn);
    if (error instanceof SyntaxError) {
      throw new ConnectionLostError(`${where} is not a socketproxy server: ${error.message}`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
