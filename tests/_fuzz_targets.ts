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

import { adminHandler } from "../lib/admin/api.ts";
import { readHello } from "../lib/proxy/handshake.ts";
import { closeQuietly, writeAll } from "../lib/_io.ts";
import { describeError, Logger } from "../lib/log.ts";
import {
  formatHello,
  type Hello,
  MAX_HELLO_BYTES,
  parseHello,
  parseReply,
  ProtocolError,
} from "../lib/protocol.ts";
import type { StatusReport } from "../lib/proxy/status_report.ts";
import { AuthThrottle } from "../lib/throttle.ts";
import { type Asset, gatewayHandler, type GatewayLimits } from "../lib/gateway/mod.ts";
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
  /**
   * Called after every `every` inputs with how many are done, to sample
   * the heap and open files (see {@linkcode LeakWatch}).
   * @default {none}
   */
  checkpoint?: { every: number; at: (done: number) => void };
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
    if (options.checkpoint && report.inputs % options.checkpoint.every === 0) {
      options.checkpoint.at(report.inputs);
    }
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
export async function within<T>(
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

/**
 * Open files (sockets included) of this process, from `/proc/self/fd` or
 * `/dev/fd`; `null` where neither can be listed. (`Deno.resources()` is
 * gone in Deno 2.)
 *
 * @returns The count, the directory listing's own descriptor included.
 */
export function openFiles(): number | null {
  for (const dir of ["/proc/self/fd", "/dev/fd"]) {
    try {
      let count = 0;
      for (const _ of Deno.readDirSync(dir)) count++;
      return count;
    } catch {
      // Not on this system: try the next.
    }
  }
  return null;
}

/** What a {@linkcode LeakWatch} saw. */
export interface LeakVerdict {
  /** One line: the heap and the open files after warm-up and at the end. */
  summary: string;
  /** What leaked, or `null`. */
  problem: string | null;
}

/**
 * Watches one target's long run for leaks. Pass it as
 * {@linkcode FuzzOptions.checkpoint}: every `every` inputs it collects
 * garbage, then samples the JS heap and counts open files. After the run
 * (and its target's clean-up), {@linkcode LeakWatch.verdict} fails if the
 * heap at the end is more than `bound` bytes above the heap at the end of
 * the warm-up (the first fifth of the run), or if more files are open
 * than then. The baselines are taken after warm-up because the runtime
 * itself opens a thread and a socket pair once it has run for a while.
 * The memory behind array buffers is left out: it is freed in the
 * background after a collection, so samples of it vary by megabytes; a
 * leaked buffer still leaks its object on the heap. Needs
 * `--v8-flags=--expose-gc`.
 *
 * @example
 * ```ts ignore
 * const watch = new LeakWatch(100_000);
 * await fuzzAdmin(100_000, 1, { checkpoint: watch });
 * console.log(watch.verdict().summary);
 * ```
 */
export class LeakWatch {
  /** Inputs between samples. */
  readonly every: number;
  readonly #warmUp: number;
  readonly #bound: number;
  readonly #gc: () => void;
  #baseline: { done: number; heap: number; files: number | null } | null = null;
  #last = { done: 0, heap: 0, files: null as number | null };

  /**
   * @param count The inputs the run will have.
   * @param options `bound`: the most the heap may grow after warm-up, in
   * bytes (default 2 MiB). `every`: inputs between samples (default a
   * fiftieth of the run, at least 500).
   * @throws {TypeError} Without `--v8-flags=--expose-gc`.
   */
  constructor(count: number, options: { bound?: number; every?: number } = {}) {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (typeof gc !== "function") {
      throw new TypeError("Cannot watch for leaks: run with --v8-flags=--expose-gc");
    }
    this.#gc = gc;
    this.every = options.every ?? Math.max(500, Math.ceil(count / 50));
    this.#warmUp = Math.floor(count / 5);
    this.#bound = options.bound ?? 2 * 1024 * 1024;
  }

  /**
   * Samples the heap and the open files.
   *
   * @param done Inputs done so far.
   */
  at(done: number): void {
    if (done < this.#warmUp) return;
    this.#gc();
    this.#last = { done, heap: Deno.memoryUsage().heapUsed, files: openFiles() };
    this.#baseline ??= this.#last;
  }

  /**
   * Judges the run, once it and its target's clean-up are over.
   *
   * @returns The summary, and what leaked.
   */
  verdict(): LeakVerdict {
    const baseline = this.#baseline;
    const last = this.#last;
    if (baseline === null || last.done === baseline.done) {
      return { summary: "not judged (too few inputs after a warm-up)", problem: null };
    }
    const problems: string[] = [];
    const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
    const growth = last.heap - baseline.heap;
    const perInput = growth / (last.done - baseline.done);
    const parts = [
      `heap ${mib(baseline.heap)} after warm-up, ${mib(last.heap)} at the end ` +
      `(${perInput.toFixed(1)} bytes an input; bound +${mib(this.#bound)})`,
    ];
    if (growth > this.#bound) {
      problems.push(`the heap grew by ${mib(growth)} after warm-up, over the bound`);
    }
    const after = openFiles();
    if (baseline.files === null || last.files === null || after === null) {
      parts.push("open files not counted");
    } else {
      parts.push(
        `open files ${baseline.files} after warm-up, ${last.files} at the end, ` +
          `${after} after clean-up`,
      );
      const most = Math.max(last.files, after);
      if (most > baseline.files) {
        problems.push(`${most - baseline.files} more files open than after warm-up`);
      }
    }
    return { summary: parts.join("; "), problem: problems.length > 0 ? problems.join("; ") : null };
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

/** Which of `secrets` `texts` show that the request did not put in an echoed part, or `null`. */
function leakedSecret(
  request: Request,
  texts: string[],
  secrets: readonly string[] = FUZZ_SECRETS,
): string | null {
  const echoed = echoable(request);
  for (const secret of secrets) {
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

/** A response, or reading its body, slower than this is a hang. */
const HANG_MS = 5000;

/**
 * A throttle that counts wrong secrets per address but never delays, so
 * that thousands of 401s do not slow a run down, while its memory (bounded
 * by `capacity`, which a run fills many times over) is still exercised.
 */
function fuzzThrottle(): AuthThrottle {
  return new AuthThrottle({ step: 0, capacity: 500 });
}

/**
 * The peer a request comes from: loopback (as from nginx, so that the
 * gateway believes `X-Forwarded-For`) or one of many addresses.
 */
function fuzzPeer(fuzzer: Fuzzer): Deno.ServeHandlerInfo<Deno.NetAddr> {
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
      sessionsDestinationClosed: 0,
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

/** The status the admin API's route table (lib/admin/api.ts) gives `request`. */
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
  // One handler per configuration for the whole run, so that state kept inside one builds up.
  const logs: string[] = [];
  let stopping = false;
  const shared = {
    logger: new Logger({ level: "debug", sink: (line) => logs.push(line) }),
    throttle: fuzzThrottle(),
    backend: {
      report: () => fakeReport(stopping),
      closeSession: (id: string) => ADMIN_SESSIONS.has(id),
      stopping: () => stopping,
    },
  };
  const withToken = adminHandler({ ...shared, token: FUZZ_TOKEN });
  const withoutToken = adminHandler({ ...shared, token: null });
  return run("admin", count, seed, options, async (fuzzer) => {
    const spec = fuzzRequest(fuzzer, ADMIN_CORPUS);
    const token = fuzzer.chance(0.5) ? FUZZ_TOKEN : null;
    stopping = fuzzer.chance(0.2);
    const info = fuzzPeer(fuzzer);
    const request = toRequest(spec, "http://admin.test");
    const input = (): string =>
      `${describeRequest(spec, request)} (token ${token ? "set" : "none"}, ${
        stopping ? "stopping" : "serving"
      }, from ${info.remoteAddr.hostname})`;
    if (request === null) return { input, skipped: true, problem: null };
    logs.length = 0;
    const handler = token === null ? withoutToken : withToken;
    let answer: unknown;
    try {
      answer = handler(request, info);
    } catch (error) {
      await discardBody(request);
      return { input, problem: `the handler threw ${describeError(error)}` };
    }
    const got = await within(Promise.resolve(answer), HANG_MS);
    await discardBody(request);
    if (got === "hung") return { input, problem: `no response within ${HANG_MS} ms` };
    if ("error" in got) {
      return { input, problem: `the handler rejected: ${describeError(got.error)}` };
    }
    const response = got.value;
    if (!(response instanceof Response)) {
      return { input, problem: `the handler returned ${String(response)}, not a Response` };
    }
    const read = await within(response.text(), HANG_MS);
    if (read === "hung") return { input, problem: `the body did not end within ${HANG_MS} ms` };
    if ("error" in read) return { input, problem: `the body failed: ${describeError(read.error)}` };
    const problem = adminProblem(request, response, read.value, logs, token, stopping);
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
/** What the stub proxy names a new session: the secret belongs in a 201's body, nowhere else. */
const STUB_ID = "stub-session-1";
const STUB_SECRET = "StubProxy-issued-secret_0123456789";
/** How long the gateway waits for the stub's reply: each silent answer costs this much. */
const STUB_TIMEOUT_MS = 500;

/** The hello a request must make the gateway send, and what the request carried. */
type ProxyCall =
  | { verb: "NEW" }
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
 * What the gateway's API table (lib/gateway/gateway.ts, README "The API") does
 * with `request`: answer a status without the proxy, send the proxy a
 * hello, or (`"upgrade"`) start a WebSocket, which needs a real connection.
 */
function expectedGatewayCall(
  request: Request,
  body: Uint8Array | null,
): number | "upgrade" | ProxyCall {
  const path = new URL(request.url).pathname;
  const method = request.method;
  if (path === "/api/sessions") return method === "POST" ? { verb: "NEW" } : 405;
  const route = SESSION_ROUTE.exec(path);
  if (route) {
    const id = route[1] ?? "";
    if (!ID.test(id)) return 400;
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
  if (typeof secret !== "string" || !SECRET.test(secret)) return 400;
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
      return "NEW";
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
    const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
    let at = 0;
    for (const part of parts) {
      bytes.set(part, at);
      at += part.length;
    }
    return bytes;
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
      return call.verb === "NEW" ? 201 : 200;
    case "bye":
      return 200;
    case "line":
      return answer.status;
    default:
      return 502;
  }
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
function errorExtraProblem(answer: StubAnswer, text: string): string | null {
  if (answer.kind !== "line" || answer.extra === undefined) return null;
  const body = JSON.parse(text) as Record<string, unknown>;
  for (const [name, value] of Object.entries(answer.extra)) {
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
  return await run("gateway", count, seed, options, async (fuzzer) => {
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
    const call = typeof expected === "number" ? null : expected;
    if (call !== null) answer = stubAnswer(fuzzer, call);
    stub.answer = answer;
    logs.length = 0;
    const got = await within(handler(request, info), HANG_MS);
    await discardBody(request);
    const read = got !== "hung" && "value" in got ? await within(got.value.text(), HANG_MS) : null;
    // Every connection of this input ends before the next input starts.
    if (got === "hung" || read === "hung") stub.dropAll();
    const visits = await within(stub.visits(), HANG_MS);
    if (visits === "hung") stub.dropAll();
    if (got === "hung") return { input, problem: `no response within ${HANG_MS} ms` };
    if ("error" in got) {
      return { input, problem: `the handler rejected: ${describeError(got.error)}` };
    }
    if (read === "hung") return { input, problem: `the body did not end within ${HANG_MS} ms` };
    if (read !== null && "error" in read) {
      return { input, problem: `the body failed: ${describeError(read.error)}` };
    }
    if (visits === "hung") {
      return { input, problem: `the proxy connection was still open ${HANG_MS} ms later` };
    }
    if ("error" in visits) {
      return { input, problem: `the stub failed: ${describeError(visits.error)}` };
    }
    const response = got.value;
    const text = read?.value ?? "";
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
    const problem = jsonErrorProblem(response, text, "error") ?? errorExtraProblem(answer, text);
    if (problem !== null) return problem;
  } else if (call !== null) {
    const problem = successProblem(call, answer, response, text);
    if (problem !== null) return problem;
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
  const leaked = leakedSecret(request, [text, ...headerTexts(response), ...logs], secrets) ??
    leakedSecret(request, status === 201 ? [...headerTexts(response), ...logs] : [text, ...logs], [
      STUB_SECRET,
    ]);
  return leaked === null ? null : `a secret shows in the response or log: "${leaked}"`;
}
