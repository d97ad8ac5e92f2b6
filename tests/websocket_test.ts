/**
 * RFC 6455 conformance of our own server-side WebSocket
 * (lib/http/websocket.ts) as `HttpServer` serves it: the opening
 * handshake, framing both ways, control frames, fragmentation, UTF-8, the
 * close handshake, and failing the connection (with the right close code)
 * on every protocol error. Frames are written by hand over a real loopback
 * connection, so nothing between the test and the server fixes them up.
 * The limits' timing under attack is tried in http_limits_test.ts.
 */

import assert from "node:assert/strict";
import { HttpServer } from "../lib/http/server.ts";
import { acceptKey, type ServerWebSocket, type WebSocketLimits } from "../lib/http/websocket.ts";
import { WebGateway } from "../lib/gateway/mod.ts";
import { concatBytes } from "../lib/bytes.ts";
import {
  decoder,
  encoder,
  firstDifference,
  LogCapture,
  randomBytes,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";

/** RFC 6455 section 1.3's sample key and the answer it gives. */
const SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/** The echo server's message limit: room for 64-bit lengths, small enough to pass. */
const MAX_MESSAGE = 256 * 1024;

const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa };

/** An HttpServer whose every WebSocket echoes each message back, as it arrived. */
interface EchoServer extends AsyncDisposable {
  port: number;
  /** The server's side of each WebSocket, in the order they were accepted. */
  sockets: ServerWebSocket[];
}

async function serveEcho(limits: Partial<WebSocketLimits> = {}): Promise<EchoServer> {
  const logs = new LogCapture();
  const sockets: ServerWebSocket[] = [];
  const server = await HttpServer.listen({ hostname: "127.0.0.1", port: 0 }, {
    handler: (signal) => (_request, info) => {
      if (!info.upgradeWebSocket) return new Response("WebSockets only\n", { status: 400 });
      let upgrade;
      try {
        // A close timeout past the test's read deadline: only an ended connection ends a read.
        upgrade = info.upgradeWebSocket({
          maxMessage: MAX_MESSAGE,
          closeTimeout: 2 * WAIT_MS,
          ...limits,
        });
      } catch (error) {
        return new Response(`${error}\n`, { status: 400 });
      }
      const { socket, response } = upgrade;
      socket.onmessage = (message) => socket.send(message);
      const stop = (): void => socket.close(1001, "stopping");
      signal.addEventListener("abort", stop, { once: true });
      void socket.closed.then(() => signal.removeEventListener("abort", stop));
      sockets.push(socket);
      return response;
    },
    logger: logs.logger,
    name: "test",
  });
  return { port: server.addr.port, sockets, [Symbol.asyncDispose]: () => server.close() };
}

/** The gateway, for what its route decides about an upgrade (no proxy is reached). */
async function serveGateway(): Promise<WebGateway> {
  return await WebGateway.listen({ hostname: "127.0.0.1", port: 0 }, {
    proxy: { hostname: "127.0.0.1", port: 1 },
    logger: new LogCapture().logger,
  });
}

/** An HTTP answer's status and headers (its body, if any, is left unread). */
interface Answer {
  status: number;
  headers: Headers;
}

/**
 * Sends an upgrade request; `headers` replace the usual ones, and a null
 * value leaves that header out.
 */
