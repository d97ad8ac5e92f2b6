/**
 * What the gateway reads from a request: JSON bodies within their limit,
 * the session secret, offsets and input checked, and the client's address
 * (its peer, or what a reverse proxy on this host says). Every refusal is an
 * {@linkcode HttpError}, answered as JSON.
 *
 * @module
 */

import { parseIp } from "../ip.ts";
import type { HttpRequestInfo } from "../http/server.ts";
import { concatBytes } from "../bytes.ts";
import { meaningOf } from "../client/mod.ts";
import { SECRET_PATTERN } from "../protocol.ts";

/** Limits on what a request may ask for. */
export interface GatewayLimits {
  /** Largest request body, in bytes. */
  maxBody: number;
  /** Largest input per poll or WebSocket message, in bytes (decoded). */
  maxInput: number;
  /** Longest `wait` of a long-poll, in ms; longer waits are cut to this. */
  maxWait: number;
}

/** Defaults of {@linkcode GatewayLimits}. */
export const GATEWAY_LIMITS: Readonly<GatewayLimits> = {
  maxBody: 256 * 1024,
  maxInput: 64 * 1024,
  maxWait: 30_000,
};

/** An error answered as JSON with an HTTP status. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly extra: Record<string, unknown>;

  constructor(status: number, code: string, message: string, extra: Record<string, unknown> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.extra = extra;
  }
}

export function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

/** Maps a client library error to the HTTP error the browser gets. */
export function httpErrorFor(error: unknown): HttpError | null {
  if (error instanceof HttpError) return error;
  const meaning = meaningOf(error);
  if (!meaning) return null;
  return new HttpError(meaning.status, meaning.code, `The proxy ${meaning.phrase}`, meaning.fields);
}

/** Reads a JSON object body of at most `max` bytes. */
export async function readJson(request: Request, max: number): Promise<Record<string, unknown>> {
  return parseBody(await readBody(request, max));
}

/** Reads a JSON object body of at most `max` bytes; no body at all reads as `{}`. */
export async function readOptionalJson(
  request: Request,
  max: number,
): Promise<Record<string, unknown>> {
  const bytes = await readBody(request, max);
  return bytes.length === 0 ? {} : parseBody(bytes);
}

/**
 * The destination a body names (`"to"`), or `undefined` when it names none.
 * Whether the gateway serves it is the caller's to check.
 */
export function destinationOf(body: Record<string, unknown>): string | undefined {
  const to = body.to;
  if (to === undefined || to === null) return undefined;
  if (typeof to !== "string") {
    throw new HttpError(400, "bad_request", '"to" must be a destination name');
  }
  return to;
}

async function readBody(request: Request, max: number): Promise<Uint8Array> {
  const length = Number(request.headers.get("content-length") ?? NaN);
  if (length > max) {
    throw new HttpError(413, "too_large", `Request bodies are limited to ${max} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (request.body) {
    try {
      for await (const chunk of request.body) {
        total += chunk.length;
        if (total > max) {
          throw new HttpError(413, "too_large", `Request bodies are limited to ${max} bytes`);
        }
        chunks.push(chunk);
      }
    } catch (error) {
      if (error instanceof HttpError) throw error;
      // The client stopped short of its Content-Length (or reset): its fault, not ours.
      throw new HttpError(400, "bad_request", "The request body ended early");
    }
  }
  return concatBytes(chunks);
}

function parseBody(bytes: Uint8Array): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new HttpError(400, "bad_request", "The body must be a JSON object");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, "bad_request", "The body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

export function secretOf(body: Record<string, unknown>): string {
  const secret = body.secret;
  if (typeof secret !== "string" || !SECRET_PATTERN.test(secret)) {
    throw new HttpError(400, "bad_request", '"secret" must be the session secret');
  }
  return secret;
}

export function offsetOf(
  body: Record<string, unknown>,
  name: string,
  required: boolean,
): number | undefined {
  const value = body[name];
  if (value === undefined && !required) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new HttpError(400, "bad_request", `"${name}" must be a whole number of bytes`);
  }
  return value;
}

export function inputOf(body: Record<string, unknown>, limits: GatewayLimits): Uint8Array {
  const input = body.input;
  if (input === undefined || input === "") return new Uint8Array(0);
  if (typeof input !== "string") {
    throw new HttpError(400, "bad_request", '"input" must be base64 text');
  }
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.fromBase64(input);
  } catch {
    throw new HttpError(400, "bad_request", '"input" must be base64 text');
  }
  if (bytes.length > limits.maxInput) {
    throw new HttpError(
      413,
      "too_large",
      `Input is limited to ${limits.maxInput} bytes per request`,
      { maxInput: limits.maxInput },
    );
  }
  return bytes;
}

/**
 * The address a reverse proxy in front appended to `X-Forwarded-For`: the
 * last one. Those before it came from the browser and may be made up.
 */
export function forwardedFor(request: Request): string | undefined {
  return request.headers.get("x-forwarded-for")?.split(",").at(-1)?.trim() || undefined;
}

/** A client's address as logged: the gateway's own peer, and what a proxy in front says. */
export interface ClientAddress {
  /** The peer's `host:port`. */
  peer: string | undefined;
  /** The last `X-Forwarded-For` entry. */
  forwarded_for: string | undefined;
}

/** The client's address as the gateway's own peer and any proxy in front say it, for the log. */
export function clientAddress(
  request: Request,
  info: Pick<HttpRequestInfo, "remoteAddr"> | undefined,
): ClientAddress {
  const peer = info ? `${info.remoteAddr.hostname}:${info.remoteAddr.port}` : undefined;
  return { peer, forwarded_for: forwardedFor(request) };
}

/** A path as logged for its route: `/api/sessions/{id}/poll`. */
export function routeOf(path: string): string {
  return path.replace(/\/api\/sessions\/[^/]+/, "/api/sessions/{id}");
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/**
 * The browser's address as a `from=` hello option takes it: the peer's
 * address and port, or (behind a reverse proxy on this host) the last
 * `X-Forwarded-For` entry, which has no port; `undefined` when that is not
 * an IP address.
 *
 * @param request The request.
 * @param info Where it came from.
 * @returns `<ipv4>[:<port>]` or `[<ipv6>][:<port>]`.
 */
export function endUserAddress(
  request: Request,
  info: Pick<HttpRequestInfo, "remoteAddr"> | undefined,
): string | undefined {
  const peer = info?.remoteAddr;
  if (!peer) return undefined;
  const forwarded = LOOPBACK.test(peer.hostname) ? forwardedFor(request) : undefined;
  const host = forwarded ?? peer.hostname;
  const ip = parseIp(host);
  if (!ip) return undefined;
  const text = ip.family === 6 ? `[${host}]` : host;
  return forwarded === undefined ? `${text}:${peer.port}` : text;
}

/**
 * The browser's address, as far as it can be trusted: the peer's, unless
 * the peer is a reverse proxy on this host (nginx, say), in which case the
 * address that proxy appended to `X-Forwarded-For`.
 */
export function browserAddress(
  request: Request,
  info: Pick<HttpRequestInfo, "remoteAddr"> | undefined,
): string | undefined {
  const peer = info?.remoteAddr.hostname;
  if (peer === undefined || !LOOPBACK.test(peer)) return peer;
  return forwardedFor(request) ?? peer;
}
