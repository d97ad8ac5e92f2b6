/**
 * The telnet engine: negotiation answers, subnegotiations, data escaping and
 * a stream split anywhere parsing exactly like the whole stream.
 */

import assert from "node:assert/strict";
import { Telnet } from "../web/telnet.ts";
import { concatBytes } from "../lib/bytes.ts";
import { prng } from "./_helpers.ts";

const IAC = 255;
const DONT = 254;
const DO = 253;
const WONT = 252;
const WILL = 251;
const SB = 250;
const GA = 249;
const EL = 248;
const EC = 247;
const AYT = 246;
const AO = 245;
const IP = 244;
const BRK = 243;
const DM = 242;
const NOP = 241;
const SE = 240;

const BINARY = 0;
const ECHO = 1;
const SGA = 3;
const TTYPE = 24;
const NAWS = 31;

const CR = 13;
const LF = 10;

const encoder = new TextEncoder();

/** Bytes from numbers and strings, strings as UTF-8. */
function bytes(...parts: (number | string)[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === "number") out.push(part);
    else out.push(...encoder.encode(part));
  }
  return Uint8Array.from(out);
}

/** Feeds `chunks` to `telnet` in order; returns all display and reply bytes as plain arrays. */
function feed(telnet: Telnet, chunks: Uint8Array[]): { display: number[]; reply: number[] } {
  const displays: Uint8Array[] = [];
  const replies: Uint8Array[] = [];
  for (const chunk of chunks) {
    const { display, reply } = telnet.receive(chunk);
    displays.push(display);
    replies.push(reply);
  }
  return { display: [...concatBytes(displays)], reply: [...concatBytes(replies)] };
}

/** Feeds one chunk to a new engine; returns its display and reply as plain arrays. */
function receive(input: Uint8Array, telnet = new Telnet()): { display: number[]; reply: number[] } {
  return feed(telnet, [input]);
}

/** Splits `input` at the given ascending indexes. */
function splitAt(input: Uint8Array, indexes: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const index of indexes) {
    chunks.push(input.slice(start, index));
    start = index;
  }
  chunks.push(input.slice(start));
  return chunks;
}

/** Random bytes with many 0xFF, CR, LF and NUL so that every escape is exercised. */
function randomData(random: () => number, length: number): Uint8Array {
  const special = [IAC, IAC, CR, LF, 0];
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    out[i] = random() < 0.3
      ? special[Math.floor(random() * special.length)] ?? 0
      : Math.floor(random() * 256);
  }
  return out;
}

/** What a telnet server sends for `data`: 0xFF doubled and a bare CR sent as CR NUL. */
function serverEscape(data: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < data.length; i++) {
    const byte = data[i] ?? 0;
    out.push(byte);
    if (byte === IAC) out.push(IAC);
    else if (byte === CR && data[i + 1] !== LF) out.push(0);
  }
  return Uint8Array.from(out);
}

/** Random split points for `length` bytes, ascending, with empty chunks allowed. */
function randomSplits(random: () => number, length: number): number[] {
  const indexes: number[] = [];
  for (let at = 0; at < length;) {
    at = Math.min(length, at + Math.floor(random() * 12));
    indexes.push(at);
  }
  return indexes;
}

// A stream that mixes text with every kind of command, used by the split tests.
const MIXED = concatBytes([
  bytes("login: ", IAC, WILL, ECHO, IAC, DO, NAWS, "a", IAC, IAC, "b"),
  bytes(IAC, DO, TTYPE, IAC, SB, TTYPE, 1, IAC, SE),
  bytes(CR, 0, "c", CR, LF, IAC, NOP, IAC, WILL, SGA),
  bytes(IAC, SB, 99, 1, IAC, IAC, 2, IAC, SE),
  bytes("d", IAC, DO, BINARY, IAC, GA, IAC, WILL, 77, IAC, DONT, NAWS),
  bytes("e", IAC, WONT, ECHO, CR),
]);

Deno.test("plain text is displayed unchanged with no reply", () => {
  const { display, reply } = receive(bytes("hello\r\nworld"));
  assert.deepEqual(display, [...bytes("hello\r\nworld")]);
  assert.deepEqual(reply, []);
});

Deno.test("empty input gives empty display and reply", () => {
  const { display, reply } = new Telnet().receive(new Uint8Array(0));
  assert.equal(display.length, 0);
  assert.equal(reply.length, 0);
});

