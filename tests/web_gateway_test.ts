/**
 * The HTTP gateway: every route and error, long-polls, lost responses,
 * floods, gateway restarts, and the WebSocket's browser protocol (version
 * 2): resumes, end reasons, takeovers, input and acknowledgements, against
 * a real server.
 */

import assert from "node:assert/strict";
import type { GatewayLimits, GatewayOptions } from "../lib/gateway/mod.ts";
import { gatewayHandler, WebGateway } from "../lib/gateway/mod.ts";
import { AuthThrottle } from "../lib/throttle.ts";
import { WEB_ASSETS } from "../lib/gateway/mod.ts";
import { concatBytes } from "../lib/bytes.ts";
import { encodeFrame } from "../lib/frames.ts";
import { Wakeup } from "../lib/_io.ts";
import {
  assertNoSecrets,
  decoder,
  Destination,
  echoDestination,
  encoder,
  firstDifference,
  issuedSecrets,
  LogCapture,
  randomBytes,
  startServer,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";
import { hello, RawSocket, TestSocket, wsUrl } from "./_gateway_socket.ts";
import { newSession as newStackSession, startStack } from "./_stack.ts";

interface TestGateway extends AsyncDisposable {
  url: string;
  logs: LogCapture;
  gateway: WebGateway;
}

async function startGateway(
  proxyPort: number,
  limits: Partial<GatewayLimits> = {},
  options: Partial<GatewayOptions> = {},
): Promise<TestGateway> {
  const logs = new LogCapture();
  const gateway = await WebGateway.listen({ hostname: "127.0.0.1", port: 0 }, {
    proxy: { hostname: "127.0.0.1", port: proxyPort },
    logger: logs.logger,
    assets: WEB_ASSETS,
    limits,
    ...options,
  });
  return {
    url: `http://127.0.0.1:${gateway.addr.port}`,
    logs,
    gateway,
    async [Symbol.asyncDispose]() {
      await gateway.close();
      assertNoSecrets(logs.lines, "the gateway log");
    },
  };
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function call(url: string, method: string, body?: unknown): Promise<Answer> {
  const response = await fetch(url, {
    method,
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : {}, headers: response.headers };
}

async function newSession(gateway: TestGateway): Promise<{ id: string; secret: string }> {
  const { status, body, headers } = await call(`${gateway.url}/api/sessions`, "POST");
  assert.equal(status, 201, JSON.stringify(body));
  const session = { id: String(body.id), secret: String(body.secret) };
  issuedSecrets.add(session.secret);
  assert.equal(headers.get("location"), `sessions/${session.id}`);
  return session;
}

interface PollAnswer {
  data: Uint8Array;
  ack: number;
  in: number;
  state: string;
  dropped: boolean;
}

async function poll(
  gateway: TestGateway,
  session: { id: string; secret: string },
  request: Record<string, unknown>,
): Promise<PollAnswer> {
  const { status, body } = await call(`${gateway.url}/api/sessions/${session.id}/poll`, "POST", {
    secret: session.secret,
    ...request,
  });
  assert.equal(status, 200, JSON.stringify(body));
  return {
    data: Uint8Array.fromBase64(String(body.data)),
    ack: Number(body.ack),
    in: Number(body.in),
    state: String(body.state),
    dropped: body.dropped === true,
  };
}

function base64(text: string): string {
  return encoder.encode(text).toBase64();
}

Deno.test("POST /api/sessions creates a session; a poll relays input and output", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  assert.equal(proxy.server.store.size, 1);
  const sent = await poll(gateway, session, { ack: 0, input: base64("hello\n"), wait: WAIT_MS });
  assert.equal(decoder.decode(sent.data), "hello\n");
  assert.deepEqual([sent.ack, sent.in, sent.state], [6, 0, "open"]);
  const next = await poll(gateway, session, { ack: sent.ack });
  assert.deepEqual([next.data.length, next.ack, next.in], [0, 6, 6], "the input is confirmed");
});

Deno.test("a long-poll returns as soon as output arrives, not before", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  using dest = new TestClient(await destination.accepted());
  const waiting = poll(gateway, session, { ack: 0, wait: WAIT_MS });
  await proxy.logs.waitFor("session.attached", (fields) => fields.mode === "acknowledged");
  await dest.write("late news");
  const answer = await waiting;
  // Had it returned before the output, it would have come back empty.
  assert.equal(decoder.decode(answer.data), "late news");
});

Deno.test("long-polls carry X-Accel-Buffering: no, and wait is capped", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port, { maxWait: 50 });
  const session = await newSession(gateway);
  const response = await fetch(`${gateway.url}/api/sessions/${session.id}/poll`, {
    method: "POST",
    body: JSON.stringify({ secret: session.secret, ack: 0, wait: 10 ** 9 }),
  });
  assert.equal(response.headers.get("x-accel-buffering"), "no");
  assert.equal(response.headers.get("cache-control"), "no-store");
  const body = await response.json();
  assert.deepEqual([body.data, body.ack], ["", 0], "came back empty at the capped wait");
});

