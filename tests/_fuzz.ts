/**
 * The fuzz harness every target shares: seeded, reproducible inputs (random
 * bytes and text, and mutations of a target's corpus), the run loop that
 * feeds them to a target's check and reports the failing ones with a replay
 * command, and the leak watch of the long runs. Input `i` of a run is drawn
 * from its own generator, derived from the run's seed and `i`, so any input
 * can be replayed alone. No npm packages: the generator is mulberry32.
 *
 * The targets sit beside it, one a file: `_fuzz_hello.ts` (the hello parser
 * and `readHello`), `_fuzz_admin.ts` (the admin API) and `_fuzz_gateway.ts`
 * (the gateway in front of a stub proxy), the last two sharing the HTTP
 * checks of `_fuzz_http.ts`. `fuzz_test.ts` runs them briefly in the regular
 * suite, `fuzz/fuzz.ts` at length.
 *
 * @module
 */

import { describeError } from "../lib/log.ts";

/** Fake credentials the corpora carry; a response or log line must never echo them. */
export const FUZZ_ID = "AbC-123_xyz";
/** A second session id, of the longest length allowed. */
export const FUZZ_ID_LONG = "z".repeat(63) + "9";
/** A session secret of the shortest length allowed. */
export const FUZZ_SECRET = "0123456789abcdefghijkl";
/** A session secret of a realistic length. */
export const FUZZ_SECRET_LONG = "Qm9yaW5nLXNlY3JldC1mb3ItZnV6emluZw_x";
/** The admin token the admin handler is given (half the time). */
export const FUZZ_TOKEN = "fuzz-admin-token-7f3a9c1e";

/** Every secret the corpora carry. */
export const FUZZ_SECRETS: readonly string[] = [FUZZ_SECRET, FUZZ_SECRET_LONG, FUZZ_TOKEN];

/**
 * A session id as docs/protocol.md writes it. The targets judge with their own
 * copy of the grammar, not lib/protocol.ts's, so that a wrong pattern there
 * shows up here.
 */
export const ID_SYNTAX = /^[A-Za-z0-9_-]{1,64}$/;
/** A session secret as docs/protocol.md writes it (see {@linkcode ID_SYNTAX}). */
export const SECRET_SYNTAX = /^[A-Za-z0-9_-]{22,64}$/;

/** A request to mutate: the parts of an HTTP request a handler sees. */
export interface FuzzRequest {
  /** The method, as sent. */
  method: string;
  /** Path and query, as sent. */
  path: string;
  /** Header fields in order; names may repeat. */
  headers: [string, string][];
  /** The body, or `null` for none. */
  body: Uint8Array | null;
}

/** The longest mutated field, in bytes: past every limit, short of slowing a run down. */
const LONG_SIZES = [63, 64, 65, 100, 511, 512, 513, 1024, 4095, 4096, 4097, 70_000];

/** Texts that replace numbers: edges of the integer ranges, and things that are not numbers. */
const ODD_NUMBERS = [
  "0",
  "1",
  "-1",
  "-0",
  "00",
  "007",
  "+1",
  " 1",
  "1.5",
  "1e3",
  "1e999",
  "-1e999",
  "1e-7",
  "0x1f",
  "NaN",
  "Infinity",
  "",
  "abc",
  "true",
  "null",
  "4294967295",
  "4294967296",
  "9007199254740991",
  "9007199254740992",
  "9999999999999999",
  "99999999999999999",
  "18446744073709551616",
  "9".repeat(400),
];

/** Bytes that break lines, strings and parsers. */
const ODD_BYTES: readonly number[][] = [
  [13],
  [10],
  [13, 10],
  [0],
  [0xff],
  [0x7f],
  [0x80],
  [0xc3, 0xa9],
  [0xed, 0xa0, 0x80],
  [32],
  [32, 32],
  [9],
  [0x25],
  [0x25, 0x30, 0x30],
  [0x25, 0x32, 0x46],
  [0x2e, 0x2e, 0x2f],
  [0x22],
  [0x5c],
  [0x7b],
  [0x7d],
  [0x2c],
  [0x3a],
];

