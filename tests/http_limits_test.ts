/**
 * The limits every HTTP port keeps while bytes arrive, tried as an
 * attacker would against real `server` and `web` processes: headers sent a
 * byte at a time, a body that stops short, idle keep-alive connections,
 * and WebSocket messages that never finish or never stop. Each test counts
 * the gateway's open descriptors (and, for the flood, its memory) before,
 * during and after; `SOCKETPROXY_FIGURES=1` prints them (docs/security.md
 * quotes them).
 */

import assert from "node:assert/strict";
import { decoder, encoder, WAIT_MS, withDeadline } from "./_helpers.ts";
import { newSession, startStack } from "./_stack.ts";
import { closeQuietly, writeAll } from "../lib/_io.ts";
import { concatBytes } from "../lib/bytes.ts";

const FAST = ["--header-timeout=1s", "--body-timeout=1s", "--keepalive-timeout=1s"];

/** Open descriptors of a process. */
function descriptors(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

/** Resident memory of a process, in MiB. */
function residentMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) / 1024;
}

function figures(what: string, values: Record<string, number>): void {
  if (!Deno.env.get("SOCKETPROXY_FIGURES")) return;
  const shown = Object.entries(values).map(([name, value]) => `${name}=${Math.round(value)}`);
  console.log(`${what}: ${shown.join(" ")}`);
}

/**
 * Reads until the server ends the connection (end of stream or a reset);
 * the bytes it sent. Fails after `ms`.
 */
async function untilClosed(conn: Deno.Conn, ms = WAIT_MS): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  const reading = (async () => {
    for (;;) {
      const read = await conn.read(buffer).catch(() => null);
      if (read === null) return;
      parts.push(buffer.slice(0, read));
    }
  })();
  await withDeadline(reading, ms, "the server to close the connection");
  return concatBytes(parts);
}

/**
 * Writes `bytes` one at a time, `gapMs` apart, until the peer closes; how
 * many went. `each` runs after every byte.
 */
async function dribble(
  conn: Deno.Conn,
  bytes: Uint8Array,
  gapMs: number,
  each: () => void = () => {},
): Promise<number> {
  let sent = 0;
  for (const byte of bytes) {
    try {
      await conn.write(new Uint8Array([byte]));
    } catch {
      return sent;
    }
    sent++;
    each();
    await new Promise((resolve) => setTimeout(resolve, gapMs));
  }
  return sent;
}

/** A client frame: masked, as RFC 6455 requires of clients. */
function frame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const length = payload.length;
  const header = length < 126 ? [length] : length < 65536 ? [126, length >> 8, length & 255] : [
    127,
    0,
    0,
    0,
    0,
    (length >>> 24) & 255,
    (length >> 16) & 255,
    (length >> 8) & 255,
    length & 255,
  ];
  const mask = [0x12, 0x34, 0x56, 0x78];
  const out = new Uint8Array(2 + (header.length - 1) + 4 + length);
  out[0] = (fin ? 0x80 : 0) | opcode;
  out[1] = 0x80 | (header[0] as number);
  out.set(header.slice(1), 2);
  const at = 1 + header.length;
  out.set(mask, at);
  for (let i = 0; i < length; i++) {
    out[at + 4 + i] = (payload[i] as number) ^ (mask[i & 3] as number);
  }
  return out;
}

/** The server frames in `bytes` (unmasked), as opcode and payload. */
function serverFrames(bytes: Uint8Array): { opcode: number; payload: Uint8Array }[] {
  const frames = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    let length = (bytes[at + 1] as number) & 0x7f;
    let start = at + 2;
    if (length === 126) {
      length = (bytes[at + 2] as number) << 8 | (bytes[at + 3] as number);
      start = at + 4;
    } else if (length === 127) {
      length = new DataView(bytes.buffer, bytes.byteOffset + at + 6, 4).getUint32(0);
      start = at + 10;
    }
    if (start + length > bytes.length) break;
    frames.push({
      opcode: (bytes[at] as number) & 0x0f,
      payload: bytes.slice(start, start + length),
    });
    at = start + length;
  }
  return frames;
}