Deno.test("receive returns new arrays and leaves its input unchanged", () => {
  const input = bytes("abc", IAC, IAC);
  const { display } = new Telnet().receive(input);
  display.fill(0);
  assert.deepEqual([...input], [...bytes("abc", IAC, IAC)]);
});

Deno.test("a fresh engine has every option off", () => {
  const telnet = new Telnet();
  assert.equal(telnet.remoteEcho, false);
  assert.equal(telnet.suppressGoAhead, false);
  assert.deepEqual(telnet.enabled, { local: [], remote: [] });
});

Deno.test("WILL ECHO is accepted with DO ECHO and turns remote echo on", () => {
  const telnet = new Telnet();
  assert.deepEqual(receive(bytes(IAC, WILL, ECHO), telnet).reply, [IAC, DO, ECHO]);
  assert.equal(telnet.remoteEcho, true);
  assert.deepEqual(telnet.enabled, { local: [], remote: [ECHO] });
});

Deno.test("a repeated WILL ECHO gets no second DO ECHO", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, WILL, ECHO), telnet);
  assert.deepEqual(receive(bytes(IAC, WILL, ECHO), telnet).reply, []);
  assert.equal(telnet.remoteEcho, true);
});

Deno.test("WONT ECHO while echo is on is acknowledged with DONT ECHO and turns it off", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, WILL, ECHO), telnet);
  assert.deepEqual(receive(bytes(IAC, WONT, ECHO), telnet).reply, [IAC, DONT, ECHO]);
  assert.equal(telnet.remoteEcho, false);
  assert.deepEqual(telnet.enabled.remote, []);
});

Deno.test("WONT ECHO while echo is off gets no answer", () => {
  const telnet = new Telnet();
  assert.deepEqual(receive(bytes(IAC, WONT, ECHO), telnet).reply, []);
  receive(bytes(IAC, WILL, ECHO, IAC, WONT, ECHO), telnet);
  assert.deepEqual(receive(bytes(IAC, WONT, ECHO), telnet).reply, []);
  assert.equal(telnet.remoteEcho, false);
});

Deno.test("echo can be turned on again after the server turned it off", () => {
  const telnet = new Telnet();
  const { reply } = receive(bytes(IAC, WILL, ECHO, IAC, WONT, ECHO, IAC, WILL, ECHO), telnet);
  assert.deepEqual(reply, [IAC, DO, ECHO, IAC, DONT, ECHO, IAC, DO, ECHO]);
  assert.equal(telnet.remoteEcho, true);
});

Deno.test("DO ECHO is refused with WONT ECHO: the client never echoes", () => {
  const telnet = new Telnet();
  assert.deepEqual(receive(bytes(IAC, DO, ECHO), telnet).reply, [IAC, WONT, ECHO]);
  assert.equal(telnet.remoteEcho, false);
  assert.deepEqual(telnet.enabled, { local: [], remote: [] });
});

Deno.test("WILL SGA is accepted with DO SGA and turns suppress-go-ahead on", () => {
  const telnet = new Telnet();
  assert.deepEqual(receive(bytes(IAC, WILL, SGA), telnet).reply, [IAC, DO, SGA]);
  assert.equal(telnet.suppressGoAhead, true);
  assert.deepEqual(telnet.enabled, { local: [], remote: [SGA] });
});

Deno.test("DO SGA is accepted with WILL SGA without touching the server's direction", () => {
  const telnet = new Telnet();
  assert.deepEqual(receive(bytes(IAC, DO, SGA), telnet).reply, [IAC, WILL, SGA]);
  assert.equal(telnet.suppressGoAhead, false);
  assert.deepEqual(telnet.enabled, { local: [SGA], remote: [] });
});

Deno.test("WONT SGA while on is acknowledged with DONT SGA", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, WILL, SGA), telnet);
  assert.deepEqual(receive(bytes(IAC, WONT, SGA), telnet).reply, [IAC, DONT, SGA]);
  assert.equal(telnet.suppressGoAhead, false);
});

Deno.test("DONT for an option we perform is acknowledged once with WONT", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, SGA), telnet);
  assert.deepEqual(receive(bytes(IAC, DONT, SGA), telnet).reply, [IAC, WONT, SGA]);
  assert.deepEqual(telnet.enabled.local, []);
  assert.deepEqual(receive(bytes(IAC, DONT, SGA), telnet).reply, []);
});

