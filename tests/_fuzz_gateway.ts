/**
 * The gateway fuzz target: `gatewayHandler` (lib/gateway/) fed mutated
 * requests over every route of its API table, in front of a stub proxy
 * whose answers the input also draws, and judged on both sides: what the
 * proxy was sent, and what the browser gets back.
 *
 * @module
 */

import { concatBytes } from "../lib/bytes.ts";
import { closeQuietly, writeAll } from "../lib/_io.ts";
import { describeError, Logger } from "../lib/log.ts";
import { MAX_HELLO_BYTES } from "../lib/protocol.ts";
import { type Asset, gatewayHandler, type GatewayLimits } from "../lib/gateway/mod.ts";
import {
  equalBytes,
  escapeInput,
  fromLatin1,
  FUZZ_ID,
  FUZZ_ID_LONG,
  FUZZ_SECRET,
  FUZZ_SECRET_LONG,
  FUZZ_SECRETS,
  Fuzzer,
  type FuzzOptions,
  type FuzzReport,
  type FuzzRequest,
  ID_SYNTAX,
  runTarget,
  SECRET_SYNTAX,
  toLatin1,
  toRequest,
  within,
} from "./_fuzz.ts";
import {
  answerOf,
  describeRequest,
  discardBody,
  fuzzPeer,
  fuzzRequest,
  fuzzThrottle,
  HANG_MS,
  headerTexts,
  jsonErrorProblem,
  leakProblem,
} from "./_fuzz_http.ts";

const encoder = new TextEncoder();
const LF = 0x0a;

function jsonRequest(method: string, path: string, body: unknown): FuzzRequest {
  return {
    method,
    path,
    headers: [["content-type", "application/json"]],
    body: encoder.encode(JSON.stringify(body)),
  };
}

/** Valid gateway requests: every route, JSON bodies with every field. */
export const GATEWAY_CORPUS: readonly FuzzRequest[] = [
  { method: "POST", path: "/api/sessions", headers: [], body: null },
  jsonRequest("POST", `/api/sessions/${FUZZ_ID}/poll`, { secret: FUZZ_SECRET, ack: 0 }),
  jsonRequest("POST", `/api/sessions/${FUZZ_ID}/poll`, {
    secret: FUZZ_SECRET,
    ack: 1024,
    input: "aGVsbG8K",
    inputAt: 6,
    wait: 25_000,
  }),
  jsonRequest("POST", `/api/sessions/${FUZZ_ID_LONG}/poll`, {
    secret: FUZZ_SECRET_LONG,
    ack: 9007199254740991,
    input: "",
    wait: 0,
  }),
  {
    ...jsonRequest("POST", `/api/sessions/${FUZZ_ID}/poll`, { secret: FUZZ_SECRET, ack: 3 }),
    headers: [["content-type", "application/json"], ["content-length", "37"]],
  },
  jsonRequest("DELETE", `/api/sessions/${FUZZ_ID}`, { secret: FUZZ_SECRET }),
  { method: "GET", path: "/", headers: [["accept", "text/html"]], body: null },
  { method: "HEAD", path: "/", headers: [], body: null },
  { method: "GET", path: "/health", headers: [], body: null },
  {
    method: "GET",
    path: "/assets/app.js",
    headers: [["x-forwarded-for", "203.0.113.9"]],
    body: null,
  },
  { method: "GET", path: `/api/sessions/${FUZZ_ID}/ws`, headers: [], body: null },
  {
    method: "GET",
    path: `/api/sessions/${FUZZ_ID}/ws`,
    headers: [["connection", "upgrade"], ["sec-websocket-version", "13"]],
    body: null,
  },
];

const GATEWAY_STATUSES = new Set([200, 201, 400, 401, 404, 405, 409, 413, 502, 503]);
const GATEWAY_LIMITS: GatewayLimits = { maxBody: 4096, maxInput: 1024, maxWait: 50 };
const GATEWAY_ASSETS: Record<string, Asset> = {
  "/": { type: "text/html; charset=utf-8", body: "<!doctype html><title>fuzz</title>\n" },
  "/assets/app.js": { type: "text/javascript", body: new TextEncoder().encode("void 0;\n") },
};
const SESSION_ROUTE = /^\/api\/sessions\/([^/]+)(\/poll|\/ws)?$/;
/** What the stub proxy names a new session: the secret belongs in a 201's body, nowhere else. */
const STUB_ID = "stub-session-1";
const STUB_SECRET = "StubProxy-issued-secret_0123456789";
/** How long the gateway waits for the stub's reply: each silent answer costs this much. */
const STUB_TIMEOUT_MS = 500;

