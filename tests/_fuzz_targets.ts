/**
 * The fuzz targets: the hello parser (and `readHello` over a fake
 * connection), the admin API handler and the gateway handler, each fed
 * seeded inputs from `_fuzz.ts` and checked against what `PROTOCOL.md` and
 * the API tables promise. `fuzz_test.ts` runs them briefly in the regular
 * suite, `fuzz/fuzz.ts` at length.
 *
 * Every target runs all its inputs, then throws a {@linkcode FuzzError}
 * naming the seed, the failing inputs (escaped) and how to replay them.
 *
 * @module
 */

import { adminHandler } from "../lib/admin_api.ts";
import { readHello } from "../lib/handshake.ts";
import { describeError, Logger } from "../lib/log.ts";
import {
  formatHello,
  type Hello,
  MAX_HELLO_BYTES,
  parseHello,
  parseReply,
  ProtocolError,
} from "../lib/protocol.ts";
import type { StatusReport } from "../lib/status_report.ts";
import { type Asset, gatewayHandler, type GatewayLimits } from "../lib/web_gateway.ts";
import {
  ADMIN_CORPUS,
  escapeInput,
  fromLatin1,
  FUZZ_ID,
  FUZZ_ID_LONG,
  FUZZ_SECRETS,
  FUZZ_TOKEN,
  Fuzzer,
  type FuzzRequest,
  GATEWAY_CORPUS,
  HELLO_CORPUS_BYTES,
  toLatin1,
  toRequest,
} from "./_fuzz.ts";

/** One input that broke a promise. */
export interface FuzzFailure {
  /** Its number in the run: `--first=index --count=1` replays it alone. */
  index: number;
  /** The input, escaped to printable ASCII. */
  input: string;
  /** What was observed, and what was expected. */
  problem: string;
}

/** What a run did. */
export interface FuzzReport {
  /** `hello`, `admin` or `gateway`. */
  target: string;
  /** The run's seed. */
  seed: number;
  /** Number of the first input. */
  first: number;
  /** Inputs generated, skipped ones included. */
  inputs: number;
  /** Inputs the Fetch API refused to build, or WebSocket upgrades: not fed to the handler. */
  skipped: number;
  /** Inputs that failed. */
  failures: number;
  /** The first few failures. */
  examples: FuzzFailure[];
  /** How many inputs ended which way (a verb or an error code, a status), to show what was reached. */
  outcomes: Record<string, number>;
  /** Time the run took, in ms. */
  elapsedMs: number;
}

/** Options of a fuzz target. */
export interface FuzzOptions {
  /**
   * Number of the first input, to replay one input of a run alone.
   * @default {0}
   */
  first?: number;
}

/** Thrown at the end of a run with failures; the message says how to replay them. */
export class FuzzError extends Error {
  /** The run. */
  readonly report: FuzzReport;

  /** @param report A run with failures. */
  constructor(report: FuzzReport) {
    super(describeFailures(report));
    this.name = "FuzzError";
    this.report = report;
  }
}

/**
 * Describes a run's failures: seed, inputs, problems, replay commands.
 *
 * @param report The run.
 * @returns Several lines.
 */
export function describeFailures(report: FuzzReport): string {
  const lines = [
    `${report.target}: ${report.failures} of ${report.inputs} inputs failed (seed ${report.seed})`,
  ];
  for (const failure of report.examples) {
    lines.push(
      `  input #${failure.index}: ${failure.problem}`,
      `    input: "${failure.input}"`,
      `    replay: deno task fuzz --only=${report.target} --seed=${report.seed} ` +
        `--first=${failure.index} --count=1`,
    );
  }
  if (report.failures > report.examples.length) {
    lines.push(`  ... and ${report.failures - report.examples.length} more`);
  }
  return lines.join("\n");
}

/** What checking one input found. */
interface Verdict {
  /** The input, escaped: only called on failure, since escaping long inputs takes time. */
  input: () => string;
  /** Not fed to the target. */
  skipped?: boolean;
  /** What went wrong, or `null`. */
  problem: string | null;
  /** How the input ended, for {@linkcode FuzzReport.outcomes}. */
  outcome?: string;
}

const MAX_EXAMPLES = 5;