Deno.test("DONT or WONT for an option that is off gets no answer", () => {
  for (const option of [BINARY, ECHO, SGA, TTYPE, NAWS, 200]) {
    const { reply } = receive(bytes(IAC, DONT, option, IAC, WONT, option));
    assert.deepEqual(reply, [], `option ${option}`);
  }
});

Deno.test("DO for an unsupported option is refused with WONT", () => {
  for (const option of [BINARY, ECHO, 5, 32, 34, 39, 200, 255]) {
    const telnet = new Telnet();
    assert.deepEqual(receive(bytes(IAC, DO, option), telnet).reply, [IAC, WONT, option]);
    assert.deepEqual(telnet.enabled, { local: [], remote: [] }, `option ${option}`);
  }
});

Deno.test("WILL for an unsupported option is refused with DONT", () => {
  for (const option of [BINARY, TTYPE, NAWS, 5, 32, 200, 255]) {
    const telnet = new Telnet();
    assert.deepEqual(receive(bytes(IAC, WILL, option), telnet).reply, [IAC, DONT, option]);
    assert.deepEqual(telnet.enabled, { local: [], remote: [] }, `option ${option}`);
  }
});

Deno.test("a repeated request for an option already on gets no answer", () => {
  const telnet = new Telnet();
  const first = bytes(IAC, WILL, ECHO, IAC, WILL, SGA, IAC, DO, SGA, IAC, DO, TTYPE, IAC, DO, NAWS);
  assert.notDeepEqual(receive(first, telnet).reply, []);
  assert.deepEqual(receive(first, telnet).reply, []);
  assert.deepEqual(telnet.enabled, { local: [SGA, TTYPE, NAWS], remote: [ECHO, SGA] });
});

Deno.test("enabled lists option codes in ascending order", () => {
  const telnet = new Telnet();
  receive(
    bytes(IAC, DO, NAWS, IAC, DO, TTYPE, IAC, DO, SGA, IAC, WILL, SGA, IAC, WILL, ECHO),
    telnet,
  );
  assert.deepEqual(telnet.enabled, { local: [SGA, TTYPE, NAWS], remote: [ECHO, SGA] });
});

Deno.test("DO NAWS is answered with WILL NAWS and the default 80x24 size", () => {
  const telnet = new Telnet();
  assert.deepEqual(receive(bytes(IAC, DO, NAWS), telnet).reply, [
    ...[IAC, WILL, NAWS],
    ...[IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE],
  ]);
  assert.deepEqual(telnet.enabled.local, [NAWS]);
});

Deno.test("DO NAWS sends the size given to the constructor, big-endian", () => {
  const telnet = new Telnet({ size: { columns: 300, rows: 1000 } });
  assert.deepEqual(receive(bytes(IAC, DO, NAWS), telnet).reply, [
    ...[IAC, WILL, NAWS],
    ...[IAC, SB, NAWS, 1, 44, 3, 232, IAC, SE],
  ]);
});

Deno.test("DO NAWS doubles a 0xFF byte in the size", () => {
  const telnet = new Telnet({ size: { columns: 255, rows: 24 } });
  assert.deepEqual(receive(bytes(IAC, DO, NAWS), telnet).reply, [
    ...[IAC, WILL, NAWS],
    ...[IAC, SB, NAWS, 0, IAC, IAC, 0, 24, IAC, SE],
  ]);
});

Deno.test("resize after NAWS is on returns the new size", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, NAWS), telnet);
  assert.deepEqual([...telnet.resize(132, 43)], [IAC, SB, NAWS, 0, 132, 0, 43, IAC, SE]);
});

Deno.test("resize doubles every 0xFF byte in the size", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, NAWS), telnet);
  assert.deepEqual([...telnet.resize(255, 24)], [IAC, SB, NAWS, 0, IAC, IAC, 0, 24, IAC, SE]);
  assert.deepEqual(
    [...telnet.resize(0xffff, 0xff00)],
    [IAC, SB, NAWS, IAC, IAC, IAC, IAC, IAC, IAC, 0, IAC, SE],
  );
});