/** The hello a request must make the gateway send, and what the request carried. */
type ProxyCall =
  | { verb: "NEW"; from?: string }
  | { verb: "CLOSE"; id: string; secret: string }
  | {
    verb: "RESUME";
    id: string;
    secret: string;
    ack: number;
    inputAt: number | undefined;
    input: Uint8Array;
    wait: number;
  };

/**
 * What the gateway's API table (lib/gateway/, docs/gateway.md "The API") does
 * with `request`: answer a status without the proxy, send the proxy a
 * hello, or (`"upgrade"`) start a WebSocket, which needs a real connection.
 */
function expectedGatewayCall(
  request: Request,
  body: Uint8Array | null,
): number | "upgrade" | ProxyCall {
  const path = new URL(request.url).pathname;
  const method = request.method;
  if (path === "/api/sessions") {
    return method === "POST" ? expectedCreateCall(request, body ?? new Uint8Array(0)) : 405;
  }
  if (path === "/health") return method === "GET" || method === "HEAD" ? 200 : 405;
  const route = SESSION_ROUTE.exec(path);
  if (route) {
    const id = route[1] ?? "";
    if (!ID_SYNTAX.test(id)) return 400;
    if (route[2] === "/ws") {
      if (method !== "GET") return 405;
      return request.headers.get("upgrade")?.toLowerCase() === "websocket" ? "upgrade" : 400;
    }
    const poll = route[2] === "/poll";
    if (method !== (poll ? "POST" : "DELETE")) return 405;
    return expectedBodyCall(request, body ?? new Uint8Array(0), id, poll);
  }
  const asset = Object.hasOwn(GATEWAY_ASSETS, path);
  if (asset) return method === "GET" || method === "HEAD" ? 200 : 405;
  return 404;
}

/**
 * A NEW for no body or a JSON object naming no destination; 413, 400 as for
 * any body; 404 for a named one (this gateway serves no named destination).
 */
function expectedCreateCall(request: Request, bytes: Uint8Array): number | ProxyCall {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > GATEWAY_LIMITS.maxBody || bytes.length > GATEWAY_LIMITS.maxBody) return 413;
  if (bytes.length === 0) return { verb: "NEW" };
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return 400;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return 400;
  const to = (body as Record<string, unknown>).to;
  if (to === undefined || to === null) return { verb: "NEW" };
  return typeof to === "string" ? 404 : 400;
}

/** 413 for a body over the limit, 400 for a bad one, the hello for a good one. */
function expectedBodyCall(
  request: Request,
  bytes: Uint8Array,
  id: string,
  poll: boolean,
): number | ProxyCall {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > GATEWAY_LIMITS.maxBody || bytes.length > GATEWAY_LIMITS.maxBody) return 413;
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return 400;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return 400;
  const fields = body as Record<string, unknown>;
  const secret = fields.secret;
  if (typeof secret !== "string" || !SECRET_SYNTAX.test(secret)) return 400;
  if (!poll) return { verb: "CLOSE", id, secret };
  const offset = (value: unknown): value is number =>
    typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
  const { ack, inputAt, wait } = fields;
  if (!offset(ack)) return 400;
  if (inputAt !== undefined && !offset(inputAt)) return 400;
  let input = new Uint8Array(0);
  if (fields.input !== undefined && fields.input !== "") {
    if (typeof fields.input !== "string") return 400;
    try {
      input = Uint8Array.fromBase64(fields.input);
    } catch {
      return 400;
    }
    if (input.length > GATEWAY_LIMITS.maxInput) return 413;
  }
  if (wait !== undefined && !(typeof wait === "number" && wait >= 0)) return 400;
  return { verb: "RESUME", id, secret, ack, inputAt, input, wait: wait ?? 0 };
}