async function requestUpgrade(
  client: TestClient,
  port: number,
  options: { method?: string; path?: string; headers?: Record<string, string | null> } = {},
): Promise<Answer> {
  const headers: Record<string, string | null> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": SAMPLE_KEY,
    "Sec-WebSocket-Version": "13",
    ...options.headers,
  };
  let head = `${options.method ?? "GET"} ${options.path ?? "/ws"} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value !== null) head += `${name}: ${value}\r\n`;
  }
  if (options.method !== undefined && options.method !== "GET") head += "Content-Length: 0\r\n";
  await client.write(head + "\r\n");
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(await client.readLine());
  assert.ok(status, "an HTTP/1.1 status line");
  const answer: Answer = { status: Number(status[1]), headers: new Headers() };
  for (let line = 0; line < 100; line++) {
    const text = (await client.readLine()).replace(/\r$/, "");
    if (text === "") return answer;
    const colon = text.indexOf(":");
    answer.headers.append(text.slice(0, colon), text.slice(colon + 1).trim());
  }
  throw new Error("more than 100 header lines");
}

/** A WebSocket opened by hand: the client's connection past the 101, and the server's side. */
interface Opened extends Disposable {
  client: TestClient;
  socket: ServerWebSocket;
}

async function open(server: EchoServer): Promise<Opened> {
  const client = await TestClient.connect(server.port);
  try {
    const answer = await requestUpgrade(client, server.port);
    assert.equal(answer.status, 101);
    const socket = server.sockets.at(-1);
    assert.ok(socket, "the handler upgraded the request");
    return { client, socket, [Symbol.dispose]: () => client.close() };
  } catch (error) {
    client.close();
    throw error;
  }
}

/** RFC 6455 section 5.3's sample masking key. */
const MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);

/** A frame header: the first byte, the length in its shortest form, the mask bit. */
function frameHeader(first: number, length: number, masked = true): Uint8Array {
  const maskBit = masked ? 0x80 : 0;
  if (length < 126) return new Uint8Array([first, maskBit | length]);
  if (length < 65536) return new Uint8Array([first, maskBit | 126, length >> 8, length & 0xff]);
  const header = new Uint8Array(10);
  header[0] = first;
  header[1] = maskBit | 127;
  new DataView(header.buffer).setBigUint64(2, BigInt(length));
  return header;
}

/**
 * A client frame: masked (as clients must) unless `masked` is false;
 * `rsv` is ORed into the first byte.
 */
function clientFrame(
  opcode: number,
  payload: Uint8Array | string = new Uint8Array(0),
  options: { fin?: boolean; masked?: boolean; rsv?: number } = {},
): Uint8Array {
  const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
  const masked = options.masked ?? true;
  const first = (options.fin ?? true ? 0x80 : 0) | (options.rsv ?? 0) | opcode;
  const header = frameHeader(first, bytes.length, masked);
  if (!masked) return concatBytes([header, bytes]);
  const body = bytes.map((byte, i) => byte ^ (MASK[i & 3] as number));
  return concatBytes([header, MASK, body]);
}

/** A close frame's payload: the code, then the reason. */
function closePayload(code: number, reason: Uint8Array | string = ""): Uint8Array {
  const text = typeof reason === "string" ? encoder.encode(reason) : reason;
  return concatBytes([new Uint8Array([code >> 8, code & 0xff]), text]);
}

/** A frame from the server, as it was on the wire. */
interface ServerFrame {
  fin: boolean;
  /** The three reserved bits, in place. */
  rsv: number;
  opcode: number;
  masked: boolean;
  /** Bytes of extended length: 0, 2 or 8. */
  lengthBytes: number;
  payload: Uint8Array;
}

async function readFrame(client: TestClient): Promise<ServerFrame> {
  const head = await client.readExactly(2);
  const b0 = head[0] as number;
  const b1 = head[1] as number;
  let length = b1 & 0x7f;
  let lengthBytes = 0;
  if (length === 126) {
    const ext = await client.readExactly(2);
    length = (ext[0] as number) << 8 | (ext[1] as number);
    lengthBytes = 2;
  } else if (length === 127) {
    const ext = await client.readExactly(8);
    length = Number(new DataView(ext.buffer).getBigUint64(0));
    lengthBytes = 8;
  }
  const masked = (b1 & 0x80) !== 0;
  const mask = masked ? await client.readExactly(4) : null;
  const payload = await client.readExactly(length);
  if (mask) payload.forEach((byte, i) => (payload[i] = byte ^ (mask[i & 3] as number)));
  return {
    fin: (b0 & 0x80) !== 0,
    rsv: b0 & 0x70,
    opcode: b0 & 0x0f,
    masked,
    lengthBytes,
    payload,
  };
}

/** Reads one frame and checks it is a whole, unmasked frame of `opcode`; its payload. */
async function expectFrame(client: TestClient, opcode: number): Promise<Uint8Array> {
  const frame = await readFrame(client);
  assert.equal(frame.opcode, opcode, `opcode ${frame.opcode}, not ${opcode}`);
  assert.ok(frame.fin, "the server does not fragment");
  assert.equal(frame.rsv, 0, "no reserved bit set");
  assert.ok(!frame.masked, "server frames are not masked");
  return frame.payload;
}

/** A close frame's code and reason. */
function parseClose(payload: Uint8Array): { code: number; reason: string } {
  assert.ok(payload.length >= 2, `a close code (payload of ${payload.length} bytes)`);
  const code = (payload[0] as number) << 8 | (payload[1] as number);
  return { code, reason: decoder.decode(payload.subarray(2)) };
}

/**
 * Expects the next frame to be a close with `code`, and then the server to
 * end the TCP connection with nothing more sent; then closes this end.
 */
async function expectClose(client: TestClient, code: number, what = ""): Promise<void> {
  const close = parseClose(await expectFrame(client, OP.close));
  assert.equal(close.code, code, `${what}: close code (reason "${close.reason}")`);
  const rest = await client.readToEnd();
  assert.equal(rest.length, 0, `${what}: nothing after the close frame`);
  client.close();
}

/**
 * Each case's frames go on a WebSocket of their own, which must be failed
 * with `code` (after echoing `echoed`, a whole text message sent first).
 */
async function expectFailures(
  cases: { name: string; frames: Uint8Array[]; echoed?: string }[],
  code: number,
): Promise<void> {
  await using server = await serveEcho();
  for (const { name, frames, echoed } of cases) {
    using ws = await open(server);
    const { client, socket } = ws;
    await client.write(concatBytes(frames));
    if (echoed !== undefined) {
      assert.equal(decoder.decode(await expectFrame(client, OP.text)), echoed, name);
    }
    await expectClose(client, code, name);
    // The server's own side ends with the code it sent.
    const closed = await withDeadline(socket.closed, WAIT_MS, `${name}: the socket's end`);
    assert.equal(closed.code, code, name);
  }
}