Deno.test("resize before NAWS is negotiated returns empty and the size is used later", () => {
  const telnet = new Telnet();
  assert.equal(telnet.resize(100, 50).length, 0);
  assert.deepEqual(receive(bytes(IAC, DO, NAWS), telnet).reply, [
    ...[IAC, WILL, NAWS],
    ...[IAC, SB, NAWS, 0, 100, 0, 50, IAC, SE],
  ]);
});

Deno.test("resize after DONT NAWS returns empty", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, NAWS), telnet);
  assert.deepEqual(receive(bytes(IAC, DONT, NAWS), telnet).reply, [IAC, WONT, NAWS]);
  assert.equal(telnet.resize(100, 50).length, 0);
});

Deno.test("NAWS agreed again after DONT NAWS sends the size again", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, NAWS, IAC, DONT, NAWS), telnet);
  telnet.resize(90, 30);
  assert.deepEqual(receive(bytes(IAC, DO, NAWS), telnet).reply, [
    ...[IAC, WILL, NAWS],
    ...[IAC, SB, NAWS, 0, 90, 0, 30, IAC, SE],
  ]);
});

Deno.test("resize rejects sizes that NAWS cannot carry", () => {
  const telnet = new Telnet();
  for (const [columns, rows] of [[-1, 24], [80, 65536], [80.5, 24], [NaN, 24]] as const) {
    assert.throws(() => telnet.resize(columns, rows), RangeError);
  }
});

Deno.test("the constructor rejects a bad size or terminal type", () => {
  assert.throws(() => new Telnet({ size: { columns: 70000, rows: 24 } }), RangeError);
  assert.throws(() => new Telnet({ terminalType: "" }), TypeError);
  assert.throws(() => new Telnet({ terminalType: "vt 100" }), TypeError);
  assert.throws(() => new Telnet({ terminalType: "xterm\u00e9" }), TypeError);
});

Deno.test("DO TTYPE is accepted with WILL TTYPE", () => {
  const telnet = new Telnet();
  assert.deepEqual(receive(bytes(IAC, DO, TTYPE), telnet).reply, [IAC, WILL, TTYPE]);
  assert.deepEqual(telnet.enabled.local, [TTYPE]);
});

Deno.test("TTYPE SEND is answered with TTYPE IS xterm-256color", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, TTYPE), telnet);
  const { display, reply } = receive(bytes(IAC, SB, TTYPE, 1, IAC, SE), telnet);
  assert.deepEqual(display, []);
  assert.deepEqual(reply, [...bytes(IAC, SB, TTYPE, 0, "xterm-256color", IAC, SE)]);
});

Deno.test("TTYPE SEND is answered every time it is asked", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, TTYPE), telnet);
  const once = receive(bytes(IAC, SB, TTYPE, 1, IAC, SE), telnet).reply;
  assert.deepEqual(receive(bytes(IAC, SB, TTYPE, 1, IAC, SE), telnet).reply, once);
});

Deno.test("TTYPE SEND is answered with the configured terminal type", () => {
  const telnet = new Telnet({ terminalType: "VT100" });
  const { reply } = receive(bytes(IAC, DO, TTYPE, IAC, SB, TTYPE, 1, IAC, SE), telnet);
  assert.deepEqual(reply, [...bytes(IAC, WILL, TTYPE, IAC, SB, TTYPE, 0, "VT100", IAC, SE)]);
});

Deno.test("TTYPE SEND before TTYPE is agreed gets no answer", () => {
  assert.deepEqual(receive(bytes(IAC, SB, TTYPE, 1, IAC, SE)).reply, []);
  const telnet = new Telnet();
  receive(bytes(IAC, DO, TTYPE, IAC, DONT, TTYPE), telnet);
  assert.deepEqual(receive(bytes(IAC, SB, TTYPE, 1, IAC, SE), telnet).reply, []);
});

Deno.test("a TTYPE subnegotiation other than SEND gets no answer", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, TTYPE), telnet);
  const { display, reply } = receive(
    bytes(IAC, SB, TTYPE, 0, "VT100", IAC, SE, IAC, SB, TTYPE, IAC, SE),
    telnet,
  );
  assert.deepEqual(display, []);
  assert.deepEqual(reply, []);
});

