/**
 * The gateway's named destinations: which ones a page may choose (`{"to"}`
 * in `POST /api/sessions`), the `NEW to=` it sends the server, the 404s for
 * names it does not serve or the server lacks, and the terminal settings it
 * hands the page (`GET /api/terminal`), against a real server with two
 * named destinations.
 */

import assert from "node:assert/strict";
import { gatewayHandler, type GatewayOptions, WebGateway } from "../lib/gateway/mod.ts";
import { RAW_TERMINAL, TELNET_TERMINAL, type TerminalSettings } from "../lib/gateway/mod.ts";
import {
  assertNoSecrets,
  Destination,
  encoder,
  issuedSecrets,
  LogCapture,
  startServer,
} from "./_helpers.ts";

const SHELL: TerminalSettings = { ...RAW_TERMINAL, charset: "cp437" };

async function startGateway(proxyPort: number, options: Partial<GatewayOptions> = {}) {
  const logs = new LogCapture();
  const gateway = await WebGateway.listen({ hostname: "127.0.0.1", port: 0 }, {
    proxy: { hostname: "127.0.0.1", port: proxyPort },
    logger: logs.logger,
    ...options,
  });
  return {
    url: `http://127.0.0.1:${gateway.addr.port}`,
    async [Symbol.asyncDispose]() {
      await gateway.close();
      assertNoSecrets(logs.lines, "the gateway log");
    },
  };
}

/** `POST /api/sessions` with `body` (none when `undefined`): the status and answer. */
async function create(url: string, body?: unknown): Promise<[number, Record<string, unknown>]> {
  const response = await fetch(`${url}/api/sessions`, {
    method: "POST",
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const answer = await response.json();
  if (typeof answer.secret === "string") issuedSecrets.add(answer.secret);
  return [response.status, answer];
}

async function terminal(url: string, query = ""): Promise<[number, unknown]> {
  const response = await fetch(`${url}/api/terminal${query}`);
  return [response.status, await response.json()];
}

/** A server with a default destination and two named ones, `mud` and `shell`. */
function namedServer(main: Destination, mud: Destination, shell: Destination) {
  return startServer(main.port, {
    destinations: [
      { name: "mud", addr: { hostname: "127.0.0.1", port: mud.port }, sendProxy: null },
      { name: "shell", addr: { hostname: "127.0.0.1", port: shell.port }, sendProxy: null },
    ],
  });
}

Deno.test("a gateway told no destinations: sessions go to the server's default, telnet settings, and any name is a 404", async () => {
  await using main = new Destination();
  await using mud = new Destination();
  await using shell = new Destination();
  await using proxy = namedServer(main, mud, shell);
  await using gateway = await startGateway(proxy.port);
  assert.deepEqual(await terminal(gateway.url), [200, { to: null, ...TELNET_TERMINAL }]);
  const [status, answer] = await create(gateway.url);
  assert.equal(status, 201);
  const conn = await main.accepted();
  await conn.write(encoder.encode("hi"));
  assert.equal(proxy.server.store.get(String(answer.id))?.destinationName, "default");
  // An empty object is no destination either.
  assert.equal((await create(gateway.url, {}))[0], 201);
  await main.accepted();

  const [refused, why] = await create(gateway.url, { to: "mud" });
  assert.equal(refused, 404);
  assert.equal(why.error, "unknown_destination");
  assert.deepEqual((await terminal(gateway.url, "?to=mud"))[1], {
    error: "unknown_destination",
    message: 'This gateway serves no destination named "mud"',
  });
  assert.equal(proxy.server.store.size, 2, "no session for the refused name");
  assert.equal(mud.conns.length, 0);
});

Deno.test("a gateway with destinations: its default, the names it serves with their settings, 404 for the rest", async () => {
  await using main = new Destination();
  await using mud = new Destination();
  await using shell = new Destination();
  await using proxy = namedServer(main, mud, shell);
  await using gateway = await startGateway(proxy.port, {
    destinations: new Map([["shell", SHELL], ["ghost", TELNET_TERMINAL]]),
    defaultDestination: "mud",
  });
  assert.deepEqual(await terminal(gateway.url), [200, { to: "mud", ...TELNET_TERMINAL }]);
  assert.deepEqual(await terminal(gateway.url, "?to=shell"), [200, { to: "shell", ...SHELL }]);
  assert.deepEqual(await terminal(gateway.url, "?to="), [200, { to: "mud", ...TELNET_TERMINAL }]);

  const [, toMud] = await create(gateway.url);
  await mud.accepted();
  assert.equal(proxy.server.store.get(String(toMud.id))?.destinationName, "mud");
  const [, toShell] = await create(gateway.url, { to: "shell" });
  await shell.accepted();
  assert.equal(proxy.server.store.get(String(toShell.id))?.destinationName, "shell");

  // A name the gateway does not serve never reaches the server.
  const [status, answer] = await create(gateway.url, { to: "tavern" });
  assert.deepEqual([status, answer.error], [404, "unknown_destination"]);
  assert.equal((await terminal(gateway.url, "?to=tavern"))[0], 404);
  assert.equal(proxy.logs.events("session.unknown_destination").length, 0);
  // One it serves that the server lacks: the server's ERR unknown-destination, the same 404.
  const [lacking, lackingAnswer] = await create(gateway.url, { to: "ghost" });
  assert.deepEqual([lacking, lackingAnswer.error], [404, "unknown_destination"]);
  assert.match(String(lackingAnswer.message), /no destination named ghost/);
  await proxy.logs.waitFor("session.unknown_destination", (fields) => fields.to === "ghost");

  assert.equal((await create(gateway.url, { to: 7 }))[0], 400, "a name must be a string");
  assert.equal(proxy.server.store.size, 2);
  assert.equal(main.conns.length, 0, "the server's own default is not used");
  const post = await fetch(`${gateway.url}/api/terminal`, { method: "POST" });
  await post.body?.cancel();
  assert.equal(post.status, 405);
});

Deno.test("a gateway refuses a destination name the protocol does not allow", () => {
  for (const name of ["", "a b", "x".repeat(65)]) {
    assert.throws(
      () =>
        gatewayHandler({
          proxy: { hostname: "127.0.0.1", port: 1 },
          logger: new LogCapture().logger,
          destinations: new Map([[name, TELNET_TERMINAL]]),
        }),
      TypeError,
    );
  }
});

Deno.test("the default destination's terminal settings (web --terminal without a name) are what a page naming none gets", async () => {
  await using main = new Destination();
  await using mud = new Destination();
  await using shell = new Destination();
  await using proxy = namedServer(main, mud, shell);
  await using gateway = await startGateway(proxy.port, { defaultTerminal: SHELL });
  assert.deepEqual(await terminal(gateway.url), [200, { to: null, ...SHELL }]);
  await using named = await startGateway(proxy.port, {
    defaultDestination: "shell",
    defaultTerminal: SHELL,
    destinations: new Map([["mud", TELNET_TERMINAL]]),
  });
  assert.deepEqual(await terminal(named.url), [200, { to: "shell", ...SHELL }]);
  assert.deepEqual(await terminal(named.url, "?to=mud"), [200, { to: "mud", ...TELNET_TERMINAL }]);
});
