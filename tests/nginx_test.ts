/**
 * Comet behind nginx, for real: Debian's nginx runs nginx.conf.example in
 * front of the gateway, and long-polls and WebSockets go through it under
 * the /terminal/ prefix.
 */

import assert from "node:assert/strict";
import { WebGateway } from "../lib/gateway/mod.ts";
import { WEB_ASSETS } from "../lib/gateway/mod.ts";
import { Wakeup } from "../lib/_io.ts";
import { BrowserSession } from "../web/session_client.ts";
import {
  decoder,
  Destination,
  encoder,
  issuedSecrets,
  LogCapture,
  startServer,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";

import { NGINX, startNginx } from "./_nginx.ts";

async function gatewayFor(proxyPort: number) {
  const logs = new LogCapture();
  const gateway = await WebGateway.listen({ hostname: "127.0.0.1", port: 0 }, {
    proxy: { hostname: "127.0.0.1", port: proxyPort },
    logger: logs.logger,
    assets: WEB_ASSETS,
  });
  return Object.assign(gateway, { logs });
}

const skipped = NGINX ? "" : " (skipped: nginx is not installed; apt-get install nginx-light)";

Deno.test({
  name: `behind nginx: the page and its assets under /terminal/${skipped}`,
  ignore: !NGINX,
  async fn() {
    await using destination = new Destination();
    await using proxy = startServer(destination.port);
    await using gateway = await gatewayFor(proxy.port);
    await using nginx = await startNginx(gateway.addr.port);
    const page = await fetch(nginx.base);
    assert.equal(page.status, 200);
    const html = await page.text();
    const script = /src="([^"]+)"/.exec(html)?.[1];
    assert.equal(script, "assets/app.js");
    const asset = await fetch(new URL(script, nginx.base));
    assert.equal(asset.status, 200);
    assert.match(asset.headers.get("content-type") ?? "", /javascript/);
    await asset.body?.cancel();
  },
});

Deno.test({
  name: `behind nginx: a long-poll returns the moment output arrives, unbuffered${skipped}`,
  ignore: !NGINX,
  async fn() {
    await using destination = new Destination();
    await using proxy = startServer(destination.port);
    await using gateway = await gatewayFor(proxy.port);
    await using nginx = await startNginx(gateway.addr.port);
    const created = await fetch(new URL("api/sessions", nginx.base), { method: "POST" });
    assert.equal(created.status, 201);
    const { id, secret } = await created.json();
    issuedSecrets.add(secret);
    using dest = new TestClient(await destination.accepted());
    const polling = fetch(new URL(`api/sessions/${id}/poll`, nginx.base), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ secret, ack: 0, wait: WAIT_MS }),
    });
    await proxy.logs.waitFor("session.attached", (fields) => fields.mode === "acknowledged");
    await dest.write("through nginx");
    // (nginx consumes the gateway's X-Accel-Buffering: no; it does not reach the client.)
    const response = await polling;
    assert.equal(response.headers.get("x-accel-buffering"), null);
    const body = await response.json();
    assert.equal(decoder.decode(Uint8Array.fromBase64(body.data)), "through nginx");
    // The gateway saw who the client was, through nginx.
    await gateway.logs.waitFor("web.request", (fields) => fields.forwarded_for === "127.0.0.1");
  },
});

for (const transport of ["websocket", "longpoll"] as const) {
  Deno.test({
    name: `behind nginx: a ${transport} session relays, survives a reconnect and resumes${skipped}`,
    ignore: !NGINX,
    async fn() {
      await using destination = new Destination();
      await using proxy = startServer(destination.port);
      await using gateway = await gatewayFor(proxy.port);
      await using nginx = await startNginx(gateway.addr.port);
      const storage = new Map<string, string>();
      const memory = {
        getItem: (key: string) => storage.get(key) ?? null,
        setItem: (key: string, value: string) => {
          storage.set(key, value);
          issuedSecrets.add(JSON.parse(value).secret);
        },
        removeItem: (key: string) => void storage.delete(key),
      };
      let output = "";
      const arrived = new Wakeup();
      const open = () =>
        new BrowserSession({
          base: nginx.base,
          storage: memory,
          transport,
          longPollWait: 5000,
          onOutput(bytes) {
            output += decoder.decode(bytes);
            arrived.wake();
          },
          onStatus() {},
        });
      async function until(text: string): Promise<void> {
        while (output !== text) {
          await withDeadline(arrived.wait(), WAIT_MS, `"${text}" through nginx (have "${output}")`);
        }
      }
      const first = open();
      await first.start();
      using dest = new TestClient(await destination.accepted());
      await dest.write("hello ");
      await until("hello ");
      first.send(encoder.encode("typed"));
      assert.equal(decoder.decode(await dest.readExactly(5)), "typed");
      first.stop(); // as a reload would
      await first.stopped();
      await dest.write("world");
      const second = open();
      await second.start();
      await until("hello world");
      second.stop();
      await second.stopped();
      assert.doesNotMatch(nginx.log(), /\[(error|crit|alert|emerg)\]/);
    },
  });
}