Deno.test("two-byte commands are dropped from the display and get no answer", () => {
  const commands = [NOP, GA, DM, BRK, IP, AO, AYT, EC, EL, SE];
  const input = bytes("a", ...commands.flatMap((command) => [IAC, command, "b"]));
  const { display, reply } = receive(input);
  assert.deepEqual(display, [...bytes("a", "b".repeat(commands.length))]);
  assert.deepEqual(reply, []);
});

Deno.test("IAC followed by an unassigned command code is dropped", () => {
  const { display, reply } = receive(bytes("a", IAC, 0, "b", IAC, 65, "c", IAC, 239, "d"));
  assert.deepEqual(display, [...bytes("abcd")]);
  assert.deepEqual(reply, []);
});

Deno.test("IAC IAC in data is displayed as one 0xFF", () => {
  const { display, reply } = receive(bytes("a", IAC, IAC, IAC, IAC, "b", IAC, IAC));
  assert.deepEqual(display, [...bytes("a", IAC, IAC, "b", IAC)]);
  assert.deepEqual(reply, []);
});

Deno.test("IAC IAC inside a subnegotiation is data and does not end it", () => {
  // Were IAC IAC taken as IAC plus a command, the SE after it would end the
  // subnegotiation and "x" would be displayed.
  const { display, reply } = receive(bytes("a", IAC, SB, 99, IAC, IAC, SE, "x", IAC, SE, "b"));
  assert.deepEqual(display, [...bytes("ab")]);
  assert.deepEqual(reply, []);
});

Deno.test("IAC IAC as the first byte of TTYPE data is not SEND", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, TTYPE), telnet);
  assert.deepEqual(receive(bytes(IAC, SB, TTYPE, IAC, IAC, 1, IAC, SE), telnet).reply, []);
});

Deno.test("an unknown subnegotiation is dropped whole", () => {
  const input = bytes("before", IAC, SB, 42, "hidden", CR, LF, 0, IAC, SE, "after");
  const { display, reply } = receive(input);
  assert.deepEqual(display, [...bytes("beforeafter")]);
  assert.deepEqual(reply, []);
});

Deno.test("a subnegotiation with no option byte is dropped", () => {
  const { display, reply } = receive(bytes("a", IAC, SB, IAC, SE, "b"));
  assert.deepEqual(display, [...bytes("ab")]);
  assert.deepEqual(reply, []);
});

Deno.test("a subnegotiation for a supported option the client does not expect is dropped", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, NAWS, IAC, WILL, ECHO), telnet);
  const input = bytes(IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE, IAC, SB, ECHO, 1, IAC, SE, "x");
  const { display, reply } = receive(input, telnet);
  assert.deepEqual(display, [...bytes("x")]);
  assert.deepEqual(reply, []);
});

Deno.test("an oversized subnegotiation is capped and still ends only at IAC SE", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, TTYPE), telnet);
  const filler = new Uint8Array(100_000).fill(0x41);
  const start = telnet.receive(bytes("a", IAC, SB, TTYPE, 1));
  assert.deepEqual([...start.display], [...bytes("a")]);
  for (let i = 0; i < 10; i++) {
    const { display, reply } = telnet.receive(filler);
    assert.equal(display.length, 0);
    assert.equal(reply.length, 0);
  }
  const { display, reply } = receive(bytes(IAC, SE, "b", IAC, WILL, ECHO), telnet);
  assert.deepEqual(display, [...bytes("b")]);
  assert.deepEqual(reply, [...bytes(IAC, SB, TTYPE, 0, "xterm-256color", IAC, SE, IAC, DO, ECHO)]);
});

Deno.test("IAC and a command inside a subnegotiation abandon it and run the command", () => {
  const { display, reply } = receive(bytes(IAC, SB, 42, "lost", IAC, WILL, ECHO, "shown"));
  assert.deepEqual(display, [...bytes("shown")]);
  assert.deepEqual(reply, [IAC, DO, ECHO]);
});

Deno.test("CR NUL from the server is displayed as CR", () => {
  const { display } = receive(bytes("a", CR, 0, "b", CR, 0));
  assert.deepEqual(display, [...bytes("a", CR, "b", CR)]);
});

Deno.test("CR LF and a NUL not after CR are displayed unchanged", () => {
  const { display } = receive(bytes("a", CR, LF, 0, "b", 0, CR, CR, 0, 0));
  assert.deepEqual(display, [...bytes("a", CR, LF, 0, "b", 0, CR, CR, 0)]);
});

