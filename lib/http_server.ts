/**
 * The HTTP server the admin API and the web gateway both run on:
 * `Deno.serve` on one address, or for `localhost` on both loopbacks
 * (see {@linkcode listenLoopbacks}), with a signal that tells the handler
 * the server is closing. Its one `Deno.serve` call is where settings that
 * hold for every HTTP port belong.
 *
 * @module
 */

import type { HostPort } from "./address.ts";
import type { Logger } from "./log.ts";
import { listenLoopbacks } from "./listen.ts";

/** Answers one request; `info` says who asked. */
export type HttpHandler = (
  request: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
) => Response | Promise<Response>;

/** Options for {@linkcode HttpServer.listen}. */
export interface HttpServerOptions {
  /**
   * Builds the request handler. `signal` aborts when the server closes, so
   * that answers held back and open WebSockets end instead of holding the
   * close up.
   */
  handler: (signal: AbortSignal) => HttpHandler;
  /** Where a loopback that cannot be listened on is told. */
  logger: Logger;
  /** What serves, for that log line, such as `admin` or `web`. */
  name: string;
}

/**
 * An HTTP server on one address, or on both loopbacks for `localhost`.
 *
 * @example Serve on a free loopback port
 * ```ts
 * import { HttpServer } from "./http_server.ts";
 * import { Logger } from "./log.ts";
 *
 * await using server = HttpServer.listen({ hostname: "127.0.0.1", port: 0 }, {
 *   handler: () => () => new Response("hello\n"),
 *   logger: new Logger(),
 *   name: "example",
 * });
 * const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
 * console.assert(await response.text() === "hello\n");
 * ```
 */
export class HttpServer implements AsyncDisposable {
  readonly #servers: readonly Deno.HttpServer<Deno.NetAddr>[];
  readonly #first: Deno.HttpServer<Deno.NetAddr>;
  readonly #stop: AbortController;
  #closing: Promise<void> | null = null;

  private constructor(
    first: Deno.HttpServer<Deno.NetAddr>,
    servers: readonly Deno.HttpServer<Deno.NetAddr>[],
    stop: AbortController,
  ) {
    this.#first = first;
    this.#servers = servers;
    this.#stop = stop;
  }

  /**
   * Starts serving.
   *
   * @param addr Where to listen; `localhost` is 127.0.0.1 and ::1 on the same port.
   * @param options The handler, and the logger and name for the log.
   * @returns The running server.
   * @throws {Deno.errors.AddrInUse} When the port is taken (on 127.0.0.1
   * for `localhost`), and the other errors of `Deno.serve`.
   */
  static listen(addr: HostPort, options: HttpServerOptions): HttpServer {
    const stop = new AbortController();
    const handler = options.handler(stop.signal);
    const [first, ...others] = listenLoopbacks(addr, {
      listen: ({ hostname, port }) => Deno.serve({ hostname, port, onListen() {} }, handler),
      logger: options.logger,
      name: options.name,
    });
    return new HttpServer(first, [first, ...others], stop);
  }

  /** The address served first: for `localhost`, 127.0.0.1's. */
  get addr(): Deno.NetAddr {
    return this.#first.addr;
  }

  /** Every address served. */
  get addrs(): Deno.NetAddr[] {
    return this.#servers.map((server) => server.addr);
  }

  /**
   * Stops serving on every address: the handler's signal aborts, and open
   * requests are ended. Resolves once all are closed. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /** See {@linkcode HttpServer.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    this.#stop.abort();
    await Promise.all(this.#servers.map((server) => server.shutdown()));
  }
}
