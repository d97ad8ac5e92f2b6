/**
 * The gateway names the browser to the server (`NEW from=`): its peer, or
 * the last X-Forwarded-For entry from a reverse proxy on its own machine;
 * against a server that does not trust it, one warning, and sessions made
 * without it.
 */

import assert from "node:assert/strict";
import { WebGateway } from "../lib/gateway/mod.ts";
import { Destination, issuedSecrets, LogCapture, startServer } from "./_helpers.ts";

async function gatewayFor(proxyPort: number): Promise<WebGateway & { logs: LogCapture }> {
  const logs = new LogCapture();
  const gateway = await WebGateway.listen({ hostname: "127.0.0.1", port: 0 }, {
    proxy: { hostname: "127.0.0.1", port: proxyPort },
    logger: logs.logger,
  });
  return Object.assign(gateway, { logs });
}

async function create(gateway: WebGateway, headers: Record<string, string> = {}): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${gateway.addr.port}/api/sessions`, {
    method: "POST",
    headers,
  });
  const body = await response.json();
  assert.equal(response.status, 201, JSON.stringify(body));
  issuedSecrets.add(body.secret);
  return body.id;
}

Deno.test("web sends the browser's address: its peer, or a local reverse proxy's X-Forwarded-For entry", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await gatewayFor(proxy.port);
  const direct = await create(gateway);
  assert.match(proxy.server.store.get(direct)?.client ?? "", /^127\.0\.0\.1:\d+$/);
  const behindNginx = await create(gateway, { "x-forwarded-for": "203.0.113.9, 192.0.2.7" });
  assert.equal(proxy.server.store.get(behindNginx)?.client, "192.0.2.7", "the last entry, no port");
  const ipv6 = await create(gateway, { "x-forwarded-for": "2001:db8::7" });
  assert.equal(proxy.server.store.get(ipv6)?.client, "[2001:db8::7]");
  const junk = await create(gateway, { "x-forwarded-for": "not-an-address" });
  assert.match(proxy.server.store.get(junk)?.client ?? "", /^127\.0\.0\.1:\d+$/, "the peer then");
});

Deno.test("a server that does not trust the gateway: one warning naming --trust-from, sessions made without from=", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port, { trustFrom: [] });
  await using gateway = await gatewayFor(proxy.port);
  const first = await create(gateway);
  const second = await create(gateway);
  assert.ok(proxy.server.store.get(first) && proxy.server.store.get(second));
  const warnings = gateway.logs.events("web.untrusted");
  assert.equal(warnings.length, 1, "one warning");
  assert.match(String(warnings[0]?.fields.hint), /--trust-from/);
  // The second NEW went without from= at once: one refusal on the server, not two.
  assert.equal(proxy.logs.events("session.untrusted").length, 1);
});