/** The code of the close frame among the server's frames, or null. */
function closeCode(bytes: Uint8Array): number | null {
  const close = serverFrames(bytes).find((one) => one.opcode === 8);
  if (!close || close.payload.length < 2) return null;
  return (close.payload[0] as number) << 8 | (close.payload[1] as number);
}

/** Opens a WebSocket to a session's `/ws` by hand; the connection, past the 101. */
async function rawWebSocket(port: number, id: string): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(
    conn,
    encoder.encode(
      `GET /api/sessions/${id}/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ),
  );
  // Read the 101 answer byte by byte, so that no frame after it is taken.
  let head = "";
  const one = new Uint8Array(1);
  while (!head.endsWith("\r\n\r\n") && head.length < 4096) {
    const read = await withDeadline(conn.read(one), WAIT_MS, "the 101 answer");
    if (read === null) break;
    head += decoder.decode(one);
  }
  assert.match(head, /^HTTP\/1\.1 101 /, head);
  assert.match(head, /sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
  return conn;
}

Deno.test("headers sent a byte at a time are cut off at --header-timeout, whatever the pace", async () => {
  await using stack = await startStack(FAST);
  const pid = stack.web.child.pid;
  await (await fetch(`${stack.url}/`)).arrayBuffer();
  const before = descriptors(pid);
  const partial = encoder.encode(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${stack.port}\r\nX-Slow: `);
  const conns = await Promise.all(
    Array.from({ length: 20 }, () => Deno.connect({ hostname: "127.0.0.1", port: stack.port })),
  );
  try {
    for (const conn of conns) await writeAll(conn, partial);
    // One keeps sending a byte every 100 ms: the limit is a deadline, not an idle time.
    let during = 0;
    const dribbling = dribble(conns[0] as Deno.Conn, encoder.encode("a".repeat(100)), 100, () => {
      during = Math.max(during, descriptors(pid));
    });
    const answers = await Promise.all(conns.map((conn) => untilClosed(conn)));
    const sent = await dribbling;
    const after = descriptors(pid);
    figures("slow headers", { before, during, after, dribbled: sent });
    assert.ok(sent < 100, `the dribbling connection was closed (after ${sent} bytes)`);
    assert.ok(answers.every((bytes) => bytes.length === 0), "no answer to half a request");
    assert.ok(after <= before, `descriptors: ${before} before, ${after} after`);
  } finally {
    for (const conn of conns) closeQuietly(conn);
  }
});

Deno.test("a body that stops short of its Content-Length is cut off at --body-timeout", async () => {
  await using stack = await startStack(FAST);
  const pid = stack.web.child.pid;
  const session = await newSession(stack.url);
  const before = descriptors(pid);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: stack.port });
  try {
    await writeAll(
      conn,
      encoder.encode(
        `POST /api/sessions/${session.id}/poll HTTP/1.1\r\nHost: 127.0.0.1:${stack.port}\r\n` +
          `Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"secret":`,
      ),
    );
    const sent = await dribble(conn, encoder.encode(" ".repeat(80)), 100);
    await untilClosed(conn);
    const after = descriptors(pid);
    figures("short body", { before, after, dribbled: sent });
    assert.ok(sent < 80, `the connection was closed (after ${sent} more bytes)`);
    assert.ok(after <= before, `descriptors: ${before} before, ${after} after`);
  } finally {
    closeQuietly(conn);
  }
});

Deno.test("keep-alive serves the next request, and an idle connection is closed at --keepalive-timeout", async () => {
  await using stack = await startStack(FAST);
  const pid = stack.web.child.pid;
  const before = descriptors(pid);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: stack.port });
  try {
    const get = encoder.encode(`GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1:${stack.port}\r\n\r\n`);
    const buffer = new Uint8Array(64 * 1024);
    for (let round = 0; round < 2; round++) {
      await writeAll(conn, get);
      const read = await withDeadline(conn.read(buffer), WAIT_MS, "an answer");
      assert.match(decoder.decode(buffer.subarray(0, read ?? 0)), /^HTTP\/1\.1 404 /);
    }
    const rest = await untilClosed(conn);
    assert.equal(rest.length, 0);
    const after = descriptors(pid);
    figures("idle keep-alive", { before, after });
    assert.ok(after <= before, `descriptors: ${before} before, ${after} after`);
  } finally {
    closeQuietly(conn);
  }
});

