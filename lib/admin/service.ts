/**
 * The running service: the proxy server and its admin API started together
 * from one configuration, and stopped together. While stopping, the admin
 * API keeps answering (health 503) until the proxy has closed everything.
 *
 * @module
 */

import { AdminServer } from "./api.ts";
import { explainListenError } from "../listen_error.ts";
import type { ServerConfig } from "../proxy/config.ts";
import type { Logger } from "../log.ts";
import { ProxyServer, type ProxyServerOptions } from "../proxy/server.ts";
import { collectStatus, type StatusReport } from "../proxy/status_report.ts";
import { VERSION } from "../version.ts";

/** Options for {@linkcode Service.start}. */
export interface ServiceOptions {
  /** Where events are logged. */
  logger: Logger;
  /**
   * Opens destination connections (tests replace it).
   * @default {TCP with `Deno.connect`}
   */
  connect?: ProxyServerOptions["connect"];
}

/**
 * The proxy server and the admin API of one `socketproxy server` process.
 *
 * @example
 * ```ts ignore
 * const service = Service.start(config, { logger });
 * await service.stop();
 * ```
 */
export class Service implements AsyncDisposable {
  /** The proxy server. */
  readonly proxy: ProxyServer;
  #admin: AdminServer | null = null;
  readonly #config: ServerConfig;
  readonly #startedAt = Date.now();
  #stopping: Promise<void> | null = null;
  #draining: Promise<void> | null = null;
  readonly #stopped = Promise.withResolvers<void>();
  readonly #logger: Logger;

  private constructor(config: ServerConfig, proxy: ProxyServer, logger: Logger) {
    this.#config = config;
    this.proxy = proxy;
    this.#logger = logger;
  }

  /**
   * Starts listening on the proxy port and, unless disabled, the admin port.
   *
   * @param config The configuration.
   * @param options Logger, and the destination connector for tests.
   * @returns The running service.
   * @throws {UsageError} When either address cannot be listened on.
   */
  static async start(config: ServerConfig, options: ServiceOptions): Promise<Service> {
    const { logger } = options;
    let proxy: ProxyServer;
    try {
      proxy = ProxyServer.listen({
        ...config,
        logger,
        ...(options.connect ? { connect: options.connect } : {}),
      });
    } catch (error) {
      throw explainListenError(error, { flag: "--proxy", addr: config.proxy });
    }
    const service = new Service(config, proxy, logger);
    if (config.admin === null) return service;
    try {
      service.#admin = await AdminServer.listen(config.admin, {
        token: config.adminToken,
        allowHosts: config.adminAllowHosts,
        logger,
        backend: {
          report: () => service.report(),
          timings: () => proxy.counters.timings,
          closeSession: (id) => service.closeSession(id),
          stopping: () => service.stopping,
          draining: () => service.draining,
          drain: () => {
            void service.drain();
            return { sessions: proxy.store.size, timeoutMs: config.drainTimeout };
          },
        },
      });
    } catch (error) {
      await proxy.close();
      throw explainListenError(error, { flag: "--admin", addr: config.admin });
    }
    return service;
  }

  /** The admin API, or `null` with `--admin=off`. */
  get admin(): AdminServer | null {
    return this.#admin;
  }

  /** Whether {@linkcode Service.stop} has begun. */
  get stopping(): boolean {
    return this.#stopping !== null;
  }

  /** Resolves once the service has stopped, however it was asked to (a signal, a drain). */
  get stopped(): Promise<void> {
    return this.#stopped.promise;
  }

  /** Whether {@linkcode Service.drain} has begun (and the service not yet stopping). */
  get draining(): boolean {
    return this.#draining !== null && this.#stopping === null;
  }

  /**
   * Drains the server, for a rolling update: `NEW` is refused with
   * `ERR busy draining` (the admin API's `/ready` answers 503, `/health`
   * stays 200), resumes are served until the sessions end; at the drain
   * timeout the rest are closed (framed clients are told
   * `server-stopping`). Then the service stops. Idempotent.
   *
   * @returns Resolves once the service has stopped.
   */
  drain(): Promise<void> {
    this.#draining ??= (async () => {
      const store = this.proxy.store;
      store.drain();
      const timeout = this.#config.drainTimeout;
      this.#logger.info("server.draining", { sessions: store.size, timeout_ms: timeout });
      const deadline = AbortSignal.timeout(timeout);
      await store.emptied(deadline);
      this.#logger.info("server.drained", {
        sessions_left: store.size,
        reason: store.size === 0 ? "all sessions ended" : "drain timeout",
      });
      await this.stop();
    })();
    return this.#draining;
  }

  /**
   * Takes a status report of the whole service.
   *
   * @returns The report.
   */
  report(): StatusReport {
    const config = this.#config;
    return collectStatus(this.proxy, {
      version: VERSION,
      startedAt: this.#startedAt,
      admin: this.admin?.addr ?? null,
      limits: {
        bufferBytes: config.bufferSize,
        idleTimeoutMs: config.idleTimeout,
        handshakeTimeoutMs: config.handshakeTimeout,
        connectTimeoutMs: config.connectTimeout,
        maxSessions: config.maxSessions,
      },
      stopping: this.stopping,
      draining: this.draining,
      node: config.node,
    });
  }

  /**
   * Closes one session, as the admin API's `DELETE /sessions/{id}` does.
   *
   * @param id The session id.
   * @returns `false` when there is no such session.
   */
  closeSession(id: string): boolean {
    const session = this.proxy.store.get(id);
    if (!session) return false;
    session.close("closed by admin");
    return true;
  }

  /**
   * Stops accepting, closes every session and connection, then the admin
   * API. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await this.proxy.close();
      // An admin client that never finishes its request must not hold the
      // shutdown: after a moment, stop waiting for the admin port.
      const admin = this.admin?.close();
      if (admin) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([admin, new Promise((resolve) => (timer = setTimeout(resolve, 300)))]);
        clearTimeout(timer);
      }
      this.#stopped.resolve();
    })();
    return this.#stopping;
  }

  /** See {@linkcode Service.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