Deno.test("CR NUL split across two calls is displayed as CR", () => {
  const telnet = new Telnet();
  const { display } = feed(telnet, [bytes("a", CR), bytes(0, "b")]);
  assert.deepEqual(display, [...bytes("a", CR, "b")]);
});

Deno.test("a stream split into two calls at every index parses like the whole stream", () => {
  const whole = receive(MIXED);
  // The stream covers display and reply both, so the comparison means something.
  assert.deepEqual(whole.display, [...bytes("login: a", IAC, "b", CR, "c", CR, LF, "de", CR)]);
  assert.ok(whole.reply.length > 40);
  for (let i = 0; i <= MIXED.length; i++) {
    assert.deepEqual(feed(new Telnet(), splitAt(MIXED, [i])), whole, `split at ${i}`);
  }
});

Deno.test("a stream split into three calls at any two indexes parses like the whole stream", () => {
  const whole = receive(MIXED);
  for (let i = 0; i <= MIXED.length; i++) {
    for (let j = i; j <= MIXED.length; j++) {
      assert.deepEqual(feed(new Telnet(), splitAt(MIXED, [i, j])), whole, `split at ${i}, ${j}`);
    }
  }
});

Deno.test("a stream fed one byte per call parses like the whole stream", () => {
  const whole = receive(MIXED);
  const chunks = Array.from(MIXED, (byte) => Uint8Array.of(byte));
  const telnet = new Telnet();
  assert.deepEqual(feed(telnet, chunks), whole);
  const reference = new Telnet();
  receive(MIXED, reference);
  assert.deepEqual(telnet.enabled, reference.enabled);
});

Deno.test("random data escaped by the server and split at random round-trips", () => {
  const random = prng(0x7e1e7);
  for (let round = 0; round < 200; round++) {
    const data = randomData(random, Math.floor(random() * 400));
    const wire = serverEscape(data);
    const telnet = new Telnet();
    const { display, reply } = feed(telnet, splitAt(wire, randomSplits(random, wire.length)));
    assert.deepEqual(display, [...data], `round ${round}`);
    assert.deepEqual(reply, [], `round ${round}`);
  }
});

Deno.test("random data interleaved with commands at random still displays exactly the data", () => {
  const random = prng(42);
  const commands = [
    bytes(IAC, NOP),
    bytes(IAC, GA),
    bytes(IAC, WILL, ECHO),
    bytes(IAC, WONT, ECHO),
    bytes(IAC, DO, NAWS),
    bytes(IAC, DO, TTYPE),
    bytes(IAC, SB, TTYPE, 1, IAC, SE),
    bytes(IAC, SB, 99, IAC, IAC, SE, IAC, SE),
    bytes(IAC, DO, BINARY),
  ];
  for (let round = 0; round < 100; round++) {
    const data = randomData(random, 300);
    // Commands go between the escaped forms of data bytes, never inside one.
    const parts: Uint8Array[] = [];
    for (let i = 0; i < data.length; i++) {
      const byte = data[i] ?? 0;
      if (byte === IAC) parts.push(Uint8Array.of(IAC, IAC));
      else if (byte === CR && data[i + 1] !== LF) parts.push(Uint8Array.of(CR, 0));
      else parts.push(Uint8Array.of(byte));
      if (random() < 0.1) {
        parts.push(commands[Math.floor(random() * commands.length)] ?? new Uint8Array(0));
      }
    }
    const stream = concatBytes(parts);
    const whole = receive(stream);
    assert.deepEqual(whole.display, [...data], `round ${round}`);
    const split = feed(new Telnet(), splitAt(stream, randomSplits(random, stream.length)));
    assert.deepEqual(split, whole, `round ${round}`);
  }
});

Deno.test("encodeInput doubles every 0xFF", () => {
  const telnet = new Telnet();
  assert.deepEqual([...telnet.encodeInput(bytes(IAC, "a", IAC, IAC))], [
    ...bytes(IAC, IAC, "a", IAC, IAC, IAC, IAC),
  ]);
});

Deno.test("encodeInput sends a lone CR as CR LF by default", () => {
  const telnet = new Telnet();
  assert.deepEqual([...telnet.encodeInput(bytes(CR))], [CR, LF]);
  assert.deepEqual([...telnet.encodeInput(bytes("ls", CR, CR, "x"))], [
    ...bytes("ls", CR, LF, CR, LF, "x"),
  ]);
});