/** JSON values that replace a field of a request body. */
const ODD_VALUES: readonly unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  -0,
  1.5,
  2 ** 53,
  2 ** 53 - 1,
  2 ** 64,
  Number.MAX_VALUE,
  "",
  "0",
  "=",
  "====",
  "!!!!",
  "aGk",
  "aGk=",
  "aGVsbG8gd29ybGQ=",
  "aG Vs\nbG8=",
  "A".repeat(1400),
  "A".repeat(70_000),
  FUZZ_SECRET,
  FUZZ_SECRET_LONG,
  FUZZ_SECRET + "/",
  "s".repeat(65),
  "\u0000",
  "\u00ff",
  "\ud800",
  [],
  [FUZZ_SECRET],
  {},
  { secret: FUZZ_SECRET },
];

/** The body fields the gateway reads, plus a few it must ignore. */
const BODY_KEYS = ["secret", "ack", "input", "inputAt", "wait", "id", "constructor", "toString"];

/**
 * A seeded pseudo-random generator (mulberry32) with the draws fuzzing needs.
 *
 * @example
 * ```ts
 * import { Fuzzer } from "./_fuzz.ts";
 *
 * const a = Fuzzer.forInput(42, 7).printable(20);
 * console.assert(a === Fuzzer.forInput(42, 7).printable(20));
 * ```
 */
export class Fuzzer {
  #state: number;

  /**
   * Creates a generator.
   *
   * @param seed Any integer; only its low 32 bits count.
   */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /**
   * The generator of input `index` of a run, so that one input replays alone.
   *
   * @param seed The run's seed.
   * @param index The input's number, from 0.
   * @returns A generator no other input of the run shares.
   */
  static forInput(seed: number, index: number): Fuzzer {
    // splitmix32-style finalizer: neighbouring indexes get unrelated states.
    let x = (seed >>> 0) ^ Math.imul(index + 1, 0x9e3779b9);
    x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
    x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
    return new Fuzzer((x ^ (x >>> 16)) >>> 0);
  }

  /** @returns A number in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /**
   * @param below The bound, at least 1.
   * @returns An integer in [0, below).
   */
  int(below: number): number {
    return Math.floor(this.next() * below);
  }

  /**
   * @param probability Of `true`, in [0, 1].
   * @returns `true` with that probability.
   */
  chance(probability: number): boolean {
    return this.next() < probability;
  }