Deno.test("a fragmented WebSocket message that never ends is refused at the size limit, before it is read", async () => {
  await using stack = await startStack(FAST);
  const pid = stack.web.child.pid;
  const session = await newSession(stack.url);
  const memoryBefore = residentMiB(pid);
  const before = descriptors(pid);
  const mib = new Uint8Array(1024 * 1024).fill(0x61);
  const flood = async (): Promise<{ sent: number; code: number | null }> => {
    const conn = await rawWebSocket(stack.port, session.id);
    try {
      const answer = untilClosed(conn);
      let sent = 0;
      await writeAll(conn, frame(0x1, mib.subarray(0, 64 * 1024), false));
      // At most 100 MiB, which is what one socket sent unchecked before.
      for (let i = 0; i < 100; i++) {
        try {
          await writeAll(conn, frame(0x0, mib, false));
        } catch {
          break;
        }
        sent += mib.length;
      }
      return { sent, code: closeCode(await answer) };
    } finally {
      closeQuietly(conn);
    }
  };
  const sockets = await Promise.all([flood(), flood(), flood()]);
  const memoryAfter = residentMiB(pid);
  const after = descriptors(pid);
  figures("fragmented flood", {
    memoryBeforeMiB: memoryBefore,
    memoryAfterMiB: memoryAfter,
    before,
    after,
    maxSentMiB: Math.max(...sockets.map((one) => one.sent)) / 2 ** 20,
  });
  for (const socket of sockets) {
    assert.equal(socket.code, 1009, "closed as too big");
    assert.ok(socket.sent < 16 * 2 ** 20, `closed after ${socket.sent} bytes, not 100 MiB`);
  }
  assert.ok(memoryAfter - memoryBefore < 48, `memory ${memoryBefore} MiB -> ${memoryAfter} MiB`);
  assert.ok(after <= before, `descriptors: ${before} before, ${after} after`);
});

Deno.test("a WebSocket message left unfinished is closed at --body-timeout, however slowly it trickles", async () => {
  await using stack = await startStack(FAST);
  const session = await newSession(stack.url);
  const conn = await rawWebSocket(stack.port, session.id);
  try {
    const answer = untilClosed(conn);
    // A frame of 1000 bytes whose payload comes a byte every 100 ms.
    const whole = frame(0x1, new Uint8Array(1000).fill(0x20));
    await writeAll(conn, whole.subarray(0, 8));
    const sent = await dribble(conn, whole.subarray(8, 108), 100);
    assert.equal(closeCode(await answer), 1008);
    assert.ok(sent < 100, `closed after ${sent} trickled bytes`);
  } finally {
    closeQuietly(conn);
  }
});

Deno.test("a WebSocket peer that never answers the close frame is dropped at the TCP level", async () => {
  await using stack = await startStack(FAST);
  const session = await newSession(stack.url);
  const conn = await rawWebSocket(stack.port, session.id);
  try {
    // A bad first message: the gateway says why and closes; this side never answers.
    await writeAll(conn, frame(0x1, encoder.encode("not json")));
    const bytes = await untilClosed(conn);
    const frames = serverFrames(bytes);
    assert.match(decoder.decode(frames[0]?.payload), /"error":"bad_request"/);
    assert.equal(closeCode(bytes), 4000);
  } finally {
    closeQuietly(conn);
  }
});

Deno.test("web refuses a timeout flag that is not a positive duration, in one line", async () => {
  const { parseWebArgs } = await import("../lib/commands/web.ts");
  for (const flag of ["--header-timeout=0", "--body-timeout=soon", "--keepalive-timeout=-1s"]) {
    assert.throws(() => parseWebArgs([flag]), new RegExp(`^UsageError: ${flag.split("=")[0]}: `));
  }
  const config = parseWebArgs(["--header-timeout=2s", "--keepalive-timeout=1m"]);
  assert.ok(config !== "help");
  assert.deepEqual(config.timeouts, { headers: 2000, body: 10_000, keepAlive: 60_000 });
});