/** How the stub proxy answers the one connection of an input. */
type StubAnswer =
  | {
    kind: "ok";
    /** The reply's `<in>`. */
    in: number;
    state: "open" | "closed";
    /** The output announced as `<pending>`. */
    pending: Uint8Array;
    /** Output sent after the pending bytes, as if it had just arrived. */
    late: Uint8Array;
    /** Send only this much of `pending`, then end the connection; `null` for all of it. */
    cut: number | null;
  }
  | { kind: "bye" }
  /** A reply line (an error, or something that is no reply) and the status it must become. */
  | { kind: "line"; line: string; status: number; extra?: Record<string, number> }
  /** Close without a reply. */
  | { kind: "hangup" }
  /** Never answer: the gateway's proxy timeout ends it. */
  | { kind: "silent" };

/** Lines no socketproxy server sends: the gateway must answer 502 to each. */
const NOT_REPLIES = [
  "HTTP/1.1 400 Bad Request",
  "SSH-2.0-OpenSSH_9.6",
  "\x16\x03\x01\x00\xa5\x01\x00\x00",
  "OK",
  "OK a b c d e f",
  `OK ${FUZZ_ID} ${STUB_SECRET} 0 0 5 half-open`,
  `OK ${FUZZ_ID} short 0 0 0 open`,
  "ERR",
  "ERR nonsense something broke",
  "BYE",
  "",
  "\r",
];

/** Draws the stub's answer to `call`: mostly what a server would say, sometimes not. */
function stubAnswer(fuzzer: Fuzzer, call: ProxyCall): StubAnswer {
  const kind = fuzzer.next();
  if (kind < 0.55) {
    if (call.verb === "CLOSE") return { kind: "bye" };
    const ack = call.verb === "RESUME" ? call.ack : 0;
    // Offsets stay safe integers, as a real server's do.
    const room = Number.MAX_SAFE_INTEGER - ack;
    const pending = fuzzer.bytes(Math.min(room, fuzzer.chance(0.3) ? 0 : fuzzer.size(3000)));
    const late = pending.length === 0 && fuzzer.chance(0.7)
      ? fuzzer.bytes(Math.min(room, 1 + fuzzer.size(200)))
      : new Uint8Array(0);
    const inputAt = call.verb === "RESUME" ? call.inputAt : undefined;
    const inputLength = call.verb === "RESUME" ? call.input.length : 0;
    return {
      kind: "ok",
      in: call.verb === "NEW"
        ? 0
        : inputAt === undefined
        ? fuzzer.int(100_000)
        : Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, inputAt - 2 + fuzzer.int(inputLength + 5))),
      state: call.verb === "RESUME" && fuzzer.chance(0.15) ? "closed" : "open",
      pending,
      late,
      cut: call.verb === "RESUME" && pending.length > 0 && fuzzer.chance(0.1)
        ? fuzzer.int(pending.length)
        : null,
    };
  }
  const offset = fuzzer.chance(0.1) ? Number.MAX_SAFE_INTEGER : fuzzer.int(2 ** 31);
  switch (fuzzer.int(12)) {
    case 0:
    case 1:
      return { kind: "line", line: "ERR auth unknown session or wrong secret", status: 401 };
    case 2:
      return {
        kind: "line",
        line: `ERR gap ${offset} output before offset ${offset} was released`,
        status: 409,
        extra: { lowest: offset },
      };
    case 3:
      return {
        kind: "line",
        line: `ERR ack ${offset} only ${offset} bytes were ever sent`,
        status: 409,
        extra: { sent: offset },
      };
    case 4:
      return { kind: "line", line: "ERR busy the session limit is reached", status: 503 };
    case 5:
      return { kind: "line", line: "ERR unreachable connection refused", status: 502 };
    case 6:
      return {
        kind: "line",
        line: fuzzer.pick([
          "ERR bad-request malformed hello",
          "ERR timeout no complete hello within 10 s",
          "ERR gap",
          "ERR ack 1e3",
        ]),
        status: 502,
      };
    case 7:
      return { kind: "hangup" };
    case 8:
      // A BYE where an OK is due, an OK where a BYE is due.
      return call.verb === "CLOSE"
        ? { kind: "line", line: `OK ${call.id} ${STUB_SECRET} 0 0 0 open`, status: 502 }
        : { kind: "line", line: `BYE ${FUZZ_ID}`, status: 502 };
    case 9:
      return fuzzer.chance(0.1) ? { kind: "silent" } : { kind: "hangup" };
    case 10:
      // No LF within what a reply may take.
      return { kind: "line", line: "X".repeat(2048 + fuzzer.int(100)), status: 502 };
    default:
      return {
        kind: "line",
        line: fuzzer.chance(0.5)
          ? fuzzer.pick(NOT_REPLIES)
          : "?" + fuzzer.printable(fuzzer.size(80)),
        status: 502,
      };
  }
}

