/**
 * A real stack for network tests: a destination, a `main.ts server` in
 * front of it and a `main.ts web` in front of that, with raw HTTP helpers.
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
export interface Stack extends AsyncDisposable {
  destination: Destination;
  server: ServerProcess;
  web: ServerProcess;
  /** The gateway's base URL. */
  url: string;
  /** The gateway's port. */
  port: number;
}

export async function startStack(
  webArgs: string[] = [],
  serverArgs: string[] = [],
): Promise<Stack> {
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

export async function newSession(url: string): Promise<{ id: string; secret: string }> {
  const response = await fetch(`${url}/api/sessions`, { method: "POST" });
  const body = await response.json();
  assert.equal(response.status, 201, JSON.stringify(body));
  issuedSecrets.add(body.secret);
  return { id: body.id, secret: body.secret };
}

/**
 * Sends raw bytes on a new connection to `port` and reads the whole answer,
 * until the server closes; with `halfClose`, ends this side's sending first.
 */
export async function rawExchange(
  port: number,
  request: string,
  halfClose = false,
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, encoder.encode(request));
    if (halfClose) await conn.closeWrite();
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

/** The status line and JSON body of a raw HTTP answer. */
export function parseAnswer(answer: string): { status: number; body: Record<string, unknown> } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
  const json = answer.slice(answer.indexOf("\r\n\r\n") + 4);
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(json);
  } catch {
    // not JSON: an upgrade, an asset, or nothing
  }
  return { status, body };
}

/** One HTTP/1.1 request on its own connection, with exactly these headers. */
export async function request(
  port: number,
  head: string,
  headers: Record<string, string>,
  body = "",
): Promise<{ status: number; body: Record<string, unknown>; raw: string }> {
  const lines = Object.entries({
    ...headers,
    ...(body ? { "Content-Length": String(encoder.encode(body).length) } : {}),
    Connection: "close",
  }).map(([name, value]) => `${name}: ${value}\r\n`).join("");
  const raw = await withDeadline(
    rawExchange(port, `${head} HTTP/1.1\r\n${lines}\r\n${body}`),
    WAIT_MS,
    `the answer to ${head}`,
  );
  return { ...parseAnswer(raw), raw };
}

export async function sessionsOpen(adminPort: number): Promise<number> {
  const status = await (await fetch(`http://127.0.0.1:${adminPort}/status`)).json();
  return status.totals.sessionsOpen;
}