  /**
   * @param items A non-empty list.
   * @returns One of them.
   */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("Cannot pick from an empty list");
    return items[this.int(items.length)] as T;
  }

  /**
   * A length skewed towards small ones: most inputs are short, some are not.
   *
   * @param max The longest.
   * @returns An integer in [0, max].
   */
  size(max: number): number {
    return Math.min(max, Math.floor((max + 1) ** this.next()) - 1);
  }

  /**
   * @param length How many.
   * @returns Random bytes.
   */
  bytes(length: number): Uint8Array {
    const bytes = new Uint8Array(length);
    for (let i = 0; i < length; i++) bytes[i] = this.int(256);
    return bytes;
  }

  /**
   * @param length How many characters.
   * @returns Random printable ASCII (space to tilde).
   */
  printable(length: number): string {
    let text = "";
    for (let i = 0; i < length; i++) text += String.fromCharCode(0x20 + this.int(95));
    return text;
  }

  /**
   * Mutates `input` with one to four random edits: bit flips, byte inserts,
   * deletes and duplicates, splices with another corpus entry, truncation,
   * odd numbers, CR/LF/NUL/0xFF and very long fields.
   *
   * @param input What to mutate; not changed.
   * @param corpus Other valid inputs to splice from.
   * @returns The mutated bytes.
   */
  mutate(input: Uint8Array, corpus: readonly Uint8Array[]): Uint8Array {
    let bytes = Array.from(input);
    const edits = 1 + this.size(3);
    for (let i = 0; i < edits; i++) bytes = this.#edit(bytes, corpus);
    return Uint8Array.from(bytes);
  }

  /**
   * {@linkcode Fuzzer.mutate} for text, taken and returned as Latin-1 (one byte a character).
   *
   * @param text What to mutate.
   * @param corpus Other valid texts to splice from.
   * @returns The mutated text.
   */
  mutateText(text: string, corpus: readonly string[]): string {
    return fromLatin1(this.mutate(toLatin1(text), corpus.map(toLatin1)));
  }

  #edit(bytes: number[], corpus: readonly Uint8Array[]): number[] {
    const at = this.int(bytes.length + 1);
    switch (this.int(12)) {
      case 0: { // flip a bit
        if (bytes.length === 0) return bytes;
        const index = this.int(bytes.length);
        bytes[index] = (bytes[index] ?? 0) ^ (1 << this.int(8));
        return bytes;
      }
      case 1: // insert random bytes
        return insert(bytes, at, this.bytes(1 + this.size(7)));
      case 2: // delete a range
        return bytes.slice(0, at).concat(bytes.slice(at + 1 + this.size(15)));
      case 3: // duplicate a range
        return insert(bytes, at, bytes.slice(at, at + 1 + this.size(31)));
      case 4: { // splice: this one's head, another's tail
        const other = this.pick(corpus);
        return bytes.slice(0, at).concat(Array.from(other.subarray(this.int(other.length + 1))));
      }
      case 5: { // insert a piece of another
        const other = this.pick(corpus);
        const from = this.int(other.length + 1);
        return insert(bytes, at, other.subarray(from, from + 1 + this.size(31)));
      }
      case 6: // truncate
        return bytes.slice(0, at);
      case 7: // an odd number in place of a number
        return this.#replaceNumber(bytes);
      case 8: // CR, LF, NUL, 0xFF and friends
        return insert(bytes, at, this.pick(ODD_BYTES));
      case 9: { // a very long field: one byte or a piece repeated
        const length = this.pick(LONG_SIZES);
        const piece = bytes.length > 0 && this.chance(0.5)
          ? bytes.slice(at, at + 1 + this.int(8))
          : [0x41 + this.int(26)];
        const long = new Array<number>(length);
        for (let i = 0; i < length; i++) long[i] = piece[i % piece.length] ?? 0x41;
        return insert(bytes, at, long);
      }
      case 10: { // swap two fields separated by spaces
        const fields = fromLatin1(Uint8Array.from(bytes)).split(" ");
        const a = this.int(fields.length);
        const b = this.int(fields.length);
        [fields[a], fields[b]] = [fields[b] ?? "", fields[a] ?? ""];
        return Array.from(toLatin1(fields.join(" ")));
      }
      default: // a random byte replaced
        if (bytes.length > 0) bytes[this.int(bytes.length)] = this.int(256);
        return bytes;
    }
  }

  #replaceNumber(bytes: number[]): number[] {
    const text = fromLatin1(Uint8Array.from(bytes));
    const numbers = [...text.matchAll(/\d+/g)];
    const odd = this.pick(ODD_NUMBERS);
    if (numbers.length === 0) {
      const at = this.int(text.length + 1);
      return Array.from(toLatin1(text.slice(0, at) + odd + text.slice(at)));
    }
    const number = this.pick(numbers);
    const start = number.index ?? 0;
    return Array.from(toLatin1(text.slice(0, start) + odd + text.slice(start + number[0].length)));
  }

  /**
   * Mutates a JSON object body field by field: fields removed, replaced by
   * odd values or added; sometimes the whole body is not an object. Bodies
   * that are not JSON get byte mutations instead.
   *
   * @param body A body, as UTF-8.
   * @param corpus Other bodies to splice from.
   * @returns The mutated body.
   */
  mutateJson(body: Uint8Array, corpus: readonly Uint8Array[]): Uint8Array {
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder().decode(body));
    } catch {
      return this.mutate(body, corpus);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return this.mutate(body, corpus);
    }
    if (this.chance(0.05)) return encodeJson(this.pick(ODD_VALUES));
    const object = { ...value } as Record<string, unknown>;
    const edits = 1 + this.size(2);
    for (let i = 0; i < edits; i++) {
      const keys = Object.keys(object);
      if (keys.length > 0 && this.chance(0.25)) {
        delete object[this.pick(keys)];
      } else {
        const key = keys.length > 0 && this.chance(0.7) ? this.pick(keys) : this.pick(BODY_KEYS);
        object[key] = this.#oddValue();
      }
    }
    return encodeJson(object);
  }

  #oddValue(): unknown {
    switch (this.int(4)) {
      case 0:
        return this.int(2 ** 31) * (this.chance(0.2) ? -1 : 1);
      case 1:
        return this.printable(this.size(40));
      case 2:
        return btoa(fromLatin1(this.bytes(this.size(1500))));
      default:
        return this.pick(ODD_VALUES);
    }
  }

  /**
   * Mutates a request: its method, path, a header (changed, added, removed
   * or repeated) or its body, one or two at a time; sometimes it takes the
   * path or headers of another request of the corpus.
   *
   * @param request What to mutate; not changed.
   * @param corpus Other valid requests to splice from.
   * @returns The mutated request.
   */
  mutateRequest(request: FuzzRequest, corpus: readonly FuzzRequest[]): FuzzRequest {
    const result: FuzzRequest = {
      method: request.method,
      path: request.path,
      headers: request.headers.map(([name, value]) => [name, value]),
      body: request.body,
    };
    const edits = 1 + this.size(1);
    for (let i = 0; i < edits; i++) this.#editRequest(result, corpus);
    return result;
  }

  #editRequest(request: FuzzRequest, corpus: readonly FuzzRequest[]): void {
    const other = this.pick(corpus);
    switch (this.int(8)) {
      case 0:
        request.method = this.chance(0.5)
          ? this.pick(METHODS)
          : this.mutateText(request.method, corpus.map((r) => r.method));
        return;
      case 1:
      case 2:
        request.path = this.mutateText(request.path, corpus.map((r) => r.path));
        return;
      case 3:
        request.path = this.chance(0.5) ? other.path : other.path + request.path;
        return;
      case 4: {
        const headers = corpus.flatMap((r) => r.headers);
        const index = this.int(request.headers.length + 1);
        const header = request.headers[index];
        const edit = this.int(10);
        if (header === undefined || edit < 3) {
          request.headers.push(headers.length > 0 ? [...this.pick(headers)] : ["x-fuzz", "1"]);
        } else if (edit === 3) {
          request.headers.splice(index, 1);
        } else if (edit === 4) {
          header[0] = this.mutateText(header[0], headers.map(([name]) => name));
        } else {
          header[1] = this.mutateText(header[1], headers.map(([, value]) => value));
        }
        return;
      }
      case 5:
        request.headers = other.headers.map(([name, value]) => [name, value]);
        return;
      default: {
        const bodies = corpus.flatMap((r) => r.body ? [r.body] : []);
        if (bodies.length === 0) bodies.push(new Uint8Array(0));
        const body = request.body ?? this.pick(bodies);
        request.body = this.chance(0.6) ? this.mutateJson(body, bodies) : this.mutate(body, bodies);
      }
    }
  }
}

