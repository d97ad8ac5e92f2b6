/**
 * What the two HTTP fuzz targets (`_fuzz_admin.ts`, `_fuzz_gateway.ts`)
 * share: how a request is drawn and from where, how a handler is called and
 * its response read, and the checks every answer must pass: JSON errors,
 * and no secret the request did not put in its URL.
 *
 * @module
 */

import { describeError } from "../lib/log.ts";
import { AuthThrottle } from "../lib/throttle.ts";
import {
  escapeInput,
  fromLatin1,
  FUZZ_SECRETS,
  Fuzzer,
  type FuzzRequest,
  within,
} from "./_fuzz.ts";

/**
 * A request from the corpus, mostly mutated, sometimes with a random method or path.
 *
 * @param fuzzer The input's generator.
 * @param corpus The target's valid requests.
 * @returns The parts of the request.
 */
export function fuzzRequest(fuzzer: Fuzzer, corpus: readonly FuzzRequest[]): FuzzRequest {
  const base = fuzzer.pick(corpus);
  if (fuzzer.chance(0.05)) return base;
  const spec = fuzzer.mutateRequest(base, corpus);
  if (fuzzer.chance(0.03)) spec.path = "/" + fuzzer.printable(fuzzer.size(80));
  if (fuzzer.chance(0.02)) spec.method = fuzzer.printable(1 + fuzzer.size(10));
  return spec;
}

/**
 * The peer a request comes from: loopback (as from nginx, so that the
 * gateway believes `X-Forwarded-For`) or one of many addresses.
 *
 * @param fuzzer The input's generator.
 * @returns What `Deno.serve` would hand the handler.
 */
export function fuzzPeer(fuzzer: Fuzzer): Deno.ServeHandlerInfo<Deno.NetAddr> {
  const kind = fuzzer.next();
  const hostname = kind < 0.3
    ? "127.0.0.1"
    : kind < 0.35
    ? "::1"
    : kind < 0.4
    ? `2001:db8::${fuzzer.int(65536).toString(16)}`
    : `10.${fuzzer.int(4)}.${fuzzer.int(256)}.${fuzzer.int(256)}`;
  return {
    remoteAddr: { transport: "tcp", hostname, port: 1024 + fuzzer.int(64512) },
    completed: Promise.resolve(),
  };
}

/**
 * A throttle that counts wrong secrets per address but never delays, so
 * that thousands of 401s do not slow a run down, while its memory (bounded
 * by `capacity`, which a run fills many times over) is still exercised.
 *
 * @returns A new throttle.
 */
export function fuzzThrottle(): AuthThrottle {
  return new AuthThrottle({ step: 0, capacity: 500 });
}

/**
 * Shows a request as it would go over the wire, escaped.
 *
 * @param spec The parts drawn.
 * @param request The request built from them, or `null` when the Fetch API refused them.
 * @returns One line of printable ASCII.
 */
export function describeRequest(spec: FuzzRequest, request: Request | null): string {
  const headers = spec.headers.map(([name, value]) => `${name}: ${value}`).join("\r\n");
  const body = spec.body && request?.method !== "GET" && request?.method !== "HEAD"
    ? fromLatin1(spec.body)
    : "";
  return escapeInput(`${spec.method} ${spec.path}\r\n${headers}\r\n\r\n${body}`, 1200);
}

/** A response, or reading its body, slower than this is a hang. */
export const HANG_MS = 5000;

/**
 * Cancels what is left of a request's body, so that no stream outlives its input.
 *
 * @param request The request.
 */
export async function discardBody(request: Request): Promise<void> {
  if (request.body && !request.body.locked) await request.body.cancel();
}

/** A handler's response and its whole body, or why the handler broke its contract. */
export type Answered = { response: Response; text: string } | { problem: string };

/**
 * Calls a handler and reads its answer: it must give a Response (never
 * throw or reject) within {@linkcode HANG_MS}, whose body ends within as
 * long again. The request's body is discarded once the handler has answered.
 *
 * @param request What the handler gets.
 * @param handle Calls the handler with `request`.
 * @returns The response and its body, or the problem.
 */
export async function answerOf(
  request: Request,
  handle: () => unknown,
): Promise<Answered> {
  let answer: unknown;
  try {
    answer = handle();
  } catch (error) {
    await discardBody(request);
    return { problem: `the handler threw ${describeError(error)}` };
  }
  const got = await within(Promise.resolve(answer), HANG_MS);
  await discardBody(request);
  if (got === "hung") return { problem: `no response within ${HANG_MS} ms` };
  if ("error" in got) return { problem: `the handler rejected: ${describeError(got.error)}` };
  const response = got.value;
  if (!(response instanceof Response)) {
    return { problem: `the handler returned ${String(response)}, not a Response` };
  }
  const read = await within(response.text(), HANG_MS);
  if (read === "hung") return { problem: `the body did not end within ${HANG_MS} ms` };
  if ("error" in read) return { problem: `the body failed: ${describeError(read.error)}` };
  return { response, text: read.value };
}

/**
 * Why a non-2xx response is not the promised JSON error, or `null`.
 *
 * @param response The response.
 * @param text Its body.
 * @param shape `error`: the body must carry `error` and `message` strings; `any`: any object.
 * @returns The problem, or `null`.
 */
export function jsonErrorProblem(
  response: Response,
  text: string,
  shape: "error" | "any",
): string | null {
  if (!/^application\/json\b/.test(response.headers.get("content-type") ?? "")) {
    return `status ${response.status} with content-type ${response.headers.get("content-type")}`;
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `status ${response.status} with a body that is not JSON: ${escapeInput(text, 200)}`;
  }
  if (typeof body !== "object" || body === null) return `status ${response.status}, body ${text}`;
  const { error, message } = body as Record<string, unknown>;
  if (shape === "error" && (typeof error !== "string" || typeof message !== "string")) {
    return `status ${response.status} without {"error","message"}: ${escapeInput(text, 200)}`;
  }
  if (response.status === 405 && !response.headers.has("allow")) return "405 without Allow";
  return null;
}

/**
 * Which of `secrets` `texts` show that the request did not put in an echoed part.
 *
 * @param request The request.
 * @param texts The response body, its headers, the log lines.
 * @param secrets What must not show.
 * @returns The problem, naming the secret, or `null`.
 */
export function leakProblem(
  request: Request,
  texts: string[],
  secrets: readonly string[] = FUZZ_SECRETS,
): string | null {
  const echoed = echoable(request);
  for (const secret of secrets) {
    if (echoed.includes(secret)) continue;
    if (texts.some((text) => text.includes(secret))) {
      return `a secret shows in the response or log: "${secret}"`;
    }
  }
  return null;
}

/**
 * @param response A response.
 * @returns Its header fields, as `name: value` lines.
 */
export function headerTexts(response: Response): string[] {
  return [...response.headers].map(([name, value]) => `${name}: ${value}`);
}

/** Where a secret may appear in a response or log line: the parts of a request echoed by design. */
function echoable(request: Request): string {
  const path = new URL(request.url).pathname;
  return [request.method, path, decodeSafe(path), request.headers.get("x-forwarded-for") ?? ""]
    .join("\n");
}

function decodeSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