/** A text or binary message echoed whole: its opcode and bytes. */
async function expectEcho(client: TestClient, opcode: number, bytes: Uint8Array): Promise<void> {
  const echoed = await expectFrame(client, opcode);
  assert.equal(echoed.length, bytes.length, "message length");
  assert.equal(firstDifference(echoed, bytes), -1, "message bytes");
}

Deno.test("the 101 answer carries the Sec-WebSocket-Accept of RFC 6455's sample key", async () => {
  await using server = await serveEcho();
  using client = await TestClient.connect(server.port);
  const answer = await requestUpgrade(client, server.port);
  assert.equal(answer.status, 101);
  assert.equal(answer.headers.get("upgrade")?.toLowerCase(), "websocket");
  assert.equal(answer.headers.get("connection")?.toLowerCase(), "upgrade");
  assert.equal(answer.headers.get("sec-websocket-accept"), SAMPLE_ACCEPT);
  assert.equal(answer.headers.get("sec-websocket-extensions"), null, "no extension is agreed");
  // Any key: base64 of SHA-1 of the key and the GUID, computed here independently.
  const key = btoa(String.fromCharCode(...randomBytes(16, 6455)));
  const digest = await crypto.subtle.digest(
    "SHA-1",
    encoder.encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
  );
  assert.equal(acceptKey(key), btoa(String.fromCharCode(...new Uint8Array(digest))));
});