/** The hello line `call` is sent as. */
function helloOf(call: ProxyCall): string {
  switch (call.verb) {
    case "NEW":
      return call.from === undefined ? "NEW" : `NEW from=${call.from}`;
    case "CLOSE":
      return `CLOSE ${call.id} ${call.secret}`;
    case "RESUME":
      return `RESUME ${call.id} ${call.secret} ${call.ack}`;
  }
}

/** One connection the stub took: the hello it read, and the input that followed. */
interface Visit {
  hello: string;
  input: Uint8Array;
}

/** The most a stub connection reads: hellos are short, input is at most `maxInput`. */
const VISIT_MAX_BYTES = 64 * 1024;

/**
 * A socketproxy server stand-in for the gateway fuzzer, in this process:
 * it reads each connection's hello, answers with {@linkcode StubProxy.answer}
 * (set before each input), and records the hello and the input after it.
 */
class StubProxy implements AsyncDisposable {
  /** The answer to the connections accepted from now on. */
  answer: StubAnswer = { kind: "hangup" };
  readonly #listener: Deno.TcpListener;
  readonly #accepting: Promise<void>;
  readonly #conns = new Set<Deno.TcpConn>();
  #visits: Promise<Visit>[] = [];

  constructor() {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The stub's port. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** The connections taken since the last call, once each has ended. */
  visits(): Promise<Visit[]> {
    const visits = this.#visits;
    this.#visits = [];
    return Promise.all(visits);
  }

  /** Ends every open connection (after an input hung). */
  dropAll(): void {
    for (const conn of this.#conns) closeQuietly(conn);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    closeQuietly(this.#listener);
    this.dropAll();
    await this.#accepting;
    await Promise.allSettled(this.#visits);
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        this.#conns.add(conn);
        this.#visits.push(
          this.#serve(conn, this.answer).finally(() => {
            this.#conns.delete(conn);
            closeQuietly(conn);
          }),
        );
      }
    } catch {
      // The listener was closed.
    }
  }

  async #serve(conn: Deno.TcpConn, answer: StubAnswer): Promise<Visit> {
    const received = new Uint8Array(VISIT_MAX_BYTES);
    let filled = 0;
    let lf = -1;
    // Read the hello, then answer, then read whatever input comes until the gateway leaves.
    try {
      while (lf < 0 && filled < MAX_HELLO_BYTES) {
        const count = await conn.read(received.subarray(filled));
        if (count === null) {
          return { hello: fromLatin1(received.subarray(0, filled)), input: EMPTY };
        }
        lf = received.subarray(filled, filled + count).indexOf(LF);
        if (lf >= 0) lf += filled;
        filled += count;
      }
      if (lf < 0) return { hello: fromLatin1(received.subarray(0, filled)), input: EMPTY };
      const hello = fromLatin1(received.subarray(0, lf));
      if (answer.kind === "hangup") return { hello, input: received.slice(lf + 1, filled) };
      if (answer.kind !== "silent") await writeAll(conn, this.#reply(answer, hello));
      if (answer.kind === "ok" && answer.cut !== null) await conn.closeWrite();
      while (filled < received.length) {
        const count = await conn.read(received.subarray(filled));
        if (count === null) break;
        filled += count;
      }
      return { hello, input: received.slice(lf + 1, filled) };
    } catch {
      // The gateway reset the connection: what was read still counts.
      const hello = fromLatin1(received.subarray(0, lf < 0 ? filled : lf));
      return { hello, input: lf < 0 ? EMPTY : received.slice(lf + 1, filled) };
    }
  }

  /** The bytes an answer sends: the reply line, and any output. */
  #reply(answer: Exclude<StubAnswer, { kind: "hangup" | "silent" }>, hello: string): Uint8Array {
    const [verb = "", id = "", secret = "", ack = "0"] = hello.split(" ");
    if (answer.kind === "line") return toLatin1(answer.line + "\n");
    if (answer.kind === "bye") return toLatin1(`BYE ${id}\n`);
    const line = verb === "NEW"
      ? `OK ${STUB_ID} ${STUB_SECRET} 0 0 ${answer.pending.length} open\n`
      : `OK ${id} ${secret} ${answer.in} ${ack} ${answer.pending.length} ${answer.state}\n`;
    const parts = answer.cut === null
      ? [toLatin1(line), answer.pending, answer.late]
      : [toLatin1(line), answer.pending.subarray(0, answer.cut)];
    return concatBytes(parts);
  }
}