/** Methods a mutated request may take instead of its own; some the Fetch API refuses. */
const METHODS = [
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "get",
  "post",
  "delete",
  "Delete",
  "PROPFIND",
  "CONNECT",
  "TRACE",
  "BREW",
  "G ET",
  "",
];

/**
 * Builds the `Request` a handler gets, as the Fetch API would. A GET or
 * HEAD request carries no body (the Fetch API forbids one).
 *
 * @param request The parts.
 * @param origin Scheme and host, such as `http://admin.test`.
 * @returns The request, or `null` when the Fetch API refuses the method, URL or a header.
 */
export function toRequest(request: FuzzRequest, origin: string): Request | null {
  const method = request.method.toUpperCase();
  const body = method === "GET" || method === "HEAD" ? null : request.body;
  try {
    return new Request(origin + request.path, {
      method: request.method,
      headers: request.headers,
      ...(body === null ? {} : { body: body.slice() }),
    });
  } catch (error) {
    if (error instanceof TypeError) return null;
    throw error;
  }
}

/**
 * Text as Latin-1 bytes, one a character (characters above U+00FF keep their low byte).
 *
 * @param text The text.
 * @returns The bytes.
 */
export function toLatin1(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/**
 * Bytes as Latin-1 text, one character a byte, as the handshake reads a hello.
 *
 * @param bytes The bytes.
 * @returns The text.
 */
export function fromLatin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    // apply, not a spread: spreading a typed array goes through its iterator, byte by byte.
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  }
  return text;
}