Deno.test("an upgrade with a Sec-WebSocket-Version other than 13 is answered 426, naming 13", async () => {
  await using gateway = await serveGateway();
  const port = gateway.addr.port;
  // RFC 6455 4.4; a malformed key too, since a version not spoken is answered first.
  const cases: Record<string, Record<string, string | null>> = {
    "version 8": { "Sec-WebSocket-Version": "8" },
    "version 14": { "Sec-WebSocket-Version": "14" },
    "versions 8 and 13": { "Sec-WebSocket-Version": "8, 13" },
    "version 8 with a key of 8 bytes": {
      "Sec-WebSocket-Version": "8",
      "Sec-WebSocket-Key": "AAAAAAAAAAA=",
    },
  };
  for (const [name, headers] of Object.entries(cases)) {
    using client = await TestClient.connect(port);
    const answer = await requestUpgrade(client, port, { path: "/api/sessions/abc/ws", headers });
    assert.equal(answer.status, 426, name);
    assert.equal(answer.headers.get("sec-websocket-version"), "13", name);
    assert.equal(answer.headers.get("sec-websocket-accept"), null, name);
    assert.equal(answer.headers.get("content-type"), "application/json; charset=utf-8", name);
    const body = JSON.parse(
      decoder.decode(await client.readExactly(Number(answer.headers.get("content-length")))),
    );
    assert.deepEqual(Object.keys(body), ["error", "message"], name);
    assert.equal(body.error, "upgrade_required", name);
    assert.match(body.message, /Sec-WebSocket-Version/, name);
  }
});

Deno.test("an upgrade without Sec-WebSocket-Version or a well-formed key is refused with 400", async () => {
  await using gateway = await serveGateway();
  const port = gateway.addr.port;
  const cases: Record<string, Record<string, string | null>> = {
    "no version": { "Sec-WebSocket-Version": null },
    "no key": { "Sec-WebSocket-Key": null },
    "a key of 8 bytes": { "Sec-WebSocket-Key": "AAAAAAAAAAA=" },
  };
  for (const [name, headers] of Object.entries(cases)) {
    using client = await TestClient.connect(port);
    const answer = await requestUpgrade(client, port, { path: "/api/sessions/abc/ws", headers });
    assert.equal(answer.status, 400, name);
    assert.equal(answer.headers.get("sec-websocket-accept"), null, name);
    assert.equal(answer.headers.get("sec-websocket-version"), null, name);
    const body = JSON.parse(
      decoder.decode(await client.readExactly(Number(answer.headers.get("content-length")))),
    );
    assert.equal(body.error, "bad_request", name);
  }
});

Deno.test("an upgrade that is not a GET is refused", async () => {
  await using gateway = await serveGateway();
  const port = gateway.addr.port;
  for (const method of ["POST", "PUT", "DELETE"]) {
    using client = await TestClient.connect(port);
    const answer = await requestUpgrade(client, port, { method, path: "/api/sessions/abc/ws" });
    assert.equal(answer.status, 405, method);
    assert.equal(answer.headers.get("sec-websocket-accept"), null, method);
  }
});

Deno.test("HttpServer offers an upgrade only for a GET: any other method's handler gets none", async () => {
  await using server = await serveEcho();
  for (const method of ["POST", "PUT"]) {
    using client = await TestClient.connect(server.port);
    const answer = await requestUpgrade(client, server.port, { method });
    assert.equal(answer.status, 400, `${method}: the handler was offered no upgrade`);
    assert.equal(answer.headers.get("sec-websocket-accept"), null, method);
  }
  assert.equal(server.sockets.length, 0);
});

