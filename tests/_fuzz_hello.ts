/**
 * The hello fuzz target: `parseHello` and `parseReply` on random and mutated
 * lines, and `readHello` over a fake connection that hands out the same
 * bytes in random pieces, checked against the hello grammar of docs/protocol.md.
 *
 * @module
 */

import { readHello } from "../lib/proxy/handshake.ts";
import { concatBytes } from "../lib/bytes.ts";
import { describeError } from "../lib/log.ts";
import {
  formatHello,
  type Hello,
  MAX_HELLO_BYTES,
  parseHello,
  parseReply,
  ProtocolError,
} from "../lib/protocol.ts";
import {
  equalBytes,
  escapeInput,
  fromLatin1,
  FUZZ_ID,
  FUZZ_ID_LONG,
  FUZZ_SECRET,
  FUZZ_SECRET_LONG,
  Fuzzer,
  type FuzzOptions,
  type FuzzReport,
  ID_SYNTAX,
  runTarget,
  SECRET_SYNTAX,
  toLatin1,
  within,
} from "./_fuzz.ts";

/** Valid hellos (without their LF), and a few valid replies to mix in. */
export const HELLO_CORPUS: readonly string[] = [
  "NEW",
  "NEW\r",
  "NEW framed",
  "NEW to=mud",
  "NEW from=192.0.2.7:4000 to=game.main framed",
  "NEW framed from=[2001:db8::1]",
  "NEW from=[::ffff:192.0.2.7]:65535",
  `RESUME ${FUZZ_ID} ${FUZZ_SECRET} 7 framed`,
  `RESUME ${FUZZ_ID} ${FUZZ_SECRET}`,
  `RESUME ${FUZZ_ID} ${FUZZ_SECRET} 0`,
  `RESUME ${FUZZ_ID} ${FUZZ_SECRET} 42\r`,
  `RESUME ${FUZZ_ID_LONG} ${FUZZ_SECRET_LONG} 9007199254740991`,
  `RESUME a ${"s".repeat(64)} 1234567890123456`,
  `CLOSE ${FUZZ_ID} ${FUZZ_SECRET}`,
  `CLOSE ${FUZZ_ID_LONG} ${FUZZ_SECRET_LONG}\r`,
  `OK ${FUZZ_ID} ${FUZZ_SECRET} 0 0 5 open`,
  `BYE ${FUZZ_ID}`,
  "ERR gap 4096 output before offset 4096 was released",
  "GET / HTTP/1.1",
];

/** {@linkcode HELLO_CORPUS} as bytes, for {@linkcode Fuzzer.mutate}. */
const HELLO_CORPUS_BYTES: readonly Uint8Array[] = HELLO_CORPUS.map(toLatin1);

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
  return concatBytes([line, lf, after]);
}

/** Why `hello` is not the well-formed hello `line` says, or `null`. */
function helloProblem(hello: Hello, line: string): string | null {
  const text = line.endsWith("\r") ? line.slice(0, -1) : line;
  const fields = text.split(" ");
  const keys = Object.keys(hello).sort().join(",");
  switch (hello.verb) {
    case "NEW": {
      // The options as given, in any order, each once: the same set formatHello writes.
      const given = fields.slice(1).sort().join(" ");
      const read = formatHello(hello).slice(0, -1).split(" ").slice(1).sort().join(" ");
      if (fields[0] !== "NEW" || given !== read || !validNewOptions(fields.slice(1))) {
        return `accepted as NEW: ${JSON.stringify(hello)}`;
      }
      return null;
    }
    case "CLOSE":
      if (keys !== "id,secret,verb" || fields.length !== 3) return `odd CLOSE ${keys}`;
      break;
    case "RESUME": {
      const framed = hello.framed === true;
      const expected = hello.ack === undefined
        ? "id,secret,verb"
        : framed
        ? "ack,framed,id,secret,verb"
        : "ack,id,secret,verb";
      const count = (hello.ack === undefined ? 3 : 4) + (framed ? 1 : 0);
      if (keys !== expected || fields.length !== count || (framed && fields[4] !== "framed")) {
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
  if (!ID_SYNTAX.test(hello.id)) return `malformed id accepted: "${hello.id}"`;
  if (!SECRET_SYNTAX.test(hello.secret)) return "malformed secret accepted";
  if (JSON.stringify(parseHello(formatHello(hello).slice(0, -1))) !== JSON.stringify(hello)) {
    return `formatHello does not read back: ${JSON.stringify(formatHello(hello))}`;
  }
  return null;
}

type Outcome = { hello: Hello } | { error: string };

/**
 * The hello grammar of docs/protocol.md (versions 1 and 2), written out: a line it matches must be
 * accepted. `<ack>` is bounded as lib/protocol.ts bounds it (16 digits, at
 * most 2^53 - 1), which the protocol leaves open.
 */
const VALID_HELLO =
  /^(?:RESUME [A-Za-z0-9_-]{1,64} [A-Za-z0-9_-]{22,64}(?: (\d{1,16})(?: framed)?)?|CLOSE [A-Za-z0-9_-]{1,64} [A-Za-z0-9_-]{22,64})\r?$/;

/** An IPv4 address, each part 0 to 255 without leading zeros. */
const IPV4_TEXT =
  /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const PORT_TEXT = /^(?:[1-9]\d{0,4})$/;

/** A `from=` address: `<ipv4>[:<port>]` or `[<ipv6>][:<port>]`; IPv6 judged by the URL parser. */
function validFromAddress(text: string): boolean {
  const bracketed = /^\[([0-9A-Fa-f:.]+)\](?::(.*))?$/.exec(text);
  const [host, port] = bracketed ? [bracketed[1] ?? "", bracketed[2]] : [
    text.split(":")[0] ?? "",
    text.includes(":") ? text.split(":").slice(1).join(":") : undefined,
  ];
  if (port !== undefined && !(PORT_TEXT.test(port) && Number(port) <= 65535)) return false;
  if (!bracketed) return IPV4_TEXT.test(host);
  if (IPV4_TEXT.test(host) || !host.includes(":")) return false;
  try {
    new URL(`http://[${host}]/`);
    return true;
  } catch {
    return false;
  }
}

/** `NEW`'s options: `framed`, `to=<name>`, `from=<address>`, each at most once, any order. */
function validNewOptions(options: string[]): boolean {
  const seen = new Set<string>();
  for (const option of options) {
    const kind = option === "framed" ? "framed" : option.split("=")[0] ?? "";
    if (seen.has(kind)) return false;
    seen.add(kind);
    if (kind === "framed") continue;
    const value = option.slice(kind.length + 1);
    if (kind === "to" && /^[A-Za-z0-9_.-]{1,64}$/.test(value)) continue;
    if (kind === "from" && validFromAddress(value)) continue;
    return false;
  }
  return true;
}

function validHello(line: string): boolean {
  const text = line.endsWith("\r") ? line.slice(0, -1) : line;
  if (text === "NEW" || text.startsWith("NEW ")) {
    return !text.includes("  ") && validNewOptions(text.split(" ").slice(1));
  }
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
    if ("bye" in reply) {
      return ID_SYNTAX.test(reply.bye) ? null : `BYE with a bad id "${reply.bye}"`;
    }
    const offsets = [reply.in, reply.from, reply.pending];
    if (
      !ID_SYNTAX.test(reply.id) || !SECRET_SYNTAX.test(reply.secret) ||
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
class PiecemealConn {
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
  const conn = new PiecemealConn(stream, readSizes(fuzzer));
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
  return runTarget({ target: "hello", count, seed, ...options }, async (fuzzer) => {
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