/** `piece` inserted at `at`, without spreading it as arguments (it may be 70 000 long). */
function insert(bytes: number[], at: number, piece: ArrayLike<number>): number[] {
  return bytes.slice(0, at).concat(Array.from(piece), bytes.slice(at));
}

function encodeJson(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

/**
 * Shows an input in printable ASCII: `\r`, `\n`, `\t`, `\0`, `\\` and
 * `\xHH` escapes; long inputs are cut in the middle.
 *
 * @param input Bytes, or text (as Latin-1; characters above U+00FF as `\u{...}`).
 * @param max The longest output before cutting.
 * @returns The escaped text.
 *
 * @example
 * ```ts
 * import { escapeInput } from "./_fuzz.ts";
 *
 * console.assert(escapeInput("NEW\r\n\0\xff") === "NEW\\r\\n\\0\\xff");
 * ```
 */
export function escapeInput(input: Uint8Array | string, max = 600): string {
  const text = typeof input === "string" ? input : fromLatin1(input);
  const escape = (part: string): string =>
    part.replace(/[^\x20-\x5b\x5d-\x7e]/gu, (char) => {
      const code = char.codePointAt(0) ?? 0;
      switch (char) {
        case "\r":
          return "\\r";
        case "\n":
          return "\\n";
        case "\t":
          return "\\t";
        case "\0":
          return "\\0";
        case "\\":
          return "\\\\";
      }
      return code > 0xff ? `\\u{${code.toString(16)}}` : `\\x${code.toString(16).padStart(2, "0")}`;
    });
  if (text.length <= max) return escape(text);
  const half = Math.floor(max / 2);
  return `${escape(text.slice(0, half))}...[${text.length - 2 * half} more characters]...${
    escape(text.slice(-half))
  }`;
}

/**
 * Reads a seed: a decimal integer from 0 to 2^32 - 1.
 *
 * @param text The seed as typed.
 * @returns The seed.
 * @throws {RangeError} When `text` is not one.
 */
export function parseSeed(text: string): number {
  const seed = /^\d{1,10}$/.test(text) ? Number(text) : NaN;
  if (!(seed <= 0xffffffff)) {
    throw new RangeError(`Cannot use seed "${text}": expected an integer from 0 to 4294967295`);
  }
  return seed;
}

/**
 * Whether two byte arrays hold the same bytes.
 *
 * @param a One.
 * @param b The other.
 * @returns `true` when they are equally long and alike byte for byte.
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------
// Runs

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
export interface Verdict {
  /** The input, escaped: only called on failure, since escaping long inputs takes time. */
  input: () => string;
  /** Not fed to the target. */
  skipped?: boolean;
  /** What went wrong, or `null`. */
  problem: string | null;
  /** How the input ended, for {@linkcode FuzzReport.outcomes}. */
  outcome?: string;
}

/** A run of one target: its name, how many inputs, from which seed. */
export interface FuzzRun extends FuzzOptions {
  /** The target's name, as `--only` takes it. */
  target: string;
  /** Number of inputs. */
  count: number;
  /** The run's seed. */
  seed: number;
}

const MAX_EXAMPLES = 5;

/**
 * Runs a target: checks every input of the run, each drawn from its own
 * {@linkcode Fuzzer}, and reports them all; a check that throws fails its
 * input.
 *
 * @param run The target, the count, the seed and the options.
 * @param check Draws one input from the fuzzer, feeds it to the code under test, judges it.
 * @returns The run, when no input failed.
 * @throws {FuzzError} When any input failed, after all ran.
 *
 * @example
 * ```ts
 * import { runTarget } from "./_fuzz.ts";
 *
 * const report = await runTarget({ target: "dice", count: 100, seed: 1 }, (fuzzer) => {
 *   const roll = fuzzer.int(6);
 *   return { input: () => String(roll), problem: roll < 6 ? null : `rolled ${roll}` };
 * });
 * console.assert(report.inputs === 100 && report.failures === 0);
 * ```
 */
export async function runTarget(
  run: FuzzRun,
  check: (fuzzer: Fuzzer) => Verdict | Promise<Verdict>,
): Promise<FuzzReport> {
  const { target, count, seed } = run;
  const first = run.first ?? 0;
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
    if (run.checkpoint && report.inputs % run.checkpoint.every === 0) {
      run.checkpoint.at(report.inputs);
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