Deno.test("RFC 6455's sample frames: a masked Hello is echoed unmasked, a masked ping gets its pong", async () => {
  await using server = await serveEcho();
  using ws = await open(server);
  const { client } = ws;
  // Section 5.7, byte for byte.
  await client.write(
    new Uint8Array([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]),
  );
  assert.deepEqual(
    await client.readExactly(7),
    new Uint8Array([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
  );
  await client.write(
    new Uint8Array([0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]),
  );
  assert.deepEqual(
    await client.readExactly(7),
    new Uint8Array([0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
  );
});

Deno.test("masked text and binary messages of 7-, 16- and 64-bit lengths are delivered intact", async () => {
  await using server = await serveEcho();
  using ws = await open(server);
  const { client } = ws;
  for (const length of [0, 1, 125, 126, 65535, 65536, 200_000]) {
    const binary = randomBytes(length, length);
    await client.write(clientFrame(OP.binary, binary));
    await expectEcho(client, OP.binary, binary);
    // Two- and three-byte characters too, cut to the length on a character boundary.
    const text = encoder.encode("añ€x".repeat(Math.ceil(length / 7)).slice(0, length));
    await client.write(clientFrame(OP.text, text));
    await expectEcho(client, OP.text, text);
  }
});

Deno.test("a text message that starts with a byte order mark keeps it", async () => {
  await using server = await serveEcho();
  using ws = await open(server);
  const { client } = ws;
  const text = encoder.encode("\uFEFFhello");
  await client.write(clientFrame(OP.text, text));
  await expectEcho(client, OP.text, text);
});

Deno.test("a fragmented message with pings between its fragments is delivered whole, each ping answered first", async () => {
  await using server = await serveEcho();
  using ws = await open(server);
  const { client } = ws;
  const big = randomBytes(70_000, 1);
  const messages = [
    { opcode: OP.text, parts: ["Hel", "", "lo, ", "world"].map((part) => encoder.encode(part)) },
    { opcode: OP.binary, parts: [big.subarray(0, 100), big.subarray(100, 300), big.subarray(300)] },
  ];
  for (const { opcode, parts } of messages) {
    const frames = parts.flatMap((part, i) => [
      clientFrame(i === 0 ? opcode : OP.continuation, part, { fin: i === parts.length - 1 }),
      ...(i < parts.length - 1 ? [clientFrame(OP.ping, `ping ${i}`)] : []),
    ]);
    await client.write(concatBytes(frames));
    for (let i = 0; i < parts.length - 1; i++) {
      assert.equal(decoder.decode(await expectFrame(client, OP.pong)), `ping ${i}`);
    }
    await expectEcho(client, opcode, concatBytes(parts));
  }
});

Deno.test("a ping is answered by a pong with the same payload; a pong is not answered", async () => {
  await using server = await serveEcho();
  using ws = await open(server);
  const { client } = ws;
  for (const length of [0, 1, 124, 125]) {
    const payload = randomBytes(length, 100 + length);
    await client.write(clientFrame(OP.ping, payload));
    const pong = await expectFrame(client, OP.pong);
    assert.equal(firstDifference(pong, payload), -1, `pong of ${length} bytes`);
  }
  // An unsolicited pong is allowed and answered with nothing: the next frame is the echo.
  await client.write(concatBytes([clientFrame(OP.pong, "beat"), clientFrame(OP.text, "after")]));
  assert.equal(decoder.decode(await expectFrame(client, OP.text)), "after");
});

Deno.test("a UTF-8 character split across fragments is delivered whole", async () => {
  await using server = await serveEcho();
  using ws = await open(server);
  const { client } = ws;
  // € is E2 82 AC and 😀 is F0 9F 98 80: cut inside both.
  const text = encoder.encode("a€😀b");
  const cuts = [0, 2, 3, 6, 8, text.length];
  const frames = cuts.slice(0, -1).map((start, i) =>
    clientFrame(i === 0 ? OP.text : OP.continuation, text.subarray(start, cuts[i + 1]), {
      fin: i === cuts.length - 2,
    })
  );
  await client.write(concatBytes(frames));
  await expectEcho(client, OP.text, text);
});

Deno.test("an unmasked client frame fails the connection with 1002", async () => {
  await expectFailures([
    { name: "unmasked text", frames: [clientFrame(OP.text, "hi", { masked: false })] },
    { name: "unmasked ping", frames: [clientFrame(OP.ping, "hi", { masked: false })] },
    {
      name: "unmasked continuation",
      frames: [
        clientFrame(OP.text, "a", { fin: false }),
        clientFrame(OP.continuation, "b", { masked: false }),
      ],
    },
  ], 1002);
});

Deno.test("a frame with a reserved bit set fails the connection with 1002", async () => {
  await expectFailures(
    [0x40, 0x20, 0x10].flatMap((rsv) => [
      { name: `text, rsv ${rsv}`, frames: [clientFrame(OP.text, "hi", { rsv })] },
      { name: `ping, rsv ${rsv}`, frames: [clientFrame(OP.ping, "hi", { rsv })] },
    ]),
    1002,
  );
});

Deno.test("an unknown opcode fails the connection with 1002", async () => {
  await expectFailures(
    [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf].map((opcode) => ({
      name: `opcode ${opcode}`,
      frames: [clientFrame(opcode, "hi")],
    })),
    1002,
  );
});

Deno.test("a control frame over 125 bytes, or fragmented, fails the connection with 1002", async () => {
  const long = new Uint8Array(126).fill(0x61);
  await expectFailures([
    { name: "ping of 126 bytes", frames: [clientFrame(OP.ping, long)] },
    { name: "pong of 126 bytes", frames: [clientFrame(OP.pong, long)] },
    { name: "close of 126 bytes", frames: [clientFrame(OP.close, closePayload(1000, long))] },
    { name: "fragmented ping", frames: [clientFrame(OP.ping, "a", { fin: false })] },
    { name: "fragmented pong", frames: [clientFrame(OP.pong, "a", { fin: false })] },
    {
      name: "fragmented close",
      frames: [clientFrame(OP.close, closePayload(1000), { fin: false })],
    },
    {
      name: "fragmented ping inside a message",
      frames: [
        clientFrame(OP.text, "a", { fin: false }),
        clientFrame(OP.ping, "p", { fin: false }),
      ],
    },
  ], 1002);
});

Deno.test("a continuation without a message, or a new message inside a fragmented one, fails with 1002", async () => {
  await expectFailures([
    { name: "continuation first", frames: [clientFrame(OP.continuation, "a")] },
    {
      name: "unfinished continuation first",
      frames: [clientFrame(OP.continuation, "a", { fin: false })],
    },
    {
      name: "continuation after a whole message",
      frames: [clientFrame(OP.text, "a"), clientFrame(OP.continuation, "b")],
      echoed: "a",
    },
    {
      name: "text inside text",
      frames: [clientFrame(OP.text, "a", { fin: false }), clientFrame(OP.text, "b")],
    },
    {
      name: "binary inside text",
      frames: [clientFrame(OP.text, "a", { fin: false }), clientFrame(OP.binary, "b")],
    },
    {
      name: "text inside binary, after a continuation",
      frames: [
        clientFrame(OP.binary, "a", { fin: false }),
        clientFrame(OP.continuation, "b", { fin: false }),
        clientFrame(OP.text, "c", { fin: false }),
      ],
    },
  ], 1002);
});

Deno.test("a text message that is not UTF-8 fails the connection with 1007, also when split across fragments", async () => {
  const whole = (bytes: number[]) => [clientFrame(OP.text, new Uint8Array(bytes))];
  const split = (...parts: number[][]) =>
    parts.map((part, i) =>
      clientFrame(i === 0 ? OP.text : OP.continuation, new Uint8Array(part), {
        fin: i === parts.length - 1,
      })
    );
  await expectFailures([
    { name: "0xff", frames: whole([0x61, 0xff]) },
    { name: "a lone continuation byte", frames: whole([0x80]) },
    { name: "an overlong /", frames: whole([0xc0, 0xaf]) },
    { name: "a UTF-16 surrogate", frames: whole([0xed, 0xa0, 0x80]) },
    { name: "past U+10FFFF", frames: whole([0xf4, 0x90, 0x80, 0x80]) },
    { name: "a character cut off at the end", frames: whole([0x61, 0xe2, 0x82]) },
    { name: "a bad second byte in the next fragment", frames: split([0x61, 0xc3], [0x28]) },
    { name: "a character cut off at the last fragment", frames: split([0x61], [0xe2, 0x82], []) },
    { name: "0xff in a later fragment", frames: split([0x61], [0x62], [0xff]) },
  ], 1007);
});

Deno.test("a close frame of 1 byte, or with a code not allowed on the wire, fails with 1002; a reason not UTF-8 with 1007", async () => {
  const close = (payload: Uint8Array) => [clientFrame(OP.close, payload)];
  await expectFailures([
    { name: "1 byte", frames: close(new Uint8Array([0x03])) },
    ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535].map((code) => ({
      name: `code ${code}`,
      frames: close(closePayload(code, "x")),
    })),
  ], 1002);
  await expectFailures([
    { name: "reason 0xff", frames: close(closePayload(1000, new Uint8Array([0xff]))) },
  ], 1007);
});

Deno.test("a normal close (1000 with a reason) is echoed, then the server closes the TCP connection", async () => {
  await using server = await serveEcho();
  using ws = await open(server);
  const { client, socket } = ws;
  await client.write(clientFrame(OP.close, closePayload(1000, "bye now")));
  await expectClose(client, 1000, "echo");
  assert.deepEqual(await withDeadline(socket.closed, WAIT_MS, "the socket's end"), {
    code: 1000,
    reason: "bye now",
  });
});

Deno.test("a close with any code allowed on the wire, or none, is answered by a close", async () => {
  await using server = await serveEcho();
  for (const code of [1001, 1003, 1007, 1011, 1014, 3000, 4999]) {
    using ws = await open(server);
    const { client } = ws;
    await client.write(clientFrame(OP.close, closePayload(code, "why")));
    await expectClose(client, code, `code ${code}`);
  }
  using ws = await open(server);
  const { client, socket } = ws;
  await client.write(clientFrame(OP.close));
  const answer = await expectFrame(client, OP.close);
  assert.equal(
    answer.length,
    0,
    "an empty close is answered by an empty close (1005 is never sent)",
  );
  assert.equal((await client.readToEnd()).length, 0, "then the TCP connection ends");
  client.close();
  const closed = await withDeadline(socket.closed, WAIT_MS, "the socket's end");
  assert.equal(closed.code, 1005, "reported as 1005, no status code");
});

Deno.test("a close started by the server is an unmasked close frame; once answered, the server ends TCP", async () => {
  await using server = await serveEcho();
  using ws = await open(server);
  const { client, socket } = ws;
  socket.close(4001, "done here");
  assert.ok(!socket.open);
  socket.send("too late"); // ignored: nothing may follow a close frame
  assert.deepEqual(parseClose(await expectFrame(client, OP.close)), {
    code: 4001,
    reason: "done here",
  });
  await client.write(clientFrame(OP.close, closePayload(4001)));
  assert.equal((await client.readToEnd()).length, 0, "no echo of the answer, then the end");
  client.close();
  assert.deepEqual(await withDeadline(socket.closed, WAIT_MS, "the socket's end"), {
    code: 4001,
    reason: "done here",
  });
});

Deno.test("send() writes unmasked text and binary frames in the shortest length form", async () => {
  await using server = await serveEcho();
  using ws = await open(server);
  const { client, socket } = ws;
  const expected = [[0, 0], [125, 0], [126, 2], [65535, 2], [65536, 8], [100_000, 8]];
  for (const [length, lengthBytes] of expected as [number, number][]) {
    const bytes = randomBytes(length, 7 + length);
    socket.send(bytes);
    const binary = await readFrame(client);
    assert.deepEqual(
      { ...binary, payload: null },
      { fin: true, rsv: 0, opcode: OP.binary, masked: false, lengthBytes, payload: null },
      `binary of ${length}`,
    );
    assert.equal(firstDifference(binary.payload, bytes), -1, `binary of ${length}`);
    const text = "é".repeat(length >> 1) + "x".repeat(length & 1);
    socket.send(text);
    const frame = await readFrame(client);
    assert.deepEqual(
      { ...frame, payload: null },
      { fin: true, rsv: 0, opcode: OP.text, masked: false, lengthBytes, payload: null },
      `text of ${length}`,
    );
    assert.equal(new TextDecoder("utf-8", { fatal: true }).decode(frame.payload), text);
  }
});

Deno.test("a single frame whose 64-bit length is over the limit is refused with 1009 from its header alone", async () => {
  // Only the header is sent: the close must come before any payload.
  const header = (length: bigint) => {
    const bytes = frameHeader(0x80 | OP.binary, 65536);
    new DataView(bytes.buffer).setBigUint64(2, length);
    return concatBytes([bytes, MASK]);
  };
  await expectFailures([
    { name: "limit + 1", frames: [header(BigInt(MAX_MESSAGE + 1))] },
    { name: "2^32 + 1", frames: [header(2n ** 32n + 1n)] },
    { name: "2^53", frames: [header(2n ** 53n)] },
    {
      name: "after a fragment",
      frames: [
        clientFrame(OP.binary, new Uint8Array(MAX_MESSAGE - 10), { fin: false }),
        header(11n).map((byte, i) => i === 0 ? OP.continuation | 0x80 : byte),
      ],
    },
  ], 1009);
});

Deno.test("messages written back to back, their payloads at every alignment, are each unmasked intact", async () => {
  await using server = await serveEcho();
  using ws = await open(server);
  const { client } = ws;
  // A short frame of 0 to 3 bytes first shifts the next payload's offset in the chunk.
  const messages: Uint8Array[] = [];
  for (let shift = 0; shift < 4; shift++) {
    for (const length of [3, 17, 64, 1000, 70_000]) {
      messages.push(randomBytes(shift, 100 + shift), randomBytes(length, length + shift));
    }
  }
  await client.write(concatBytes(messages.map((bytes) => clientFrame(OP.binary, bytes))));
  for (const bytes of messages) await expectEcho(client, OP.binary, bytes);
});

Deno.test("sendView() writes one unmasked binary frame, and its bytes may change once it settles", async () => {
  await using server = await serveEcho();
  using ws = await open(server);
  const { client, socket } = ws;
  // Under 4 KiB copied (settled at once), from 4 KiB written as they are;
  // 8 MiB is more than the connection takes at once, so its write is still
  // under way when sendView returns.
  const expected = [
    [0, 0],
    [125, 0],
    [126, 2],
    [4095, 2],
    [4096, 2],
    [65536, 8],
    [300_000, 8],
    [8 * 2 ** 20, 8],
  ];
  for (const [length, lengthBytes] of expected as [number, number][]) {
    const bytes = randomBytes(length, length);
    const kept = bytes.slice();
    const frameRead = readFrame(client);
    await socket.sendView(bytes);
    bytes.fill(0);
    const frame = await frameRead;
    assert.deepEqual(
      { ...frame, payload: null },
      { fin: true, rsv: 0, opcode: OP.binary, masked: false, lengthBytes, payload: null },
      `binary of ${length}`,
    );
    assert.equal(firstDifference(frame.payload, kept), -1, `binary of ${length}`);
  }
});

Deno.test("sendView() settles when the connection ends with its message still unwritten", async () => {
  await using server = await serveEcho();
  using ws = await open(server);
  const { socket } = ws;
  // The client reads nothing: 64 MiB cannot all be taken by the connection.
  let settled = false;
  const sent = socket.sendView(new Uint8Array(64 * 2 ** 20)).then(() => settled = true);
  await Promise.resolve();
  assert.equal(settled, false, "64 MiB to a client that reads nothing was written at once");
  socket.terminate();
  await withDeadline(sent, WAIT_MS, "sendView after the connection ended");
  assert.equal(settled, true);
});