async function run(
  target: string,
  count: number,
  seed: number,
  options: FuzzOptions,
  check: (fuzzer: Fuzzer) => Verdict | Promise<Verdict>,
): Promise<FuzzReport> {
  const first = options.first ?? 0;
  const started = performance.now();
  const report: FuzzReport = {
    target,
    seed,
    first,
    inputs: 0,
    skipped: 0,
    failures: 0,
    examples: [],
    outcomes: {},
    elapsedMs: 0,
  };
  for (let index = first; index < first + count; index++) {
    let verdict: Verdict;
    try {
      verdict = await check(Fuzzer.forInput(seed, index));
    } catch (error) {
      verdict = {
        input: () => "(see the replay)",
        problem: `the check threw ${describeError(error)}`,
      };
    }
    report.inputs++;
    if (verdict.skipped) report.skipped++;
    const outcome = verdict.skipped ? "skipped" : verdict.outcome;
    if (outcome !== undefined) report.outcomes[outcome] = (report.outcomes[outcome] ?? 0) + 1;
    if (verdict.problem !== null) {
      report.failures++;
      if (report.examples.length < MAX_EXAMPLES) {
        report.examples.push({ index, input: verdict.input(), problem: verdict.problem });
      }
    }
  }
  report.elapsedMs = performance.now() - started;
  if (report.failures > 0) throw new FuzzError(report);
  return report;
}