Deno.test("a lost response is polled again with the old ack: the same bytes, once", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  using dest = new TestClient(await destination.accepted());
  await dest.write("only once");
  const lost = await poll(gateway, session, { ack: 0, wait: WAIT_MS });
  assert.equal(decoder.decode(lost.data), "only once");
  // The browser never saw that answer: it asks again from its old ack.
  const again = await poll(gateway, session, { ack: 0 });
  assert.equal(decoder.decode(again.data), "only once");
  const after = await poll(gateway, session, { ack: again.ack });
  assert.equal(after.data.length, 0, "nothing repeated after the ack moves on");
});

Deno.test("input resent after a lost response reaches the destination once", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  using dest = new TestClient(await destination.accepted());
  const first = await poll(gateway, session, { ack: 0, inputAt: 0, input: base64("abc") });
  assert.equal(first.in, 0);
  // The answer was lost: the page resends all it has not seen confirmed, with where it starts.
  const resent = await poll(gateway, session, { ack: 0, inputAt: 0, input: base64("abcdef") });
  assert.equal(resent.in, 3, "the server had the first three bytes");
  const confirmed = await poll(gateway, session, { ack: 0, inputAt: 3, input: base64("def") });
  assert.equal(confirmed.in, 6);
  assert.equal(decoder.decode(await dest.readExactly(6)), "abcdef");
});

Deno.test("a newer poll ends the older one, as a takeover does", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  using dest = new TestClient(await destination.accepted());
  const older = poll(gateway, session, { ack: 0, wait: WAIT_MS });
  await proxy.logs.waitFor("session.attached", (fields) => fields.mode === "acknowledged");
  const newer = poll(gateway, session, { ack: 0, wait: WAIT_MS });
  const ended = await older;
  assert.deepEqual([ended.data.length, ended.state, ended.dropped], [0, "open", true]);
  await proxy.logs.waitFor("session.taken_over");
  await dest.write("for the newer");
  const served = await newer;
  assert.deepEqual([decoder.decode(served.data), served.dropped], ["for the newer", false]);
});

Deno.test("a long-poll the destination's close cuts off says dropped; the next poll learns closed", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  const dest = await destination.accepted();
  const waiting = poll(gateway, session, { ack: 0, wait: WAIT_MS });
  await proxy.logs.waitFor("session.attached", (fields) => fields.mode === "acknowledged");
  dest.close();
  const cut = await waiting;
  assert.deepEqual([cut.data.length, cut.ack, cut.state, cut.dropped], [0, 0, "open", true]);
  // Not a failed guess: the session waits for this poll, which acknowledges the end.
  const next = await poll(gateway, session, { ack: 0 });
  assert.deepEqual([next.data.length, next.state, next.dropped], [0, "closed", false]);
  await proxy.logs.waitFor("session.closed");
  assert.equal(gateway.logs.events("web.auth_failed").length, 0);
});

Deno.test("a long-poll that times out is not dropped", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  using _dest = new TestClient(await destination.accepted());
  const quiet = await poll(gateway, session, { ack: 0, wait: 50 });
  assert.deepEqual([quiet.data.length, quiet.state, quiet.dropped], [0, "open", false]);
});

Deno.test("a flood of output through polling arrives byte for byte", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port, { bufferSize: 256 * 1024 });
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  using dest = new TestClient(await destination.accepted());
  const output = randomBytes(4 * 1024 * 1024, 6);
  const writing = dest.write(output);
  const received = new Uint8Array(output.length);
  let ack = 0;
  for (let polls = 0; ack < output.length; polls++) {
    assert.ok(polls < 10_000, "too many polls");
    const answer = await poll(gateway, session, { ack, wait: WAIT_MS });
    received.set(answer.data, ack);
    assert.equal(answer.ack, ack + answer.data.length);
    ack = answer.ack;
  }
  await writing;
  assert.equal(firstDifference(received, output), -1);
});

Deno.test("a session survives a gateway restart between polls", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  const before = await startGateway(proxy.port);
  const session = await newSession(before);
  const first = await poll(before, session, { ack: 0, input: base64("one "), wait: WAIT_MS });
  await before[Symbol.asyncDispose]();
  await using after = await startGateway(proxy.port);
  const second = await poll(after, session, {
    ack: first.ack,
    input: base64("two"),
    wait: WAIT_MS,
  });
  assert.equal(decoder.decode(first.data) + decoder.decode(second.data), "one two");
});

Deno.test("DELETE /api/sessions/{id} with the secret ends the session", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  using dest = new TestClient(await destination.accepted());
  const wrong = await call(`${gateway.url}/api/sessions/${session.id}`, "DELETE", {
    secret: "B".repeat(32),
  });
  assert.equal(wrong.status, 401);
  const ended = await call(`${gateway.url}/api/sessions/${session.id}`, "DELETE", {
    secret: session.secret,
  });
  assert.equal(ended.status, 200);
  assert.deepEqual(ended.body, { closed: session.id });
  assert.equal((await dest.readToEnd()).length, 0);
  const gone = await call(`${gateway.url}/api/sessions/${session.id}/poll`, "POST", {
    secret: session.secret,
    ack: 0,
  });
  assert.equal(gone.status, 401);
});

