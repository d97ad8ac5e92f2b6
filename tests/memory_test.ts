/**
 * Memory stays flat over many polls: nothing is left behind per poll or per
 * read. (Run with --v8-flags=--expose-gc, as deno task test does, to
 * measure after a collection.)
 */

import assert from "node:assert/strict";
import { ClientSession } from "../lib/client/mod.ts";
import { SERVER_DEFAULTS } from "../lib/proxy/config.ts";
import { Logger } from "../lib/log.ts";
import { ProxyServer } from "../lib/proxy/server.ts";
import { echoDestination, issuedSecrets } from "./_helpers.ts";

// deno-lint-ignore no-explicit-any
const gc = (globalThis as any).gc as (() => void) | undefined;

Deno.test({
  name: gc
    ? "polls with input leave nothing behind in the server's heap"
    : "polls with input leave nothing behind in the server's heap (skipped: needs --v8-flags=--expose-gc)",
  ignore: !gc,
  async fn() {
    await using destination = echoDestination();
    // A server that keeps no log lines, so the heap holds only what serving does.
    await using proxy = ProxyServer.listen({
      ...SERVER_DEFAULTS,
      proxy: { hostname: "127.0.0.1", port: 0 },
      destination: { hostname: "127.0.0.1", port: destination.port },
      logger: new Logger({ level: "error", sink: () => {} }),
    });
    const session = await ClientSession.create({
      proxy: { hostname: "127.0.0.1", port: proxy.addr.port },
    });
    issuedSecrets.add(session.secret);
    const input = new Uint8Array(100);
    async function polls(count: number): Promise<void> {
      for (let i = 0; i < count; i++) {
        session.send(input);
        await session.poll();
      }
    }
    await polls(1000); // warm-up
    gc?.();
    const before = Deno.memoryUsage().heapUsed;
    await polls(3000);
    gc?.();
    const growth = Deno.memoryUsage().heapUsed - before;
    assert.ok(growth < 1024 * 1024, `the heap grew by ${growth} bytes over 3000 polls`);
  },
});