/** Settles with `promise`'s outcome, or `"hung"` after `ms`; never leaves a timer behind. */
async function within<T>(
  promise: Promise<T>,
  ms: number,
): Promise<{ value: T } | { error: unknown } | "hung"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<"hung">((resolve) => {
    timer = setTimeout(() => resolve("hung"), ms);
  });
  try {
    return await Promise.race([
      promise.then((value) => ({ value }), (error: unknown) => ({ error })),
      hung,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------
// Hellos

const ID = /^[A-Za-z0-9_-]{1,64}$/;
const SECRET = /^[A-Za-z0-9_-]{22,64}$/;
const LF = 0x0a;
/** A parse slower than this is a hang (catastrophic backtracking, a loop). */
const PARSE_MS = 1000;
/** What `readHello` is given: far more than a fake connection that answers at once needs. */
const READ_TIMEOUT_MS = 1000;

/** The hello line: random bytes, random text, or (mostly) a mutated valid hello. */
function helloLine(fuzzer: Fuzzer): Uint8Array {
  const kind = fuzzer.next();
  if (kind < 0.1) return fuzzer.bytes(fuzzer.size(600));
  if (kind < 0.2) return toLatin1(fuzzer.printable(fuzzer.size(600)));
  return fuzzer.mutate(fuzzer.pick(HELLO_CORPUS_BYTES), HELLO_CORPUS_BYTES);
}

/** What a client sends: the line, usually its LF, and often input right after it. */
function helloStream(fuzzer: Fuzzer, line: Uint8Array): Uint8Array {
  const lf = fuzzer.chance(0.85) ? Uint8Array.of(LF) : new Uint8Array(0);
  const after = !fuzzer.chance(0.5)
    ? new Uint8Array(0)
    : fuzzer.chance(0.5)
    ? fuzzer.bytes(fuzzer.size(100))
    : Uint8Array.of(...fuzzer.pick(HELLO_CORPUS_BYTES), LF);
  const stream = new Uint8Array(line.length + lf.length + after.length);
  stream.set(line);
  stream.set(lf, line.length);
  stream.set(after, line.length + lf.length);
  return stream;
}

/** Why `hello` is not the well-formed hello `line` says, or `null`. */
function helloProblem(hello: Hello, line: string): string | null {
  const text = line.endsWith("\r") ? line.slice(0, -1) : line;
  const fields = text.split(" ");
  const keys = Object.keys(hello).sort().join(",");
  switch (hello.verb) {
    case "NEW":
      if (text !== "NEW" || keys !== "verb") return `accepted as NEW: ${JSON.stringify(hello)}`;
      return null;
    case "CLOSE":
      if (keys !== "id,secret,verb" || fields.length !== 3) return `odd CLOSE ${keys}`;
      break;
    case "RESUME": {
      const expected = hello.ack === undefined ? "id,secret,verb" : "ack,id,secret,verb";
      if (keys !== expected || fields.length !== (hello.ack === undefined ? 3 : 4)) {
        return `odd RESUME ${keys}`;
      }
      if (hello.ack !== undefined) {
        const ack = fields[3] ?? "";
        if (!Number.isSafeInteger(hello.ack) || hello.ack < 0) return `ack ${hello.ack}`;
        if (!/^\d+$/.test(ack) || BigInt(ack) !== BigInt(hello.ack)) {
          return `ack "${ack}" read as ${hello.ack}`;
        }
      }
      break;
    }
    default:
      return `unknown verb in ${JSON.stringify(hello)}`;
  }
  if (fields[0] !== hello.verb || fields[1] !== hello.id || fields[2] !== hello.secret) {
    return `fields differ from the line: ${JSON.stringify(hello)}`;
  }
  if (!ID.test(hello.id)) return `malformed id accepted: "${hello.id}"`;
  if (!SECRET.test(hello.secret)) return "malformed secret accepted";
  if (JSON.stringify(parseHello(formatHello(hello).slice(0, -1))) !== JSON.stringify(hello)) {
    return `formatHello does not read back: ${JSON.stringify(formatHello(hello))}`;
  }
  return null;
}

type Outcome = { hello: Hello } | { error: string };

/**
 * The hello grammar of PROTOCOL.md, written out: a line it matches must be
 * accepted. `<ack>` is bounded as lib/protocol.ts bounds it (16 digits, at
 * most 2^53 - 1), which the protocol leaves open.
 */
const VALID_HELLO =
  /^(?:NEW|RESUME [A-Za-z0-9_-]{1,64} [A-Za-z0-9_-]{22,64}(?: (\d{1,16}))?|CLOSE [A-Za-z0-9_-]{1,64} [A-Za-z0-9_-]{22,64})\r?$/;

function validHello(line: string): boolean {
  const match = VALID_HELLO.exec(line);
  return match !== null && (match[1] === undefined || Number(match[1]) <= Number.MAX_SAFE_INTEGER);
}

/** parseHello's outcome, or why it broke its contract. */
function parseOutcome(line: string): Outcome | { problem: string } {
  try {
    const hello = parseHello(line);
    const problem = helloProblem(hello, line);
    return problem === null ? { hello } : { problem: `parseHello: ${problem}` };
  } catch (error) {
    if (!(error instanceof ProtocolError) || error.code !== "bad-request") {
      return { problem: `parseHello threw ${describeError(error)}, not ProtocolError bad-request` };
    }
    if (validHello(line)) return { problem: `parseHello rejected a valid hello: ${error.message}` };
    return { error: error.message };
  }
}

/** Why parseReply broke its contract on `line`, or `null`. */
function replyProblem(line: string): string | null {
  try {
    const reply = parseReply(line);
    if ("bye" in reply) return ID.test(reply.bye) ? null : `BYE with a bad id "${reply.bye}"`;
    const offsets = [reply.in, reply.from, reply.pending];
    if (
      !ID.test(reply.id) || !SECRET.test(reply.secret) ||
      !offsets.every((n) => Number.isSafeInteger(n) && n >= 0) ||
      (reply.state !== "open" && reply.state !== "closed")
    ) {
      return `parseReply accepted a malformed OK: ${JSON.stringify(reply)}`;
    }
    return null;
  } catch (error) {
    if (error instanceof ProtocolError || error instanceof SyntaxError) return null;
    return `parseReply threw ${describeError(error)}, not ProtocolError or SyntaxError`;
  }
}

/**
 * Just enough of a `Deno.Conn` for `readHello`: `read` hands out a fixed
 * input in pieces of the sizes `nextSize` draws, then EOF.
 */
class FakeConn {
  readonly #data: Uint8Array;
  readonly #nextSize: () => number;
  #at = 0;

  constructor(data: Uint8Array, nextSize: () => number) {
    this.#data = data;
    this.#nextSize = nextSize;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#at >= this.#data.length) return Promise.resolve(null);
    const size = Math.min(this.#nextSize(), buffer.length);
    const piece = this.#data.subarray(this.#at, this.#at + size);
    buffer.set(piece);
    this.#at += piece.length;
    return Promise.resolve(piece.length);
  }

  close(): void {}

  /** Where the first unread byte is. */
  get position(): number {
    return this.#at;
  }
}

/** Random read sizes: all at once, byte by byte, or pieces of random lengths. */
function readSizes(fuzzer: Fuzzer): () => number {
  switch (fuzzer.int(4)) {
    case 0:
      return () => Infinity;
    case 1:
      return () => 1;
    case 2:
      return () => 1 + fuzzer.size(16);
    default:
      return () => 1 + fuzzer.size(600);
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** What `readHello` must do with `stream`: what `parseHello` does with its line, or fail. */
function expectedRead(stream: Uint8Array): Outcome | { problem: string } | "peer gone" {
  const lf = stream.indexOf(LF);
  // The line within 512 bytes (LF included) is parsed...
  if (lf >= 0 && lf < MAX_HELLO_BYTES) return parseOutcome(fromLatin1(stream.subarray(0, lf)));
  // ...512 bytes without a LF are an overlong hello, fewer then EOF a peer gone.
  return stream.length >= MAX_HELLO_BYTES ? { error: "overlong" } : "peer gone";
}

/** A word for an outcome. */
function outcomeName(outcome: Outcome | { problem: string } | "peer gone"): string {
  if (typeof outcome === "string") return outcome;
  if ("hello" in outcome) return outcome.hello.verb;
  if ("problem" in outcome) return "problem";
  return outcome.error === "overlong" ? "overlong" : "bad-request";
}

/** Why readHello broke its contract on `stream`, or `null`. */
async function readHelloProblem(
  fuzzer: Fuzzer,
  stream: Uint8Array,
  expected: Outcome | { problem: string } | "peer gone",
): Promise<string | null> {
  const conn = new FakeConn(stream, readSizes(fuzzer));
  const lf = stream.indexOf(LF);
  const got = await within(readHello(conn as unknown as Deno.Conn, READ_TIMEOUT_MS), 2000);
  if (got === "hung") return "readHello hung";
  if ("value" in got) {
    const { hello, leftover } = got.value;
    if (typeof expected !== "object" || !("hello" in expected)) {
      return `readHello resolved ${JSON.stringify(hello)}; expected ${JSON.stringify(expected)}`;
    }
    if (JSON.stringify(hello) !== JSON.stringify(expected.hello)) {
      return `readHello read ${JSON.stringify(hello)}, parseHello ${
        JSON.stringify(expected.hello)
      }`;
    }
    // The leftover and what is still unread must be exactly what followed the LF.
    if (
      conn.position - leftover.length !== lf + 1 ||
      !equalBytes(leftover, stream.subarray(lf + 1, conn.position))
    ) {
      return `leftover "${escapeInput(leftover)}" is not what followed the LF ` +
        `(${conn.position - lf - 1} bytes read after it)`;
    }
    return null;
  }
  const error = got.error;
  if (error instanceof ProtocolError) {
    if (error.code === "bad-request" && typeof expected === "object" && "error" in expected) {
      return null;
    }
    return `readHello rejected with ERR ${error.code} ${error.message}; ` +
      `expected ${JSON.stringify(expected)}`;
  }
  if (error instanceof Error && error.message === "closed before finishing its hello") {
    return expected === "peer gone"
      ? null
      : `readHello said peer gone; expected ${JSON.stringify(expected)}`;
  }
  return `readHello rejected with ${describeError(error)}`;
}

/**
 * Fuzzes the hello parser: `parseHello` (and `parseReply`) on random and
 * mutated lines must return a well-formed result or throw the documented
 * error, never anything else, never hang; `readHello` over a fake
 * connection that delivers the same bytes in random pieces must agree with
 * `parseHello` and keep exactly the bytes after the first LF.
 *
 * @param count Number of inputs.
 * @param seed The seed.
 * @param options Where to start, to replay one input.
 * @returns The run.
 * @throws {FuzzError} When any input failed.
 */
export function fuzzHello(
  count: number,
  seed: number,
  options: FuzzOptions = {},
): Promise<FuzzReport> {
  return run("hello", count, seed, options, async (fuzzer) => {
    const line = helloLine(fuzzer);
    const stream = helloStream(fuzzer, line);
    const input = (): string => escapeInput(stream);
    const text = fromLatin1(line);
    const started = performance.now();
    const parsed = parseOutcome(text);
    const ms = performance.now() - started;
    if ("problem" in parsed) return { input, problem: parsed.problem };
    if (ms > PARSE_MS) return { input, problem: `parseHello took ${Math.round(ms)} ms` };
    const reply = replyProblem(text);
    if (reply !== null) return { input, problem: reply };
    const expected = expectedRead(stream);
    const problem = await readHelloProblem(fuzzer, stream, expected);
    return { input, problem, outcome: outcomeName(expected) };
  });
}

// ---------------------------------------------------------------------------
// HTTP handlers

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

/** Which secret `texts` show that the request did not put in an echoed part, or `null`. */
function leakedSecret(request: Request, texts: string[]): string | null {
  const echoed = echoable(request);
  for (const secret of FUZZ_SECRETS) {
    if (echoed.includes(secret)) continue;
    if (texts.some((text) => text.includes(secret))) return secret;
  }
  return null;
}

function headerTexts(response: Response): string[] {
  return [...response.headers].map(([name, value]) => `${name}: ${value}`);
}

/** Why a non-2xx response is not the promised JSON error, or `null`. */
function jsonErrorProblem(response: Response, text: string, shape: "error" | "any"): string | null {
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

function describeRequest(spec: FuzzRequest, request: Request | null): string {
  const headers = spec.headers.map(([name, value]) => `${name}: ${value}`).join("\r\n");
  const body = spec.body && request?.method !== "GET" && request?.method !== "HEAD"
    ? fromLatin1(spec.body)
    : "";
  return escapeInput(`${spec.method} ${spec.path}\r\n${headers}\r\n\r\n${body}`, 1200);
}

/** A request from the corpus, mostly mutated, sometimes with a random method or path. */
function fuzzRequest(fuzzer: Fuzzer, corpus: readonly FuzzRequest[]): FuzzRequest {
  const base = fuzzer.pick(corpus);
  if (fuzzer.chance(0.05)) return base;
  const spec = fuzzer.mutateRequest(base, corpus);
  if (fuzzer.chance(0.03)) spec.path = "/" + fuzzer.printable(fuzzer.size(80));
  if (fuzzer.chance(0.02)) spec.method = fuzzer.printable(1 + fuzzer.size(10));
  return spec;
}

async function discardBody(request: Request): Promise<void> {
  if (request.body && !request.body.locked) await request.body.cancel();
}

// Admin API

const ADMIN_STATUSES = new Set([200, 400, 401, 404, 405, 503]);
const ADMIN_SESSIONS = new Set([FUZZ_ID, FUZZ_ID_LONG]);

function fakeReport(stopping: boolean): StatusReport {
  const session = (id: string): StatusReport["sessions"][number] => ({
    id,
    state: "detached",
    client: null,
    mode: null,
    created: "2026-01-01T00:00:00.000Z",
    lastAttached: "2026-01-01T00:00:00.000Z",
    idleSeconds: 12.5,
    bytesIn: 10,
    bytesOut: 20,
    buffered: 20,
    ackFloor: 0,
    sent: 20,
    destination: "open",
  });
  return {
    version: "0.0.0-fuzz",
    started: "2026-01-01T00:00:00.000Z",
    uptimeSeconds: 60,
    status: stopping ? "stopping" : "serving",
    proxy: "127.0.0.1:1",
    admin: "127.0.0.1:2",
    destination: "127.0.0.1:3",
    limits: {
      bufferBytes: 4096,
      idleTimeoutMs: 1000,
      handshakeTimeoutMs: 1000,
      connectTimeoutMs: 1000,
      maxSessions: 10,
    },
    totals: {
      sessionsOpen: 2,
      sessionsAttached: 0,
      sessionsDetached: 2,
      sessionsClosed: 0,
      connectionsOpen: 0,
      connectionsAccepted: 2,
      bytesIn: 20,
      bytesOut: 40,
      bufferedBytes: 40,
      sessionsCreated: 2,
      sessionsEnded: 0,
      sessionsExpired: 0,
      gaps: 0,
      authFailures: 0,
    },
    sessions: [...ADMIN_SESSIONS].map(session),
  };
}

/** The status the admin API's route table (lib/admin_api.ts) gives `request`. */
function expectedAdminStatus(request: Request, token: string | null, stopping: boolean): number {
  if (token !== null) {
    const header = request.headers.get("authorization") ?? "";
    if (header.slice(0, 7).toLowerCase() !== "bearer " || header.slice(7) !== token) return 401;
  }
  const path = new URL(request.url).pathname;
  const method = request.method;
  if (path.startsWith("/sessions/") && !path.slice(10).includes("/")) {
    if (method !== "DELETE") return 405;
    let id: string;
    try {
      id = decodeURIComponent(path.slice(10));
    } catch {
      return 400;
    }
    if (!ID.test(id)) return 400;
    return ADMIN_SESSIONS.has(id) ? 200 : 404;
  }
  if (path !== "/status" && path !== "/metrics" && path !== "/health") return 404;
  if (method !== "GET" && method !== "HEAD") return 405;
  return path === "/health" && stopping ? 503 : 200;
}

/**
 * Fuzzes the admin API handler with mutated requests, a token half the
 * time and a server stopping a fifth of the time: it must return a
 * Response (never throw) with the status the route table gives, a JSON
 * body for every non-2xx, and never show the token or a session secret.
 *
 * @param count Number of inputs.
 * @param seed The seed.
 * @param options Where to start, to replay one input.
 * @returns The run.
 * @throws {FuzzError} When any input failed.
 */
export function fuzzAdmin(
  count: number,
  seed: number,
  options: FuzzOptions = {},
): Promise<FuzzReport> {
  return run("admin", count, seed, options, async (fuzzer) => {
    const spec = fuzzRequest(fuzzer, ADMIN_CORPUS);
    const token = fuzzer.chance(0.5) ? FUZZ_TOKEN : null;
    const stopping = fuzzer.chance(0.2);
    const request = toRequest(spec, "http://admin.test");
    const input = (): string =>
      `${describeRequest(spec, request)} (token ${token ? "set" : "none"}, ${
        stopping ? "stopping" : "serving"
      })`;
    if (request === null) return { input, skipped: true, problem: null };
    const logs: string[] = [];
    const handler = adminHandler({
      token,
      logger: new Logger({ level: "debug", sink: (line) => logs.push(line) }),
      backend: {
        report: () => fakeReport(stopping),
        closeSession: (id) => ADMIN_SESSIONS.has(id),
        stopping: () => stopping,
      },
    });
    let response: unknown;
    try {
      response = handler(request);
    } catch (error) {
      await discardBody(request);
      return { input, problem: `the handler threw ${describeError(error)}` };
    }
    await discardBody(request);
    if (!(response instanceof Response)) {
      return { input, problem: `the handler returned ${String(response)}, not a Response` };
    }
    const text = await response.text();
    const problem = adminProblem(request, response, text, logs, token, stopping);
    return { input, problem, outcome: String(response.status) };
  });
}

function adminProblem(
  request: Request,
  response: Response,
  text: string,
  logs: string[],
  token: string | null,
  stopping: boolean,
): string | null {
  const status = response.status;
  if (!ADMIN_STATUSES.has(status)) return `status ${status}: ${escapeInput(text, 200)}`;
  const expected = expectedAdminStatus(request, token, stopping);
  if (status !== expected) {
    return `status ${status}, expected ${expected}: ${escapeInput(text, 200)}`;
  }
  if (status === 401 && !response.headers.has("www-authenticate")) {
    return "401 without WWW-Authenticate";
  }
  if (status >= 300) {
    const problem = jsonErrorProblem(response, text, status === 503 ? "any" : "error");
    if (problem !== null) return problem;
  }
  const leaked = leakedSecret(request, [text, ...headerTexts(response), ...logs]);
  return leaked === null ? null : `a secret shows in the response or log: "${leaked}"`;
}

// Gateway

const GATEWAY_STATUSES = new Set([200, 201, 400, 401, 404, 405, 409, 413, 502, 503]);
const GATEWAY_LIMITS: GatewayLimits = { maxBody: 4096, maxInput: 1024, maxWait: 50 };
const GATEWAY_ASSETS: Record<string, Asset> = {
  "/": { type: "text/html; charset=utf-8", body: "<!doctype html><title>fuzz</title>\n" },
  "/assets/app.js": { type: "text/javascript", body: new TextEncoder().encode("void 0;\n") },
};
const SESSION_ROUTE = /^\/api\/sessions\/([^/]+)(\/poll|\/ws)?$/;

/**
 * The status the gateway's API table (lib/web_gateway.ts, README "The API")
 * gives `request`, with the proxy down: whatever would reach it is 502.
 * `"upgrade"` for a WebSocket upgrade, which needs a real connection.
 */
function expectedGatewayStatus(request: Request, body: Uint8Array | null): number | "upgrade" {
  const path = new URL(request.url).pathname;
  const method = request.method;
  if (path === "/api/sessions") return method === "POST" ? 502 : 405;
  const route = SESSION_ROUTE.exec(path);
  if (route) {
    if (!ID.test(route[1] ?? "")) return 400;
    if (route[2] === "/ws") {
      if (method !== "GET") return 405;
      return request.headers.get("upgrade")?.toLowerCase() === "websocket" ? "upgrade" : 400;
    }
    const kind = route[2] === "/poll" ? "POST" : "DELETE";
    if (method !== kind) return 405;
    return expectedBodyStatus(request, body ?? new Uint8Array(0), kind === "POST");
  }
  const asset = Object.hasOwn(GATEWAY_ASSETS, path);
  if (asset) return method === "GET" || method === "HEAD" ? 200 : 405;
  return 404;
}

/** 413 for a body over the limit, 400 for a bad one, 502 for a good one (the proxy is down). */
function expectedBodyStatus(request: Request, bytes: Uint8Array, poll: boolean): number {
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
  if (typeof fields.secret !== "string" || !SECRET.test(fields.secret)) return 400;
  if (!poll) return 502;
  const offset = (value: unknown): boolean =>
    typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
  if (!offset(fields.ack)) return 400;
  if (fields.inputAt !== undefined && !offset(fields.inputAt)) return 400;
  if (fields.input !== undefined && fields.input !== "") {
    if (typeof fields.input !== "string") return 400;
    let input: Uint8Array;
    try {
      input = Uint8Array.fromBase64(fields.input);
    } catch {
      return 400;
    }
    if (input.length > GATEWAY_LIMITS.maxInput) return 413;
  }
  if (fields.wait !== undefined && !(typeof fields.wait === "number" && fields.wait >= 0)) {
    return 400;
  }
  return 502;
}

/** A port nothing listens on: taken from the system, then given back. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/**
 * Fuzzes the gateway handler with mutated requests, in front of a proxy
 * port that refuses connections: it must resolve to a Response (never
 * reject) with the status the API table gives, JSON errors, and never show
 * a session secret the request did not put in its URL. WebSocket upgrades
 * are skipped: they need a real connection.
 *
 * @param count Number of inputs.
 * @param seed The seed.
 * @param options Where to start, to replay one input.
 * @returns The run.
 * @throws {FuzzError} When any input failed.
 */
export function fuzzGateway(
  count: number,
  seed: number,
  options: FuzzOptions = {},
): Promise<FuzzReport> {
  const logs: string[] = [];
  const handler = gatewayHandler({
    proxy: { hostname: "127.0.0.1", port: closedPort() },
    logger: new Logger({ level: "debug", sink: (line) => logs.push(line) }),
    assets: GATEWAY_ASSETS,
    limits: GATEWAY_LIMITS,
    proxyTimeout: 1000,
  });
  return run("gateway", count, seed, options, async (fuzzer) => {
    const spec = fuzzRequest(fuzzer, GATEWAY_CORPUS);
    const request = toRequest(spec, "http://gateway.test");
    const input = (): string => describeRequest(spec, request);
    if (request === null) return { input, skipped: true, problem: null };
    const hasBody = request.method !== "GET" && request.method !== "HEAD";
    const expected = expectedGatewayStatus(request, hasBody ? spec.body : null);
    if (expected === "upgrade") {
      await discardBody(request);
      return { input, skipped: true, problem: null };
    }
    logs.length = 0;
    const got = await within(handler(request), 5000);
    await discardBody(request);
    if (got === "hung") return { input, problem: "no response within 5 s" };
    if ("error" in got) {
      return { input, problem: `the handler rejected: ${describeError(got.error)}` };
    }
    const response = got.value;
    const text = await response.text();
    const status = response.status;
    if (!GATEWAY_STATUSES.has(status)) {
      return { input, problem: `status ${status}: ${escapeInput(text, 200)}` };
    }
    if (status !== expected) {
      return {
        input,
        problem: `status ${status}, expected ${expected}: ${escapeInput(text, 200)}`,
      };
    }
    if (status >= 300) {
      const problem = jsonErrorProblem(response, text, "error");
      if (problem !== null) return { input, problem };
    } else {
      const asset = GATEWAY_ASSETS[new URL(request.url).pathname];
      const length = typeof asset?.body === "string"
        ? new TextEncoder().encode(asset.body).length
        : asset?.body.length;
      if (new TextEncoder().encode(text).length !== length) {
        return { input, problem: `status ${status} with a body of the wrong length` };
      }
    }
    const leaked = leakedSecret(request, [text, ...headerTexts(response), ...logs]);
    return {
      input,
      problem: leaked === null ? null : `a secret shows in the response or log: "${leaked}"`,
      outcome: String(status),
    };
  });
}
