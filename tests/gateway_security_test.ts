/**
 * The gateway and the admin port against hostile clients and web pages,
 * against real `server` and `web` processes: each test is one of the
 * attacks in docs/security.md.
 */

import assert from "node:assert/strict";
import { decoder, issuedSecrets, WAIT_MS, withDeadline } from "./_helpers.ts";
import { newSession, rawExchange, request, sessionsOpen, startStack } from "./_stack.ts";

Deno.test("a poll whose inputAt is beyond the session's input is refused (409 input_offset) and delivers nothing", async () => {
  await using stack = await startStack();
  const session = await newSession(stack.url);
  const destination = await stack.destination.accepted();
  const response = await fetch(`${stack.url}/api/sessions/${session.id}/poll`, {
    method: "POST",
    body: JSON.stringify({
      secret: session.secret,
      ack: 0,
      inputAt: 1000,
      input: btoa("must not arrive\n"),
    }),
  });
  const body = await response.json();
  assert.equal(response.status, 409);
  assert.equal(body.error, "input_offset");
  assert.equal(body.in, 0);
  // The same session takes input at its real offset, and that is the first the destination sees.
  const ok = await fetch(`${stack.url}/api/sessions/${session.id}/poll`, {
    method: "POST",
    body: JSON.stringify({ secret: session.secret, ack: 0, inputAt: 0, input: btoa("first\n") }),
  });
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
  const buffer = new Uint8Array(64);
  const read = await withDeadline(destination.read(buffer), WAIT_MS, "input at the destination");
  assert.equal(decoder.decode(buffer.subarray(0, read ?? 0)), "first\n");
});

Deno.test("a WebSocket whose first message has inputAt beyond the session's input gets an input_offset error", async () => {
  await using stack = await startStack();
  const session = await newSession(stack.url);
  const socket = new WebSocket(`ws://127.0.0.1:${stack.port}/api/sessions/${session.id}/ws`);
  const closed = new Promise<void>((resolve) => socket.addEventListener("close", () => resolve()));
  const message = new Promise<Record<string, unknown>>((resolve) => {
    socket.addEventListener("message", (event) => {
      if (typeof event.data === "string") resolve(JSON.parse(event.data));
    });
  });
  socket.addEventListener("open", () => {
    socket.send(JSON.stringify({ v: 2, secret: session.secret, ack: 0, inputAt: 1000 }));
  });
  const error = await withDeadline(message, WAIT_MS, "the error message");
  assert.equal(error.type, "error");
  assert.equal(error.error, "input_offset");
  assert.equal(error.in, 0);
  await withDeadline(closed, WAIT_MS, "the socket closing");
});

Deno.test("a body cut short of its Content-Length is a 400, not a 500, and logs no error", async () => {
  await using stack = await startStack();
  const session = await newSession(stack.url);
  const answer = await withDeadline(
    rawExchange(
      stack.port,
      `POST /api/sessions/${session.id}/poll HTTP/1.1\r\nHost: 127.0.0.1:${stack.port}\r\n` +
        `Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"secret":`,
      true,
    ),
    WAIT_MS,
    "the answer",
  );
  assert.match(answer, /^HTTP\/1\.1 400 /);
  assert.match(answer, /"error":"bad_request"/);
  assert.ok(!stack.web.lines.some((line) => /web\.error/.test(line)), stack.web.lines.join("\n"));
});

Deno.test("DNS rebinding: the admin port answers no request whose Host is a foreign name, but /health", async () => {
  await using stack = await startStack();
  const admin = await stack.server.adminPort;
  const session = await newSession(stack.url);
  const evil = { Host: `evil.example:${admin}` };
  const status = await request(admin, "GET /status", evil);
  assert.equal(status.status, 403);
  assert.equal(status.body.error, "host_not_allowed");
  assert.doesNotMatch(status.raw, new RegExp(session.id), "no session is shown");
  const closed = await request(admin, `DELETE /sessions/${session.id}`, evil);
  assert.equal(closed.status, 403);
  assert.equal(await sessionsOpen(admin), 1, "the session is still open");
  await request(admin, "GET /metrics", evil);
  assert.equal((await request(admin, "GET /health", evil)).status, 200, "probes send any Host");
  // Loopback names and addresses are answered.
  for (const host of [`localhost:${admin}`, `127.0.0.1:${admin}`, `[::1]:${admin}`]) {
    assert.equal((await request(admin, "GET /status", { Host: host })).status, 200, host);
  }
  // Three refusals, one log line: the refusals are logged with a rate limit.
  const refusals = stack.server.lines.filter((line) => line.includes("admin.host_not_allowed"));
  assert.equal(refusals.length, 1, refusals.join("\n"));
});

Deno.test("server --allow-host=NAME lets the admin port answer for that name", async () => {
  await using stack = await startStack([], ["--allow-host=admin.example"]);
  const admin = await stack.server.adminPort;
  assert.equal(
    (await request(admin, "GET /status", { Host: `admin.example:${admin}` })).status,
    200,
  );
  assert.equal(
    (await request(admin, "GET /status", { Host: `evil.example:${admin}` })).status,
    403,
  );
});