Deno.test("errors are JSON with fitting statuses", async (t) => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port, { maxSessions: 1, bufferSize: 1024 });
  await using gateway = await startGateway(proxy.port, { maxInput: 16, maxBody: 4096 });
  const session = await newSession(gateway);
  const pollUrl = `${gateway.url}/api/sessions/${session.id}/poll`;
  const cases: [string, string, string, unknown, number, string][] = [
    ["unknown path", "GET", `${gateway.url}/nowhere`, undefined, 404, "not_found"],
    ["wrong method", "GET", `${gateway.url}/api/sessions`, undefined, 405, "method_not_allowed"],
    [
      "malformed id",
      "POST",
      `${gateway.url}/api/sessions/a%20b/poll`,
      { secret: session.secret, ack: 0 },
      400,
      "bad_request",
    ],
    ["body not JSON", "POST", pollUrl, "{nope", 400, "bad_request"],
    ["body not an object", "POST", pollUrl, "[1]", 400, "bad_request"],
    ["no secret", "POST", pollUrl, { ack: 0 }, 400, "bad_request"],
    ["negative ack", "POST", pollUrl, { secret: session.secret, ack: -1 }, 400, "bad_request"],
    ["ack not a number", "POST", pollUrl, { secret: session.secret, ack: "0" }, 400, "bad_request"],
    [
      "input not base64",
      "POST",
      pollUrl,
      { secret: session.secret, ack: 0, input: "!!" },
      400,
      "bad_request",
    ],
    [
      "wait not a number",
      "POST",
      pollUrl,
      { secret: session.secret, ack: 0, wait: "1s" },
      400,
      "bad_request",
    ],
    ["wrong secret", "POST", pollUrl, { secret: "C".repeat(32), ack: 0 }, 401, "auth"],
    ["ack beyond output", "POST", pollUrl, { secret: session.secret, ack: 5 }, 409, "ack"],
    [
      "oversized input",
      "POST",
      pollUrl,
      { secret: session.secret, ack: 0, input: base64("x".repeat(17)) },
      413,
      "too_large",
    ],
    [
      "oversized body",
      "POST",
      pollUrl,
      { secret: session.secret, ack: 0, pad: "x".repeat(5000) },
      413,
      "too_large",
    ],
    ["session limit", "POST", `${gateway.url}/api/sessions`, undefined, 503, "busy"],
  ];
  for (const [name, method, url, body, status, error] of cases) {
    await t.step(name, async () => {
      const answer = await call(url, method, body);
      assert.equal(answer.status, status, JSON.stringify(answer.body));
      assert.equal(answer.body.error, error);
      assert.equal(typeof answer.body.message, "string");
      assert.match(answer.headers.get("content-type") ?? "", /^application\/json/);
    });
  }

  await t.step("gap, with the lowest offset", async () => {
    using dest = new TestClient(await destination.accepted());
    using streaming = await TestClient.connect(proxy.port);
    await streaming.hello(`RESUME ${session.id} ${session.secret}`);
    await dest.write(new Uint8Array(4096));
    await streaming.readExactly(4096);
    streaming.close();
    await proxy.logs.waitFor("session.detached", (fields) => fields.sent === 4096);
    const answer = await call(pollUrl, "POST", { secret: session.secret, ack: 0 });
    assert.equal(answer.status, 409);
    assert.equal(answer.body.error, "gap");
    assert.ok(Number(answer.body.lowest) >= 4096 - 1024);
  });

  await t.step("oversized input says the limit, so a page can split its input", async () => {
    const answer = await call(pollUrl, "POST", {
      secret: session.secret,
      ack: 0,
      input: base64("x".repeat(17)),
    });
    assert.equal(answer.body.maxInput, 16);
  });

  await t.step("every answer is logged with its status; an oversized request as a warning", () => {
    const logged = gateway.logs.events("web.request");
    for (const [, , , , status] of cases) {
      assert.ok(logged.some((record) => record.fields.status === status), `${status} logged`);
    }
    const tooLarge = logged.filter((record) => record.fields.status === 413);
    assert.ok(tooLarge.length > 0 && tooLarge.every((record) => record.level === "warn"));
    assert.ok(
      logged.filter((record) => record.fields.status === 404).every((record) =>
        record.level === "debug" && record.fields.path === "/nowhere"
      ),
    );
  });
});

Deno.test("a proxy that is not there, or cannot reach its destination, is 502", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  closed.close();
  await using nowhere = await startGateway(closed.addr.port);
  const missing = await call(`${nowhere.url}/api/sessions`, "POST");
  assert.deepEqual([missing.status, missing.body.error], [502, "proxy_unavailable"]);
  await using proxy = startServer(closed.addr.port);
  await using gateway = await startGateway(proxy.port);
  const unreachable = await call(`${gateway.url}/api/sessions`, "POST");
  assert.deepEqual([unreachable.status, unreachable.body.error], [502, "unreachable"]);
});

