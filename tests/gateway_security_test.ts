/**
 * The gateway and the admin port against hostile clients and web pages,
 * against real `server` and `web` processes: each test is one of the
 * attacks in docs/security.md.
 */

import assert from "node:assert/strict";
import {
  decoder,
  Destination,
  encoder,
  issuedSecrets,
  ServerProcess,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";
import { closeQuietly, writeAll } from "../lib/_io.ts";

/** A destination, a `main.ts server` in front of it and a `main.ts web` in front of that. */
interface Stack extends AsyncDisposable {
  destination: Destination;
  server: ServerProcess;
  web: ServerProcess;
  /** The gateway's base URL. */
  url: string;
  /** The gateway's port. */
  port: number;
}

async function startStack(webArgs: string[] = [], serverArgs: string[] = []): Promise<Stack> {
  const destination = new Destination();
  const server = new ServerProcess([
    `127.0.0.1:${destination.port}`,
    "--proxy=127.0.0.1:0",
    "--admin=127.0.0.1:0",
    ...serverArgs,
  ]);
  const proxyPort = await withDeadline(server.port, WAIT_MS, "server start");
  const web = new ServerProcess(
    [`--proxy=127.0.0.1:${proxyPort}`, "--listen=127.0.0.1:0", ...webArgs],
    "web",
  );
  const port = await withDeadline(web.port, WAIT_MS, "gateway start");
  return {
    destination,
    server,
    web,
    url: `http://127.0.0.1:${port}`,
    port,
    async [Symbol.asyncDispose]() {
      await web.stop();
      await server.stop();
      await destination[Symbol.asyncDispose]();
    },
  };
}

async function newSession(url: string): Promise<{ id: string; secret: string }> {
  const response = await fetch(`${url}/api/sessions`, { method: "POST" });
  const body = await response.json();
  assert.equal(response.status, 201, JSON.stringify(body));
  issuedSecrets.add(body.secret);
  return { id: body.id, secret: body.secret };
}

/** Sends raw bytes on a new connection to `port`, half-closes, and reads the whole answer. */
async function rawExchange(port: number, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, encoder.encode(request));
    await conn.closeWrite();
    const parts: string[] = [];
    const buffer = new Uint8Array(16 * 1024);
    for (let read = await conn.read(buffer); read !== null; read = await conn.read(buffer)) {
      parts.push(decoder.decode(buffer.subarray(0, read)));
    }
    return parts.join("");
  } finally {
    closeQuietly(conn);
  }
}

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
    socket.send(JSON.stringify({ secret: session.secret, ack: 0, inputAt: 1000 }));
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
    ),
    WAIT_MS,
    "the answer",
  );
  assert.match(answer, /^HTTP\/1\.1 400 /);
  assert.match(answer, /"error":"bad_request"/);
  assert.ok(!stack.web.lines.some((line) => /web\.error/.test(line)), stack.web.lines.join("\n"));
});