const EMPTY = new Uint8Array(0);

/** Whether `prefix` is where `bytes` starts. */
function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return prefix.length <= bytes.length && equalBytes(bytes.subarray(0, prefix.length), prefix);
}

/** Why the stub's view of an input (its hello and input) is wrong, or `null`. */
function visitProblem(call: ProxyCall | null, answer: StubAnswer, visits: Visit[]): string | null {
  if (call === null) {
    return visits.length === 0
      ? null
      : `the proxy got a hello it should not: "${escapeInput(visits[0]?.hello ?? "", 200)}"`;
  }
  const visit = visits[0];
  if (visits.length !== 1 || visit === undefined) {
    return `the proxy got ${visits.length} connections, expected 1`;
  }
  const hello = helloOf(call);
  if (visit.hello !== hello) {
    return `the proxy got "${escapeInput(visit.hello, 200)}", expected "${
      escapeInput(hello, 200)
    }"`;
  }
  if (answer.kind !== "ok" || call.verb !== "RESUME") {
    return visit.input.length === 0
      ? null
      : `${visit.input.length} bytes of input sent without an OK reply`;
  }
  if (inputBehind(call, answer)) {
    return visit.input.length === 0
      ? null
      : `${visit.input.length} bytes of input sent after <in> ${answer.in}, below inputAt`;
  }
  // The gateway sends the input the reply's <in> does not already cover,
  // none once the destination has closed (the server would drop it).
  const skip = answer.state === "closed"
    ? call.input.length
    : call.inputAt === undefined
    ? 0
    : Math.min(call.input.length, Math.max(0, answer.in - call.inputAt));
  const expected = call.input.subarray(skip);
  const whole = answer.cut === null;
  if (whole ? !equalBytes(visit.input, expected) : !startsWith(expected, visit.input)) {
    return `the proxy got input "${escapeInput(visit.input, 100)}", expected ${
      whole ? "" : "a prefix of "
    }"${escapeInput(expected, 100)}"`;
  }
  return null;
}

/** The status `answer` must become for `call`. */
function answerStatus(call: ProxyCall, answer: StubAnswer): number {
  switch (answer.kind) {
    case "ok":
      return inputBehind(call, answer) ? 409 : call.verb === "NEW" ? 201 : 200;
    case "bye":
      return 200;
    case "line":
      return answer.status;
    default:
      return 502;
  }
}

/**
 * Whether the stub's OK gives a RESUME less input than its `inputAt` says
 * the session has: the records disagree, so the gateway must answer 409
 * `input_offset` and send no input.
 */
function inputBehind(call: ProxyCall | null, answer: StubAnswer): boolean {
  return call?.verb === "RESUME" && call.inputAt !== undefined && answer.kind === "ok" &&
    answer.in < call.inputAt;
}

