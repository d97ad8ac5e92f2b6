/**
 * A TCP forwarder for tests, on loopback port 0, between clients and a
 * server: it records each connection's hello, can cut every connection at
 * once (a network drop neither side caused), and can play a server that
 * speaks version 1 only by refusing framed hellos as such a server does.
 */

import { closeQuietly, writeAll } from "../lib/_io.ts";

/** Options for {@linkcode Forwarder}. */
export interface ForwarderOptions {
  /** Answer hellos that end in ` framed` with `ERR bad-request`, as a version 1 server does. */
  refuseFramed?: boolean;
}

/** Forwards loopback connections to `127.0.0.1:target`. */
export class Forwarder implements AsyncDisposable {
  /** The port clients connect to. */
  readonly port: number;
  /** The first line each client sent, in order. */
  readonly hellos: string[] = [];
  readonly #listener: Deno.TcpListener;
  readonly #target: number;
  readonly #options: ForwarderOptions;
  readonly #open = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;

  /**
   * Starts forwarding.
   *
   * @param target The server's port on 127.0.0.1.
   * @param options Whether to refuse framed hellos.
   */
  constructor(target: number, options: ForwarderOptions = {}) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = this.#listener.addr.port;
    this.#target = target;
    this.#options = options;
    this.#accepting = this.#accept();
  }

  /** Closes every forwarded connection now, both sides. */
  cut(): void {
    for (const conn of this.#open) closeQuietly(conn);
    this.#open.clear();
  }

  async #accept(): Promise<void> {
    for await (const client of this.#listener) {
      const task = this.#forward(client).finally(() => this.#tasks.delete(task));
      this.#tasks.add(task);
    }
  }

  async #forward(client: Deno.Conn): Promise<void> {
    this.#open.add(client);
    let server: Deno.Conn | null = null;
    try {
      const first = await readLine(client);
      if (first === null) return;
      const line = new TextDecoder().decode(first.line).replace(/\r?\n$/, "");
      this.hellos.push(line);
      if (this.#options.refuseFramed && / framed$/.test(line)) {
        await writeAll(client, new TextEncoder().encode("ERR bad-request unknown hello\n"));
        return;
      }
      server = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
      this.#open.add(server);
      await writeAll(server, first.line);
      if (first.rest.length > 0) await writeAll(server, first.rest);
      await Promise.all([pipe(client, server), pipe(server, client)]);
    } catch {
      // Cut, or either side went away: both are closed below.
    } finally {
      closeQuietly(client);
      if (server) closeQuietly(server);
      this.#open.delete(client);
      if (server) this.#open.delete(server);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    // Closed for good before the cut: a client that reconnects is refused.
    await this.#accepting.catch(() => {});
    this.cut();
    await Promise.allSettled([...this.#tasks]);
  }
}

/** Reads up to the first LF (at most 1 KiB): the line and what came after it. */
async function readLine(
  conn: Deno.Conn,
): Promise<{ line: Uint8Array; rest: Uint8Array } | null> {
  const buffer = new Uint8Array(1024);
  let filled = 0;
  while (filled < buffer.length) {
    const count = await conn.read(buffer.subarray(filled));
    if (count === null) return null;
    filled += count;
    const lf = buffer.subarray(0, filled).indexOf(10);
    if (lf >= 0) {
      return { line: buffer.slice(0, lf + 1), rest: buffer.slice(lf + 1, filled) };
    }
  }
  return null;
}

/** Copies `from` to `to` until `from` ends, then half-closes `to`. */
async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  for (let count = await from.read(buffer); count !== null; count = await from.read(buffer)) {
    await writeAll(to, buffer.subarray(0, count));
  }
  await to.closeWrite().catch(() => {});
}