Deno.test("the page and its assets are served with their types, revalidated by ETag", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const tags = new Set<string>();
  for (
    const [path, type] of [
      ["/", "text/html; charset=utf-8"],
      ["/assets/app.js", "text/javascript; charset=utf-8"],
      ["/assets/style.css", "text/css; charset=utf-8"],
    ] as const
  ) {
    const response = await fetch(`${gateway.url}${path}`);
    const text = await response.text();
    assert.equal(response.status, 200, path);
    assert.equal(response.headers.get("content-type"), type);
    // Never used unchecked, so a page and its script always come from one version.
    assert.equal(response.headers.get("cache-control"), "no-cache");
    const etag = response.headers.get("etag") ?? "";
    assert.match(etag, /^"[A-Za-z0-9_-]{16}"$/);
    tags.add(etag);
    assert.ok(text.length > 100);
    const unchanged = await fetch(`${gateway.url}${path}`, {
      headers: { "if-none-match": `"other", W/${etag}` },
    });
    assert.equal(unchanged.status, 304, `${path} is not sent again while unchanged`);
    assert.equal(unchanged.headers.get("etag"), etag);
    assert.equal(await unchanged.text(), "");
    const changed = await fetch(`${gateway.url}${path}`, { headers: { "if-none-match": '"old"' } });
    assert.equal(changed.status, 200);
    assert.equal(await changed.text(), text);
  }
  assert.equal(tags.size, 3, "each file its own tag");
  const page = await (await fetch(`${gateway.url}/`)).text();
  assert.doesNotMatch(page, /(src|href)="\//, "only relative URLs, so a path prefix works");
});

