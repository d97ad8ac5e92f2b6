/**
 * A duplicated tab (web/session_client.ts run in Deno against a real
 * gateway): the copy starts from the other window's storage, while that
 * window has gone on sending input. Input the copy queues before it first
 * attaches (the page's NAWS, say) must reach the destination whole, not
 * matched against a count that includes the other window's input.
 */

import assert from "node:assert/strict";
import { gatewayHandler } from "../lib/gateway/mod.ts";
import { HttpServer } from "../lib/http/server.ts";
import { BrowserSession, type Status, type Transport } from "../web/session_client.ts";
import {
  decoder,
  Destination,
  encoder,
  LogCapture,
  startServer,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";
import { MemoryStorage } from "./_memory_storage.ts";

async function serveGateway(proxyPort: number) {
  const logs = new LogCapture();
  const server = await HttpServer.listen({ hostname: "127.0.0.1", port: 0 }, {
    handler: (signal) =>
      gatewayHandler({
        proxy: { hostname: "127.0.0.1", port: proxyPort },
        logger: logs.logger,
        signal,
      }),
    logger: logs.logger,
    name: "web",
  });
  return {
    base: `http://127.0.0.1:${server.addr.port}/`,
    [Symbol.asyncDispose]: () => server.close(),
  };
}

/** A window's session; `onSession` input is queued before the session first attaches. */
function window(
  base: string,
  storage: MemoryStorage,
  transport: Transport,
  onSession?: (session: BrowserSession) => void,
) {
  const statuses: Status[] = [];
  let changed = Promise.withResolvers<void>();
  const session: BrowserSession = new BrowserSession({
    base,
    storage,
    transport,
    longPollWait: 2000,
    pollInterval: 20,
    onOutput() {},
    onStatus(status) {
      statuses.push(status);
      changed.resolve();
      changed = Promise.withResolvers<void>();
    },
    onSession() {
      onSession?.(session);
    },
  });
  return {
    session,
    statuses,
    /** Waits until the window's latest status is `status`. */
    async reach(status: Status): Promise<void> {
      for (let round = 0; statuses.at(-1) !== status && round < 100; round++) {
        await withDeadline(changed.promise, WAIT_MS, `status ${status} (${statuses.join(", ")})`);
      }
      assert.equal(statuses.at(-1), status);
    },
  };
}

for (const transport of ["websocket", "longpoll", "poll"] as const) {
  Deno.test(`${transport}: a duplicated tab's first input reaches the destination whole, after the other window's`, async () => {
    await using destination = new Destination();
    await using proxy = startServer(destination.port);
    await using gateway = await serveGateway(proxy.port);
    const storage = new MemoryStorage();
    const first = window(gateway.base, storage, transport);
    await first.session.start();
    using dest = new TestClient(await destination.accepted());
    await first.reach("connected");

    // The copy is taken; then the first window sends on, and the proxy has it.
    const copy = new MemoryStorage();
    for (const [key, value] of storage.items) copy.items.set(key, value);
    first.session.send(encoder.encode("hello"));
    assert.equal(decoder.decode(await dest.readExactly(5)), "hello");

    // The copy queues input before it attaches (as the page sends its window size).
    const second = window(gateway.base, copy, transport, (session) => {
      session.send(encoder.encode("123456789"));
    });
    await second.session.start();
    await second.reach("connected");
    second.session.send(encoder.encode("!"));
    let heard = "";
    for (let round = 0; !heard.endsWith("!") && round < 100; round++) {
      heard += decoder.decode(await dest.readSome() ?? new Uint8Array(0));
    }
    assert.equal(heard, "123456789!", "the copy's input whole, none of it taken as sent");
    first.session.stop();
    second.session.stop();
    await first.session.stopped();
    await second.session.stopped();
  });
}