/** Why a 2xx answer to a proxied request does not say what the stub said, or `null`. */
function successProblem(
  call: ProxyCall,
  answer: StubAnswer,
  response: Response,
  text: string,
): string | null {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text);
  } catch {
    return `status ${response.status} with a body that is not JSON: ${escapeInput(text, 200)}`;
  }
  if (response.headers.get("cache-control") !== "no-store") return "an API answer without no-store";
  if (call.verb === "NEW") {
    if (body.id !== STUB_ID || body.secret !== STUB_SECRET) return `201 with ${text}`;
    return response.headers.get("location") === `sessions/${STUB_ID}`
      ? null
      : "201 without Location";
  }
  if (call.verb === "CLOSE") {
    return body.closed === call.id ? null : `200 with ${escapeInput(text, 200)}`;
  }
  if (answer.kind !== "ok") return `200 for a ${answer.kind} answer`;
  if (typeof body.data !== "string") return `200 without data: ${escapeInput(text, 200)}`;
  const data = Uint8Array.fromBase64(body.data);
  // Exactly the pending bytes, or what came before the cut; a long-poll
  // that had none may also take the output that arrived after the reply.
  const sent = answer.cut === null ? answer.pending : answer.pending.subarray(0, answer.cut);
  const waits = call.wait > 0 && answer.state === "open" && answer.cut === null &&
    answer.pending.length === 0;
  const good = waits ? startsWith(answer.late, data) : equalBytes(data, sent);
  if (!good) return `data "${escapeInput(data, 100)}", expected "${escapeInput(sent, 100)}"`;
  if (body.ack !== call.ack + data.length) {
    return `ack ${body.ack} after ${data.length} bytes from ${call.ack}`;
  }
  if (body.in !== answer.in || body.state !== answer.state) {
    return `in ${body.in} and state ${body.state}, the proxy said ${answer.in} and ${answer.state}`;
  }
  if ((response.headers.get("x-accel-buffering") === "no") !== call.wait > 0) {
    return `X-Accel-Buffering ${response.headers.get("x-accel-buffering")} with wait ${call.wait}`;
  }
  return null;
}

/** Why the JSON error of a proxied request does not carry what the stub said, or `null`. */
function errorExtraProblem(
  call: ProxyCall | null,
  answer: StubAnswer,
  text: string,
): string | null {
  const extra = answer.kind === "line"
    ? answer.extra
    : inputBehind(call, answer) && answer.kind === "ok"
    ? { error: "input_offset", in: answer.in }
    : undefined;
  if (extra === undefined) return null;
  const body = JSON.parse(text) as Record<string, unknown>;
  for (const [name, value] of Object.entries(extra)) {
    if (body[name] !== value) return `${name} ${body[name]}, the proxy said ${value}`;
  }
  return null;
}

/**
 * Fuzzes the gateway handler with mutated requests, in front of a stub
 * proxy that answers each input's hello as the input draws: `OK` with
 * pending output (some cut short, some followed by more), `BYE`, every
 * `ERR`, lines that are no reply, a hang-up, silence. The handler must
 * send the proxy exactly the hello and input the request asks for, and
 * resolve to a Response (never reject) with the status the API table
 * gives, the proxy's output and offsets in a 200, JSON errors, and never
 * show a secret the request did not put in its URL, nor the stub's new
 * session secret outside a 201. WebSocket upgrades are skipped: they need
 * a real connection.
 *
 * @param count Number of inputs.
 * @param seed The seed.
 * @param options Where to start, to replay one input; checkpoints.
 * @returns The run.
 * @throws {FuzzError} When any input failed.
 */
export async function fuzzGateway(
  count: number,
  seed: number,
  options: FuzzOptions = {},
): Promise<FuzzReport> {
  await using stub = new StubProxy();
  const logs: string[] = [];
  const handler = gatewayHandler({
    proxy: { hostname: "127.0.0.1", port: stub.port },
    logger: new Logger({ level: "debug", sink: (line) => logs.push(line) }),
    assets: GATEWAY_ASSETS,
    limits: GATEWAY_LIMITS,
    proxyTimeout: STUB_TIMEOUT_MS,
    throttle: fuzzThrottle(),
  });
  return await runTarget({ target: "gateway", count, seed, ...options }, async (fuzzer) => {
    const spec = fuzzRequest(fuzzer, GATEWAY_CORPUS);
    const request = toRequest(spec, "http://gateway.test");
    const info = fuzzPeer(fuzzer);
    let answer: StubAnswer = { kind: "hangup" };
    const input = (): string =>
      `${describeRequest(spec, request)} (from ${info.remoteAddr.hostname}; the proxy: ${
        describeAnswer(answer)
      })`;
    if (request === null) return { input, skipped: true, problem: null };
    const hasBody = request.method !== "GET" && request.method !== "HEAD";
    const expected = expectedGatewayCall(request, hasBody ? spec.body : null);
    if (expected === "upgrade") {
      await discardBody(request);
      return { input, skipped: true, problem: null };
    }
    const call = typeof expected === "number"
      ? null
      : expected.verb === "NEW"
      ? withFrom(request, info)
      : expected;
    if (call !== null) answer = stubAnswer(fuzzer, call);
    stub.answer = answer;
    logs.length = 0;
    const answered = await answerOf(request, () => handler(request, info));
    // Every connection of this input ends before the next input starts.
    if ("problem" in answered) stub.dropAll();
    const visits = await within(stub.visits(), HANG_MS);
    if (visits === "hung") stub.dropAll();
    if ("problem" in answered) return { input, problem: answered.problem };
    if (visits === "hung") {
      return { input, problem: `the proxy connection was still open ${HANG_MS} ms later` };
    }
    if ("error" in visits) {
      return { input, problem: `the stub failed: ${describeError(visits.error)}` };
    }
    const { response, text } = answered;
    const status = call === null ? expected as number : answerStatus(call, answer);
    const problem = gatewayProblem(request, call, answer, status, response, text, logs) ??
      visitProblem(call, answer, visits.value);
    return { input, problem, outcome: String(response.status) };
  });
}