Deno.test("only a wrong secret's answer is held back, per browser; the right one never waits", async () => {
  await using destination = echoDestination();
  // The gateway's throttle waits a minute per failure: a held answer would outlast the
  // test. The proxy's slows nothing here: this is about the gateway's own holds.
  const minute = { step: 60_000, max: 60_000 };
  await using proxy = startServer(destination.port, { throttle: { step: 0 } });
  const logs = new LogCapture();
  const stopping = new AbortController();
  const handler = gatewayHandler({
    proxy: { hostname: "127.0.0.1", port: proxy.port },
    logger: logs.logger,
    throttle: new AuthThrottle(minute),
    signal: stopping.signal,
  });
  /** A request as nginx on this host passes it on, or as a browser sends it directly. */
  const from = (peer: string, forwardedFor?: string) => ({
    info: {
      remoteAddr: { transport: "tcp" as const, hostname: peer, port: 50000 },
      completed: Promise.resolve(),
    },
    headers: forwardedFor ? { "x-forwarded-for": forwardedFor } : {},
  });
  const post = (path: string, body: unknown, via: ReturnType<typeof from>) =>
    handler(
      new Request(`http://gateway${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...via.headers },
        body: JSON.stringify(body),
      }),
      via.info,
    );
  const created = await (await post("/api/sessions", {}, from("127.0.0.1"))).json();
  issuedSecrets.add(created.secret);
  const poll = `/api/sessions/${created.id}/poll`;
  const right = { secret: created.secret, ack: 0 };
  const wrong = { secret: "G".repeat(32), ack: 0 };

  // The guesser, behind nginx; what it put first in X-Forwarded-For is its own invention.
  const guesser = from("127.0.0.1", "192.0.2.99, 203.0.113.7");
  let answered = 0;
  const held = [
    post(poll, wrong, guesser),
    // Another browser behind the same nginx, claiming the guesser's address in vain; and
    // one reaching the gateway directly, whose X-Forwarded-For is not believed.
    post(poll, wrong, from("127.0.0.1", "203.0.113.7, 198.51.100.1")),
    post(poll, wrong, from("192.0.2.50", "203.0.113.7")),
  ].map((answer) => answer.finally(() => answered++));
  const failures = await Promise.all(
    [0, 1, 2].map((index) =>
      logs.waitFor("web.auth_failed", () => logs.events("web.auth_failed").length > index)
    ),
  );
  assert.ok(failures.every((record) => record.fields.path === "/api/sessions/{id}/poll"));
  // Logged with the address the throttle counts: the one nginx appended, not the browser's claim.
  assert.deepEqual(
    logs.events("web.auth_failed").map((record) => record.fields.forwarded_for).sort(),
    ["198.51.100.1", "203.0.113.7", "203.0.113.7"],
  );
  assert.deepEqual(
    logs.events("web.auth_failed").map((
      record,
    ) => [record.fields.failures, record.fields.next_delay_ms]),
    [[1, 60_000], [1, 60_000], [1, 60_000]],
    "each browser counted on its own, and its wrong secret held back",
  );

  // The right secret from the guessing browser itself is answered at once.
  const served = await withDeadline(
    post(poll, right, guesser),
    WAIT_MS,
    "the right secret's answer",
  );
  assert.equal(served.status, 200);
  await served.body?.cancel();
  assert.equal(answered, 0, "the wrong secrets' answers are still held back");
  // The gateway heard each ERR auth (and logged it) at once: the proxy here slows nothing.
  assert.equal(proxy.logs.events("auth.failed").length, 3);
  // Stopping answers what is held.
  stopping.abort();
  for (const answer of await Promise.all(held)) {
    assert.equal(answer.status, 401);
    await answer.body?.cancel();
  }
  assertNoSecrets(logs.lines, "the gateway log");
});

// The WebSocket: version 2 of the browser protocol, on one framed proxy connection.

Deno.test("a WebSocket relays both ways and resumes exactly after a forced disconnect", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  using dest = new TestClient(await destination.accepted());
  let ack = 0;
  {
    await using socket = new TestSocket(wsUrl(gateway.url, session.id));
    const attached = await socket.attach(session.secret, ack, {
      inputAt: 0,
      input: base64("typed "),
    });
    assert.deepEqual(attached, {
      type: "attached",
      v: 2,
      from: 0,
      in: 0,
      state: "open",
      window: 1024 ** 2,
      maxInput: 64 * 1024,
    });
    socket.socket.send(encoder.encode("more"));
    assert.equal(decoder.decode(await dest.readExactly(10)), "typed more");
    await dest.write("first half;");
    ack += (await socket.bytes(11)).length;
    await dest.write("second half, in flight when the socket dies;");
  }
  // The socket was closed with output possibly unread: resume from what was seen.
  await using again = new TestSocket(wsUrl(gateway.url, session.id));
  const attached = await again.attach(session.secret, ack, { inputAt: 10 });
  assert.deepEqual([attached.from, attached.in], [11, 10]);
  assert.equal(
    decoder.decode(await again.bytes(44)),
    "second half, in flight when the socket dies;",
  );
  assert.equal(
    proxy.logs.events("session.attached").filter(({ fields }) => fields.mode === "framed").length,
    2,
    "one framed connection per socket",
  );
});

Deno.test("a WebSocket reset after 64 KiB of a 2 MiB burst resumes exactly at the page's ack", async () => {
  await using stack = await startStack();
  const session = await newStackSession(stack.url);
  using dest = new TestClient(await stack.destination.accepted());
  const burst = randomBytes(2 * 1024 * 1024, 21);
  const SEEN = 64 * 1024;
  const writing = dest.write(burst);
  {
    using raw = await RawSocket.open(stack.port, session.id);
    await raw.sendText(hello(session.secret, 0));
    const attached = await raw.next();
    assert.ok(!(attached instanceof Uint8Array) && attached.type === "attached");
    const seen: Uint8Array[] = [];
    for (let have = 0; have < SEEN;) {
      const message = await raw.next();
      assert.ok(message instanceof Uint8Array, `output, not ${JSON.stringify(message)}`);
      seen.push(message);
      have += message.length;
    }
    const first = concatBytes(seen).subarray(0, SEEN);
    assert.equal(firstDifference(first, burst.subarray(0, SEEN)), -1);
    // Output unread in the connection: closing it now resets it, no close handshake.
    raw.reset();
  }
  await using again = new TestSocket(wsUrl(stack.url, session.id));
  const attached = await again.attach(session.secret, SEEN);
  assert.equal(attached.from, SEEN, "no gap");
  const rest = await again.bytes(burst.length - SEEN, { ack: true });
  assert.equal(firstDifference(rest, burst.subarray(SEEN)), -1, "the rest, byte for byte, once");
  await writing;
});

Deno.test("WebSocket input across a reset: what the proxy has is not sent again, the rest is, once", async () => {
  await using stack = await startStack();
  const session = await newStackSession(stack.url);
  using dest = new TestClient(await stack.destination.accepted());
  {
    using raw = await RawSocket.open(stack.port, session.id);
    await raw.sendText(hello(session.secret, 0, { inputAt: 0, input: base64("abc") }));
    const attached = await raw.next();
    assert.ok(!(attached instanceof Uint8Array) && attached.type === "attached");
    assert.equal(decoder.decode(await dest.readExactly(3)), "abc");
    // Reset before the page could read {"type":"in"}: it keeps "abc" and sends it again.
    raw.reset();
  }
  await using again = new TestSocket(wsUrl(stack.url, session.id));
  const attached = await again.attach(session.secret, 0, { inputAt: 0, input: base64("abcdef") });
  assert.equal(attached.in, 3);
  again.socket.send(encoder.encode("ghi"));
  assert.equal(decoder.decode(await dest.readExactly(6)), "defghi", "abc once, nothing doubled");
  let confirmed = 0;
  for (let round = 0; confirmed < 9; round++) {
    assert.ok(round < 10, "bounded");
    const message = await again.nextControl();
    assert.equal(message.type, "in");
    confirmed = Number(message.in);
  }
  assert.equal(confirmed, 9);
});

Deno.test("a WebSocket says when the destination closes, after its last output; the page's ack ends the session", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  const dest = await destination.accepted();
  await using socket = new TestSocket(wsUrl(gateway.url, session.id));
  await socket.attach(session.secret, 0);
  await dest.write(encoder.encode("goodbye"));
  dest.close();
  assert.equal(decoder.decode(await socket.bytes(7)), "goodbye");
  assert.deepEqual(await socket.control(), {
    type: "end",
    reason: "destination-closed",
    in: 0,
    sent: 7,
  });
  assert.equal(proxy.server.store.size, 1, "the session waits for the page's acknowledgement");
  socket.send({ type: "ack", ack: 7 });
  assert.equal((await socket.closed).code, 1000);
  await proxy.logs.waitFor("session.closed");
});

Deno.test("a WebSocket that leaves without acknowledging the end loses nothing; reattaching at the end ends the session", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  const dest = await destination.accepted();
  {
    await using socket = new TestSocket(wsUrl(gateway.url, session.id));
    await socket.attach(session.secret, 0);
    await dest.write(encoder.encode("goodbye"));
    dest.close();
    assert.equal(decoder.decode(await socket.bytes(7)), "goodbye");
    assert.equal((await socket.control()).reason, "destination-closed");
  }
  // The gateway acknowledged nothing: a page that lost those bytes with the socket gets them.
  const again = await poll(gateway, session, { ack: 0 });
  assert.deepEqual([decoder.decode(again.data), again.ack, again.state], ["goodbye", 7, "closed"]);
  assert.equal(proxy.server.store.size, 1, "the session waits for the page's own ack");
  // The page attaches again at everything it has: that acknowledges the end.
  await using reattached = new TestSocket(wsUrl(gateway.url, session.id));
  const attached = await reattached.attach(session.secret, 7);
  assert.deepEqual([attached.from, attached.state], [7, "closed"]);
  assert.deepEqual(await reattached.control(), {
    type: "end",
    reason: "destination-closed",
    in: 0,
    sent: 7,
  });
  assert.equal((await reattached.closed).code, 1000);
  await proxy.logs.waitFor("session.closed");
});

Deno.test("a second WebSocket takes the session over; the first is told taken-over and does not take it back", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  using dest = new TestClient(await destination.accepted());
  await using first = new TestSocket(wsUrl(gateway.url, session.id));
  await first.attach(session.secret, 0, { inputAt: 0, input: base64("x") });
  assert.equal(decoder.decode(await dest.readExactly(1)), "x");
  await dest.write("seen by the first");
  await first.bytes(17, { ack: true });
  await using second = new TestSocket(wsUrl(gateway.url, session.id));
  const attached = await second.attach(session.secret, 17, { inputAt: 1 });
  assert.equal(attached.in, 1);
  const hellos = proxy.logs.events("session.attached").length;
  assert.deepEqual(await first.control(), { type: "end", reason: "taken-over", in: 1, sent: 17 });
  assert.equal((await first.closed).code, 1000);
  // The second is still attached: output and input go through it.
  await dest.write("for the second");
  assert.equal(decoder.decode(await second.bytes(14)), "for the second");
  second.socket.send(encoder.encode("typed"));
  assert.equal(decoder.decode(await dest.readExactly(5)), "typed");
  assert.equal(proxy.logs.events("session.taken_over").length, 1);
  assert.equal(proxy.logs.events("session.attached").length, hellos, "the first asked nothing");
});

Deno.test('a WebSocket\'s {"type":"close"} ends the session, and so does a DELETE from elsewhere: end closed', async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const closing = await newSession(gateway);
  const deleted = await newSession(gateway);
  await using socket = new TestSocket(wsUrl(gateway.url, closing.id));
  await socket.attach(closing.secret, 0);
  socket.send({ type: "close" });
  assert.deepEqual(await socket.control(), { type: "end", reason: "closed", in: 0, sent: 0 });
  assert.equal((await socket.closed).code, 1000);
  await using other = new TestSocket(wsUrl(gateway.url, deleted.id));
  await other.attach(deleted.secret, 0);
  const answer = await call(`${gateway.url}/api/sessions/${deleted.id}`, "DELETE", {
    secret: deleted.secret,
  });
  assert.equal(answer.status, 200);
  assert.deepEqual(await other.control(), { type: "end", reason: "closed", in: 0, sent: 0 });
  assert.equal((await other.closed).code, 1000);
  assert.equal(proxy.server.store.size, 0);
});

Deno.test("a WebSocket is told server-stopping when the proxy server stops", async () => {
  await using stack = await startStack();
  const session = await newStackSession(stack.url);
  using dest = new TestClient(await stack.destination.accepted());
  await using socket = new TestSocket(wsUrl(stack.url, session.id));
  await socket.attach(session.secret, 0, { inputAt: 0, input: base64("hi") });
  assert.equal(decoder.decode(await dest.readExactly(2)), "hi");
  await dest.write("last words");
  await socket.bytes(10, { ack: true });
  await stack.server.stop();
  assert.deepEqual(await socket.control(), {
    type: "end",
    reason: "server-stopping",
    in: 2,
    sent: 10,
  });
  assert.equal((await socket.closed).code, 1000);
});

/**
 * A stand-in proxy that answers every hello with a framed reply, `OK <id>
 * <secret> 0 0 0 open 65536`, then plays `then`: `drop` reads until input
 * comes and closes without an `E` (as a proxy that crashes does);
 * `protocol-error` sends `E protocol-error` and reads until the client closes;
 * `hold` answers nothing until released.
 */
function framedStub(id: string, secret: string, then: "drop" | "protocol-error" | "hold") {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const hellos: string[] = [];
  const heard = new Wakeup();
  const released = Promise.withResolvers<void>();
  const answering: Promise<void>[] = [];
  async function answer(conn: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    let text = "";
    try {
      while (!text.includes("\n")) {
        const count = await conn.read(buffer);
        if (count === null) return;
        text += decoder.decode(buffer.subarray(0, count));
      }
      hellos.push(text.slice(0, text.indexOf("\n")).replace(secret, "<secret>"));
      heard.wake();
      if (then === "hold") return await released.promise;
      await conn.write(encoder.encode(`OK ${id} ${secret} 0 0 0 open 65536\n`));
      if (then === "drop") {
        if (text.endsWith("\n")) await conn.read(buffer);
        return;
      }
      await conn.write(encodeFrame({ type: "E", in: 0, sent: 0, reason: "protocol-error" }));
      while (await conn.read(buffer) !== null);
    } catch {
      // The gateway went: nothing to answer.
    } finally {
      conn.close();
    }
  }
  const accepting = (async () => {
    for await (const conn of listener) answering.push(answer(conn));
  })();
  return {
    port: listener.addr.port,
    hellos,
    /** Waits until `count` hellos have come. */
    async heard(count: number): Promise<void> {
      for (let round = 0; hellos.length < count; round++) {
        assert.ok(round < 100, "bounded");
        await withDeadline(heard.wait(), WAIT_MS, `hello number ${count}`);
      }
    },
    /** `hold`: closes the held connections, unanswered. */
    release(): void {
      released.resolve();
    },
    async [Symbol.asyncDispose]() {
      released.resolve();
      listener.close();
      await accepting;
      await Promise.all(answering);
    },
  };
}

Deno.test("a proxy connection that ends without an E is told as dropped; its input was not confirmed", async () => {
  const session = { id: "dropping", secret: "F".repeat(24) };
  issuedSecrets.add(session.secret);
  await using proxy = framedStub(session.id, session.secret, "drop");
  await using gateway = await startGateway(proxy.port, { maxInput: 4096 });
  await using socket = new TestSocket(wsUrl(gateway.url, session.id));
  const attached = await socket.attach(session.secret, 0, { inputAt: 0 });
  assert.equal(attached.window, 65536);
  socket.socket.send(new Uint8Array(4096));
  // No {"type":"in"} first: the proxy never said it took the input.
  assert.deepEqual(await socket.nextControl(), { type: "end", reason: "dropped", sent: 0 });
  assert.equal((await socket.closed).code, 1000);
  assert.deepEqual(proxy.hellos, [`RESUME ${session.id} <secret> 0 framed`]);
});

Deno.test("the proxy's E protocol-error reaches the browser as an end", async () => {
  const session = { id: "strict", secret: "H".repeat(24) };
  issuedSecrets.add(session.secret);
  await using proxy = framedStub(session.id, session.secret, "protocol-error");
  await using gateway = await startGateway(proxy.port);
  await using socket = new TestSocket(wsUrl(gateway.url, session.id));
  await socket.attach(session.secret, 0);
  assert.deepEqual(await socket.control(), {
    type: "end",
    reason: "protocol-error",
    in: 0,
    sent: 0,
  });
  assert.equal((await socket.closed).code, 1000);
});

Deno.test("a WebSocket that never sends its first message is closed", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port, {}, { firstMessageTimeout: 50 });
  const session = await newSession(gateway);
  using _dest = new TestClient(await destination.accepted());
  const hellos = proxy.logs.events("session.attached").length;
  await using silent = new TestSocket(wsUrl(gateway.url, session.id));
  await silent.opened;
  const message = await silent.control();
  assert.deepEqual([message.type, message.error], ["error", "timeout"]);
  const closed = await silent.closed;
  assert.deepEqual([closed.code, closed.reason], [4000, "timeout"]);
  assert.equal(proxy.logs.events("session.attached").length, hellos);
});

Deno.test('a first message without "v":2 is refused with the versions the gateway speaks, before any hello', async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  const hellos = proxy.logs.events("session.attached").length;
  for (const version of [{}, { v: 1 }, { v: "2" }, { v: 3 }]) {
    await using socket = new TestSocket(wsUrl(gateway.url, session.id));
    await socket.opened;
    socket.send({ ...version, secret: session.secret, ack: 0 });
    const message = await socket.control();
    assert.deepEqual(
      [message.type, message.error, message.versions],
      ["error", "unsupported_version", [2]],
      JSON.stringify(version),
    );
    assert.match(String(message.message), /version 2/);
    const closed = await socket.closed;
    assert.deepEqual([closed.code, closed.reason], [4000, "unsupported_version"]);
  }
  assert.equal(proxy.logs.events("session.attached").length, hellos);
});

Deno.test("WebSocket errors: a bad first message and a wrong secret end the socket with a reason", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  const cases: [first: string, error: string][] = [
    ["not json", "bad_request"],
    [JSON.stringify({ v: 2, secret: session.secret }), "bad_request"],
    [hello("D".repeat(32), 0), "auth"],
  ];
  for (const [first, error] of cases) {
    await using socket = new TestSocket(wsUrl(gateway.url, session.id));
    await socket.opened;
    socket.socket.send(first);
    const message = await socket.control();
    assert.deepEqual([message.type, message.error], ["error", error]);
    assert.equal((await socket.closed).code, 4000);
  }
  const guessed = await gateway.logs.waitFor("web.auth_failed");
  assert.equal(guessed.fields.path, "/api/sessions/{id}/ws");
  assert.equal(guessed.fields.failures, 1);
});

Deno.test("an acknowledgement beyond the output the WebSocket was sent ends it", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  using dest = new TestClient(await destination.accepted());
  await using socket = new TestSocket(wsUrl(gateway.url, session.id));
  await socket.attach(session.secret, 0);
  await dest.write("abc");
  await socket.bytes(3);
  socket.send({ type: "ack", ack: 3 });
  socket.send({ type: "ack", ack: 4 });
  const message = await socket.control();
  assert.deepEqual([message.type, message.error, message.sent], ["error", "ack", 3]);
  assert.equal((await socket.closed).code, 4000);
  // The proxy never heard the wrong one: the session is there, and resumes at the right one.
  await using again = new TestSocket(wsUrl(gateway.url, session.id));
  assert.equal((await again.attach(session.secret, 3)).from, 3);
});

Deno.test("WebSocket input is confirmed as it goes: the page keeps at most a window of it", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port, { bufferSize: 8192 });
  await using gateway = await startGateway(proxy.port, { maxInput: 4096 });
  const session = await newSession(gateway);
  using dest = new TestClient(await destination.accepted());
  await using socket = new TestSocket(wsUrl(gateway.url, session.id));
  const attached = await socket.attach(session.secret, 0, { inputAt: 0 });
  assert.deepEqual([attached.maxInput, attached.window], [4096, 8192]);
  const input = randomBytes(128 * 1024, 9);
  const arrived = dest.readExactly(input.length);
  // A page: never more than the window unconfirmed, waiting for {"type":"in"} when it is full.
  let sent = 0;
  let confirmed = 0;
  let confirmations = 0;
  while (sent < input.length) {
    assert.ok(confirmations < 1000, "bounded");
    if (sent - confirmed + 1024 > 8192) {
      const message = await socket.nextControl();
      assert.equal(message.type, "in");
      assert.ok(Number(message.in) > confirmed && Number(message.in) <= sent);
      confirmed = Number(message.in);
      confirmations++;
      continue;
    }
    socket.socket.send(input.subarray(sent, sent + 1024));
    sent += 1024;
  }
  assert.equal(firstDifference(await arrived, input), -1, "all of it, once, in order");
  assert.ok(confirmations >= input.length / 8192, `${confirmations} confirmations`);
});

Deno.test("a WebSocket that sends past its window of unconfirmed input is ended", async () => {
  await using destination = new Destination();
  await using proxy = startServer(destination.port, { bufferSize: 8192 });
  await using gateway = await startGateway(proxy.port, { maxInput: 4096 });
  const session = await newSession(gateway);
  using _dest = new TestClient(await destination.accepted());
  await using socket = new TestSocket(wsUrl(gateway.url, session.id));
  await socket.attach(session.secret, 0, { inputAt: 0 });
  // Far more than the window at once, without waiting for confirmations.
  for (let i = 0; i < 100; i++) socket.socket.send(new Uint8Array(4096));
  const message = await socket.control();
  assert.deepEqual([message.type, message.error, message.window], [
    "error",
    "too_much_input",
    8192,
  ]);
  assert.equal((await socket.closed).code, 4000);
});

Deno.test("a WebSocket message the protocol does not have ends the socket", async () => {
  await using destination = echoDestination();
  await using proxy = startServer(destination.port);
  await using gateway = await startGateway(proxy.port);
  const session = await newSession(gateway);
  for (const message of [{ type: "what" }, { ack: 0 }, { input: 7 }]) {
    await using socket = new TestSocket(wsUrl(gateway.url, session.id));
    await socket.attach(session.secret, 0);
    socket.send(message);
    const error = await socket.control();
    assert.deepEqual([error.type, error.error], ["error", "bad_request"], JSON.stringify(message));
    assert.equal((await socket.closed).code, 4000);
  }
});

Deno.test("a WebSocket message before attached ends the socket", async () => {
  const session = { id: "slow", secret: "J".repeat(24) };
  issuedSecrets.add(session.secret);
  await using proxy = framedStub(session.id, session.secret, "hold");
  await using gateway = await startGateway(proxy.port);
  await using early = new TestSocket(wsUrl(gateway.url, session.id));
  await early.opened;
  early.socket.send(hello(session.secret, 0));
  // The proxy holds its reply until the test is done: the gateway is attaching.
  await proxy.heard(1);
  early.socket.send(encoder.encode("too soon"));
  const error = await early.control();
  assert.deepEqual([error.type, error.error], ["error", "bad_request"]);
  assert.equal((await early.closed).code, 4000);
  proxy.release();
  await gateway.logs.waitFor("web.proxy_error");
});