Deno.test("the admin port refuses any request a web page sends (an Origin), whatever its Host", async () => {
  await using stack = await startStack();
  const admin = await stack.server.adminPort;
  const session = await newSession(stack.url);
  const answer = await request(admin, `DELETE /sessions/${session.id}`, {
    Host: `127.0.0.1:${admin}`,
    Origin: "https://evil.example",
  });
  assert.equal(answer.status, 403);
  assert.equal(answer.body.error, "origin_not_allowed");
  assert.equal(await sessionsOpen(admin), 1);
});

Deno.test("DNS rebinding: the gateway opens no session for a request whose Host is a foreign name", async () => {
  await using stack = await startStack();
  const admin = await stack.server.adminPort;
  const evil = `evil.example:${stack.port}`;
  const created = await request(stack.port, "POST /api/sessions", {
    Host: evil,
    Origin: `http://${evil}`,
  });
  assert.equal(created.status, 403);
  assert.equal(created.body.error, "host_not_allowed");
  // A poll that would drive the destination is refused as well.
  const session = await newSession(stack.url);
  const poll = await request(
    stack.port,
    `POST /api/sessions/${session.id}/poll`,
    { Host: evil, "Content-Type": "application/json" },
    JSON.stringify({ secret: session.secret, ack: 0, input: btoa("rm -rf /\n") }),
  );
  assert.equal(poll.status, 403);
  assert.equal(await sessionsOpen(admin), 1, "only the test's own session exists");
  assert.equal((await request(stack.port, "GET /", { Host: evil })).status, 403);
});

Deno.test("web --allow-host=NAME serves that name (as nginx passes it)", async () => {
  await using stack = await startStack(["--allow-host=play.example.com"]);
  const page = await request(stack.port, "GET /", { Host: "play.example.com" });
  assert.equal(page.status, 200);
  const other = await request(stack.port, "GET /", { Host: "evil.example" });
  assert.equal(other.status, 403);
});

Deno.test("cross-site: a WebSocket upgrade from another site's page is refused with 403, not 101", async () => {
  await using stack = await startStack();
  const session = await newSession(stack.url);
  const upgrade = {
    Host: `127.0.0.1:${stack.port}`,
    Upgrade: "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
  };
  const refused = await request(stack.port, `GET /api/sessions/${session.id}/ws`, {
    ...upgrade,
    Connection: "Upgrade",
    Origin: "https://evil.example",
  });
  assert.equal(refused.status, 403, refused.raw);
  assert.equal(refused.body.error, "origin_not_allowed");
  assert.ok(stack.web.lines.some((line) => line.includes("web.origin_not_allowed")));
});

Deno.test("cross-site: a simple text/plain POST from another site's page opens no session", async () => {
  await using stack = await startStack();
  const admin = await stack.server.adminPort;
  const answer = await request(stack.port, "POST /api/sessions", {
    Host: `127.0.0.1:${stack.port}`,
    Origin: "https://evil.example",
    "Content-Type": "text/plain",
  }, "x");
  assert.equal(answer.status, 403);
  assert.equal(answer.body.error, "origin_not_allowed");
  assert.equal(await sessionsOpen(admin), 0);
});

Deno.test("the gateway's own pages may use it; a browser body that is not JSON is a 415", async () => {
  await using stack = await startStack();
  const own = `http://127.0.0.1:${stack.port}`;
  const host = { Host: `127.0.0.1:${stack.port}`, Origin: own };
  const created = await request(stack.port, "POST /api/sessions", host);
  assert.equal(created.status, 201, created.raw);
  issuedSecrets.add(String(created.body.secret));
  const plain = await request(
    stack.port,
    `POST /api/sessions/${created.body.id}/poll`,
    { ...host, "Content-Type": "text/plain" },
    JSON.stringify({ secret: created.body.secret, ack: 0 }),
  );
  assert.equal(plain.status, 415);
  assert.equal(plain.body.error, "unsupported_media_type");
  const json = await request(
    stack.port,
    `POST /api/sessions/${created.body.id}/poll`,
    { ...host, "Content-Type": "application/json" },
    JSON.stringify({ secret: created.body.secret, ack: 0 }),
  );
  assert.equal(json.status, 200);
  // Without an Origin (curl, scripts), the content type is not judged.
  const script = await request(stack.port, "POST /api/sessions", { Host: host.Host }, "");
  assert.equal(script.status, 201);
  issuedSecrets.add(String(script.body.secret));
});

Deno.test("web --allow-origin=URL lets that site's pages in, and no other", async () => {
  await using stack = await startStack(["--allow-origin=https://play.example.com"]);
  const host = `127.0.0.1:${stack.port}`;
  const allowed = await request(stack.port, "POST /api/sessions", {
    Host: host,
    Origin: "https://play.example.com",
  });
  assert.equal(allowed.status, 201);
  issuedSecrets.add(String(allowed.body.secret));
  const other = await request(stack.port, "POST /api/sessions", {
    Host: host,
    Origin: "https://other.example.com",
  });
  assert.equal(other.status, 403);
});