function describeAnswer(answer: StubAnswer): string {
  switch (answer.kind) {
    case "ok":
      return `OK in ${answer.in}, ${answer.pending.length} pending, ${answer.late.length} late, ` +
        `${answer.state}${answer.cut === null ? "" : `, cut after ${answer.cut}`}`;
    case "line":
      return `"${escapeInput(answer.line, 60)}"`;
    default:
      return answer.kind;
  }
}

function gatewayProblem(
  request: Request,
  call: ProxyCall | null,
  answer: StubAnswer,
  expected: number,
  response: Response,
  text: string,
  logs: string[],
): string | null {
  const status = response.status;
  if (!GATEWAY_STATUSES.has(status)) return `status ${status}: ${escapeInput(text, 200)}`;
  if (status !== expected) {
    return `status ${status}, expected ${expected}: ${escapeInput(text, 200)}`;
  }
  if (status >= 300) {
    const problem = jsonErrorProblem(response, text, "error") ??
      errorExtraProblem(call, answer, text);
    if (problem !== null) return problem;
  } else if (call !== null) {
    const problem = successProblem(call, answer, response, text);
    if (problem !== null) return problem;
  } else if (new URL(request.url).pathname === "/health") {
    if (text !== '{"status":"ok"}') return `/health answered ${escapeInput(text, 200)}`;
  } else {
    const asset = GATEWAY_ASSETS[new URL(request.url).pathname];
    const length = typeof asset?.body === "string"
      ? new TextEncoder().encode(asset.body).length
      : asset?.body.length;
    if (new TextEncoder().encode(text).length !== length) {
      return `status ${status} with a body of the wrong length`;
    }
  }
  if (status === 401 && !logs.some((line) => line.includes("web.auth_failed"))) {
    return "a wrong secret not logged as web.auth_failed";
  }
  // The secret the request presented, and the one the stub issued (due in a 201's body only).
  const secrets = call !== null && call.verb !== "NEW" ? [...FUZZ_SECRETS, call.secret] : undefined;
  return leakProblem(request, [text, ...headerTexts(response), ...logs], secrets) ??
    leakProblem(request, status === 201 ? [...headerTexts(response), ...logs] : [text, ...logs], [
      STUB_SECRET,
    ]);
}

/**
 * `NEW`, as the gateway names the browser (docs/gateway.md, "The player's
 * address"): `from=` its peer's address and port, or behind a proxy on its
 * own machine the last X-Forwarded-For entry, with no port; no `from=`
 * when that entry is not an IP address.
 */
function withFrom(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): ProxyCall {
  const { hostname, port } = info.remoteAddr;
  const loopback = hostname === "::1" || /^(::ffff:)?127\./.test(hostname);
  const forwarded = loopback
    ? request.headers.get("x-forwarded-for")?.split(",").at(-1)?.trim() || undefined
    : undefined;
  const host = forwarded ?? hostname;
  const v4 = /^\d{1,3}(\.\d{1,3}){3}$/.test(host) &&
    host.split(".").every((part) => Number(part) <= 255 && !/^0\d/.test(part));
  let v6 = false;
  if (!v4 && host.includes(":") && /^[0-9A-Fa-f:.]+$/.test(host)) {
    try {
      new URL(`http://[${host}]/`);
      v6 = true;
    } catch {
      // Not IPv6.
    }
  }
  if (!v4 && !v6) return { verb: "NEW" };
  const address = v6 ? `[${host}]` : host;
  return { verb: "NEW", from: forwarded === undefined ? `${address}:${port}` : address };
}