Deno.test("encodeInput sends a lone CR as CR NUL when crlf is false", () => {
  const telnet = new Telnet();
  assert.deepEqual([...telnet.encodeInput(bytes("a", CR, "b", CR), false)], [
    ...bytes("a", CR, 0, "b", CR, 0),
  ]);
});

Deno.test("encodeInput leaves CR LF alone", () => {
  const telnet = new Telnet();
  for (const crlf of [true, false]) {
    assert.deepEqual([...telnet.encodeInput(bytes("a", CR, LF, "b"), crlf)], [
      ...bytes("a", CR, LF, "b"),
    ]);
  }
});

Deno.test("encodeInput leaves other bytes, LF and NUL alone and returns a copy", () => {
  const telnet = new Telnet();
  const input = bytes("echo hi", LF, 0, 0x1b, "[A");
  const output = telnet.encodeInput(input);
  assert.deepEqual([...output], [...input]);
  output.fill(0);
  assert.deepEqual([...input], [...bytes("echo hi", LF, 0, 0x1b, "[A")]);
  assert.equal(telnet.encodeInput(new Uint8Array(0)).length, 0);
});

Deno.test("encodeInput with CR NUL round-trips through a server's decoding", () => {
  const random = prng(9);
  const telnet = new Telnet();
  for (let round = 0; round < 100; round++) {
    const input = randomData(random, 200);
    const encoded = telnet.encodeInput(input, false);
    // The server's view: IAC IAC is one 0xFF and CR NUL is CR.
    const decoded: number[] = [];
    for (let i = 0; i < encoded.length; i++) {
      const byte = encoded[i] ?? 0;
      decoded.push(byte);
      if (byte === IAC) {
        assert.equal(encoded[i + 1], IAC, `round ${round}: lone IAC at ${i}`);
        i++;
      } else if (byte === CR && encoded[i + 1] === 0) {
        i++;
      }
    }
    assert.deepEqual(decoded, [...input], `round ${round}`);
  }
});

Deno.test("encodeInput by default follows every CR with LF", () => {
  const random = prng(10);
  const telnet = new Telnet();
  for (let round = 0; round < 100; round++) {
    const encoded = telnet.encodeInput(randomData(random, 200));
    encoded.forEach((byte, i) => {
      if (byte === CR) assert.equal(encoded[i + 1], LF, `round ${round}: CR at ${i}`);
    });
  }
});

Deno.test("a snapshot restored into a new engine goes on exactly where the old one stopped", () => {
  // Negotiate ECHO and NAWS, then stop in the middle of a subnegotiation.
  const stream = Uint8Array.of(
    255,
    251,
    1, // IAC WILL ECHO
    255,
    253,
    31, // IAC DO NAWS
    104,
    105,
    13, // "hi" CR
    255,
    250,
    24,
    1, // IAC SB TTYPE SEND ...
  );
  const rest = Uint8Array.of(255, 240, 0, 111, 107); // ... IAC SE, NUL after CR, "ok"
  const whole = new Telnet();
  whole.receive(new Uint8Array([255, 253, 24])); // DO TTYPE first, in both
  const before = new Telnet();
  before.receive(new Uint8Array([255, 253, 24]));
  const expected = whole.receive(concatBytes([stream, rest]));
  const first = before.receive(stream);
  const after = new Telnet();
  after.restore(JSON.parse(JSON.stringify(before.snapshot())));
  const second = after.receive(rest);
  assert.deepEqual(concatBytes([first.display, second.display]), expected.display);
  assert.deepEqual(concatBytes([first.reply, second.reply]), expected.reply);
  assert.deepEqual(after.enabled, whole.enabled);
  assert.equal(after.remoteEcho, true);
});

Deno.test("restore refuses what is not a snapshot", () => {
  const telnet = new Telnet();
  for (
    const bad of [
      {},
      { ...new Telnet().snapshot(), parser: 99 },
      { ...new Telnet().snapshot(), remote: [256] },
      { ...new Telnet().snapshot(), sbData: new Array(2000).fill(0) },
    ]
  ) {
    assert.throws(() => telnet.restore(bad as never), TypeError);
  }
});
