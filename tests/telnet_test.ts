/**
 * The telnet engine: negotiation answers, subnegotiations, data escaping and
 * a stream split anywhere parsing exactly like the whole stream; then the
 * options MUD servers negotiate (MTTS, CHARSET, EOR and GA, GMCP, MSDP,
 * MSSP), each against byte sequences written after its specification, and
 * the bounds that hold a hostile server's negotiation.
 *
 * The sequences follow the specifications as their authors wrote them: RFC
 * 854, 885, 1091, 1143 and 2066, and the MUD protocol pages at
 * tintin.mudhalla.net/protocols (MTTS, MSDP, MSSP, also collected at
 * mudstandards.org) and the GMCP page of Mudlet's wiki. They were written
 * from knowledge of those texts, not copied from a live page (the tests run
 * offline); the MSSP example is the spec's own handshake example.
 */

import assert from "node:assert/strict";
import {
  decodeText,
  encodeText,
  normalizeCharset,
  PAGE_EVENTS,
  pageEventName,
  Telnet,
  TELNET_OPTION,
  type TelnetEvent,
  type TelnetState,
} from "../web/telnet.ts";
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
const EOR = 25;
const NAWS = 31;
const CHARSET = 42;
const MSDP = 69;
const MSSP = 70;
const MCCP2 = 86;
const MCCP3 = 87;
const GMCP = 201;

/** IAC EOR (RFC 885): the command, not the option. */
const EOR_MARK = 239;

// RFC 2066.
const CHARSET_REQUEST = 1;
const CHARSET_ACCEPTED = 2;
const CHARSET_REJECTED = 3;
const CHARSET_TTABLE_IS = 4;
const CHARSET_TTABLE_REJECTED = 5;

// MSDP and MSSP.
const MSDP_VAR = 1;
const MSDP_VAL = 2;
const MSDP_TABLE_OPEN = 3;
const MSDP_TABLE_CLOSE = 4;
const MSDP_ARRAY_OPEN = 5;
const MSDP_ARRAY_CLOSE = 6;
const MSSP_VAR = 1;
const MSSP_VAL = 2;

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

/** What `feed` returns: display and reply bytes as plain arrays, and the events. */
interface Fed {
  display: number[];
  reply: number[];
  events: TelnetEvent[];
}

/**
 * Feeds `chunks` to `telnet` in order; returns all display and reply bytes
 * as plain arrays and all events, a prompt's `at` made an offset into the
 * whole display so that split and unsplit streams compare equal.
 */
function feed(telnet: Telnet, chunks: Uint8Array[]): Fed {
  const displays: Uint8Array[] = [];
  const replies: Uint8Array[] = [];
  const events: TelnetEvent[] = [];
  let shown = 0;
  for (const chunk of chunks) {
    const result = telnet.receive(chunk);
    displays.push(result.display);
    replies.push(result.reply);
    for (const event of result.events) {
      events.push(event.type === "prompt" ? { ...event, at: event.at + shown } : event);
    }
    shown += result.display.length;
  }
  return { display: [...concatBytes(displays)], reply: [...concatBytes(replies)], events };
}

/** Feeds one chunk to a new engine; returns its display and reply as plain arrays, and events. */
function receive(input: Uint8Array, telnet = new Telnet()): Fed {
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

Deno.test("the first TTYPE SEND is answered with TTYPE IS and the client name", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, TTYPE), telnet);
  const { display, reply } = receive(bytes(IAC, SB, TTYPE, 1, IAC, SE), telnet);
  assert.deepEqual(display, []);
  assert.deepEqual(reply, [...bytes(IAC, SB, TTYPE, 0, "SOCKETPROXY", IAC, SE)]);
});

Deno.test("TTYPE SEND is answered every time it is asked", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, TTYPE), telnet);
  for (let i = 0; i < 10; i++) {
    const { reply } = receive(bytes(IAC, SB, TTYPE, 1, IAC, SE), telnet);
    assert.deepEqual(reply.slice(0, 4), [IAC, SB, TTYPE, 0], `request ${i}`);
    assert.deepEqual(reply.slice(-2), [IAC, SE], `request ${i}`);
  }
});

Deno.test("without MTTS, TTYPE SEND is answered with the configured terminal type every time", () => {
  const telnet = new Telnet({ terminalType: "VT100", mtts: false });
  const { reply } = receive(bytes(IAC, DO, TTYPE, IAC, SB, TTYPE, 1, IAC, SE), telnet);
  assert.deepEqual(reply, [...bytes(IAC, WILL, TTYPE, IAC, SB, TTYPE, 0, "VT100", IAC, SE)]);
  for (let i = 0; i < 5; i++) {
    assert.deepEqual(
      receive(bytes(IAC, SB, TTYPE, 1, IAC, SE), telnet).reply,
      [...bytes(IAC, SB, TTYPE, 0, "VT100", IAC, SE)],
    );
  }
  assert.equal(telnet.mtts, 0);
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
  // 239 is EOR (RFC 885), a prompt mark, tested with the MUD options below.
  const { display, reply } = receive(bytes("a", IAC, 0, "b", IAC, 65, "c", IAC, 238, "d"));
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
  assert.deepEqual(reply, [...bytes(IAC, SB, TTYPE, 0, "SOCKETPROXY", IAC, SE, IAC, DO, ECHO)]);
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

// ---------------------------------------------------------------------------
// TTYPE with MTTS: tintin.mudhalla.net/protocols/mtts, on top of RFC 1091.

const TTYPE_SEND = bytes(IAC, SB, TTYPE, 1, IAC, SE);

/** TTYPE IS `name`, as the client sends it. */
function ttypeIs(name: string): number[] {
  return [...bytes(IAC, SB, TTYPE, 0, name, IAC, SE)];
}

/** An engine that has agreed to TTYPE. */
function ttypeEngine(options: ConstructorParameters<typeof Telnet>[0] = {}): Telnet {
  const telnet = new Telnet(options);
  receive(bytes(IAC, DO, TTYPE), telnet);
  return telnet;
}

Deno.test("MTTS: TTYPE answers the client name, the terminal type, then MTTS and MTTS again", () => {
  // MTTS: 1st SEND the client name, 2nd the terminal type, 3rd "MTTS <bits>";
  // RFC 1091: the last answer repeated says the list is over. The default
  // bits are ANSI (1) + UTF-8 (4) + 256 colours (8) + truecolor (256).
  const telnet = ttypeEngine();
  const answers = [1, 2, 3, 4].map(() => receive(TTYPE_SEND, telnet).reply);
  assert.deepEqual(answers, [
    ttypeIs("SOCKETPROXY"),
    ttypeIs("xterm-256color"),
    ttypeIs("MTTS 269"),
    ttypeIs("MTTS 269"),
  ]);
  assert.equal(telnet.mtts, 269);
});

Deno.test("MTTS: after the repeated MTTS answer the cycle starts over", () => {
  const telnet = ttypeEngine();
  const answers = Array.from({ length: 9 }, () => receive(TTYPE_SEND, telnet).reply);
  assert.deepEqual(answers[4], ttypeIs("SOCKETPROXY"));
  assert.deepEqual(answers[5], ttypeIs("xterm-256color"));
  assert.deepEqual(answers[8], ttypeIs("SOCKETPROXY"));
});

Deno.test("MTTS: DONT TTYPE then DO TTYPE restarts the cycle, as MUD servers do", () => {
  const telnet = ttypeEngine();
  receive(concatBytes([TTYPE_SEND, TTYPE_SEND]), telnet);
  const { reply } = receive(
    concatBytes([bytes(IAC, DONT, TTYPE, IAC, DO, TTYPE), TTYPE_SEND]),
    telnet,
  );
  assert.deepEqual(reply, [
    ...[IAC, WONT, TTYPE],
    ...[IAC, WILL, TTYPE],
    ...ttypeIs("SOCKETPROXY"),
  ]);
});

Deno.test("MTTS: the client name and terminal type are configurable", () => {
  const telnet = ttypeEngine({ clientName: "MY CLIENT", terminalType: "XTERM" });
  const answers = [1, 2, 3].map(() => receive(TTYPE_SEND, telnet).reply);
  assert.deepEqual(answers, [ttypeIs("MY CLIENT"), ttypeIs("XTERM"), ttypeIs("MTTS 269")]);
});

Deno.test("MTTS: the bits are the engine's options", () => {
  // Bit values from the MTTS spec: 1 ANSI, 2 VT100, 4 UTF-8, 8 256 colours,
  // 16 mouse tracking, 32 OSC colour palette, 64 screen reader, 128 proxy,
  // 256 truecolor.
  assert.equal(new Telnet({ mtts: { proxy: true } }).mtts, 269 + 128);
  assert.equal(
    new Telnet({ mtts: { ansi: false, utf8: false, colors256: false, truecolor: false } }).mtts,
    0,
  );
  const all = {
    ansi: true,
    vt100: true,
    utf8: true,
    colors256: true,
    mouseTracking: true,
    oscColorPalette: true,
    screenReader: true,
    proxy: true,
    truecolor: true,
  };
  assert.equal(new Telnet({ mtts: all }).mtts, 511);
  const telnet = ttypeEngine({ mtts: { proxy: true, vt100: true } });
  receive(concatBytes([TTYPE_SEND, TTYPE_SEND]), telnet);
  assert.deepEqual(receive(TTYPE_SEND, telnet).reply, ttypeIs("MTTS 399"));
});

Deno.test("MTTS: the UTF-8 bit follows the charset in force", () => {
  assert.equal(new Telnet({ charset: "cp437" }).mtts, 265);
  assert.equal(new Telnet({ charset: "latin1" }).mtts, 265);
  assert.equal(new Telnet({ charset: "latin1", mtts: { utf8: true } }).mtts, 269);
  // A Latin-1 engine that CHARSET switches to UTF-8 reports UTF-8 from then on.
  const telnet = new Telnet({ charset: "latin1" });
  receive(bytes(IAC, DO, CHARSET, IAC, SB, CHARSET, CHARSET_REQUEST, ";UTF-8", IAC, SE), telnet);
  assert.equal(telnet.mtts, 269);
});

Deno.test("the constructor rejects a client name that TTYPE cannot carry", () => {
  for (const clientName of ["", " LEADING", "TRAILING ", "caf\u00e9", "tab\there"]) {
    assert.throws(() => new Telnet({ clientName }), TypeError, clientName);
  }
});

// ---------------------------------------------------------------------------
// CHARSET: RFC 2066.

/** IAC SB CHARSET REQUEST `list` IAC SE, as a server sends it. */
function charsetRequest(...list: (number | string)[]): Uint8Array {
  return bytes(IAC, SB, CHARSET, CHARSET_REQUEST, ...list, IAC, SE);
}

/** IAC SB CHARSET ACCEPTED `name` IAC SE. */
function charsetAccepted(name: string): number[] {
  return [...bytes(IAC, SB, CHARSET, CHARSET_ACCEPTED, name, IAC, SE)];
}

const CHARSET_REJECTED_REPLY = [IAC, SB, CHARSET, CHARSET_REJECTED, IAC, SE];

Deno.test("CHARSET is agreed to in both directions (RFC 2066 section 2)", () => {
  const telnet = new Telnet();
  assert.deepEqual(receive(bytes(IAC, DO, CHARSET), telnet).reply, [IAC, WILL, CHARSET]);
  assert.deepEqual(receive(bytes(IAC, WILL, CHARSET), telnet).reply, [IAC, DO, CHARSET]);
  assert.deepEqual(telnet.enabled, { local: [CHARSET], remote: [CHARSET] });
});

Deno.test("CHARSET REQUEST offering UTF-8 is answered ACCEPTED UTF-8", () => {
  // RFC 2066 section 3: REQUEST <sep> <charset> [<sep> <charset> ...].
  const telnet = new Telnet();
  receive(bytes(IAC, DO, CHARSET), telnet);
  const { display, reply, events } = receive(charsetRequest(";ISO-8859-1;UTF-8"), telnet);
  assert.deepEqual(display, []);
  assert.deepEqual(reply, charsetAccepted("UTF-8"));
  assert.deepEqual(events, [], "already UTF-8: no change");
  assert.equal(telnet.charset, "utf-8");
});

Deno.test("CHARSET REQUEST takes any separator, names in any case, as offered", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, WILL, CHARSET), telnet);
  assert.deepEqual(
    receive(charsetRequest(" US-ASCII utf-8"), telnet).reply,
    charsetAccepted("utf-8"),
  );
  assert.deepEqual(receive(charsetRequest("|UTF8|"), telnet).reply, charsetAccepted("UTF8"));
});

Deno.test("CHARSET REQUEST skips a [TTABLE] offer and its version byte", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, CHARSET), telnet);
  const { reply } = receive(charsetRequest("[TTABLE]", 1, ";ISO-8859-1;UTF-8"), telnet);
  assert.deepEqual(reply, charsetAccepted("UTF-8"));
});

Deno.test("CHARSET REQUEST with nothing the engine has is answered REJECTED", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, CHARSET), telnet);
  assert.deepEqual(
    receive(charsetRequest(";KOI8-R;ISO-8859-5"), telnet).reply,
    CHARSET_REJECTED_REPLY,
  );
  // CP437 is only taken when the engine is set to it.
  assert.deepEqual(receive(charsetRequest(";CP437"), telnet).reply, CHARSET_REJECTED_REPLY);
  // A REQUEST with no list at all.
  assert.deepEqual(receive(charsetRequest(), telnet).reply, CHARSET_REJECTED_REPLY);
  assert.equal(telnet.charset, "utf-8");
});

Deno.test("a Latin-1 engine switches to UTF-8 when offered it, and says so", () => {
  const telnet = new Telnet({ charset: "latin1" });
  receive(bytes(IAC, DO, CHARSET), telnet);
  const { reply, events } = receive(charsetRequest(";ISO-8859-1;UTF-8"), telnet);
  assert.deepEqual(reply, charsetAccepted("UTF-8"));
  assert.deepEqual(events, [{ type: "charset", charset: "utf-8" }]);
  assert.equal(telnet.charset, "utf-8");
  assert.equal(telnet.decode(bytes("h\u00e9")), "h\u00e9");
});

Deno.test("a Latin-1 or CP437 engine keeps its charset when only that is offered", () => {
  const latin1 = new Telnet({ charset: "latin1" });
  receive(bytes(IAC, DO, CHARSET), latin1);
  assert.deepEqual(
    receive(charsetRequest(";ISO-8859-1"), latin1).reply,
    charsetAccepted("ISO-8859-1"),
  );
  assert.equal(latin1.charset, "latin1");
  const cp437 = new Telnet({ charset: "cp437" });
  receive(bytes(IAC, DO, CHARSET), cp437);
  assert.deepEqual(
    receive(charsetRequest(" IBM437 KOI8-R"), cp437).reply,
    charsetAccepted("IBM437"),
  );
  assert.equal(cp437.charset, "cp437");
});

Deno.test("CHARSET TTABLE-IS is answered TTABLE-REJECTED: the engine offers no tables", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, CHARSET), telnet);
  const { reply } = receive(bytes(IAC, SB, CHARSET, CHARSET_TTABLE_IS, 1, "x", IAC, SE), telnet);
  assert.deepEqual(reply, [IAC, SB, CHARSET, CHARSET_TTABLE_REJECTED, IAC, SE]);
});

Deno.test("CHARSET ACCEPTED and REJECTED from the server get no answer", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, CHARSET), telnet);
  const input = bytes(
    IAC,
    SB,
    CHARSET,
    CHARSET_ACCEPTED,
    "UTF-8",
    IAC,
    SE,
    IAC,
    SB,
    CHARSET,
    3,
    IAC,
    SE,
  );
  assert.deepEqual(receive(input, telnet).reply, []);
});

Deno.test("CHARSET REQUEST before CHARSET is agreed gets no answer", () => {
  assert.deepEqual(receive(charsetRequest(";UTF-8")).reply, []);
  const telnet = new Telnet();
  receive(bytes(IAC, DO, CHARSET, IAC, DONT, CHARSET), telnet);
  assert.deepEqual(receive(charsetRequest(";UTF-8"), telnet).reply, []);
});

Deno.test("an oversized CHARSET REQUEST is REJECTED, not guessed at", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, DO, CHARSET), telnet);
  const { reply } = receive(charsetRequest(";", "X".repeat(2000), ";UTF-8"), telnet);
  assert.deepEqual(reply, CHARSET_REJECTED_REPLY);
});

// The charsets themselves: what the page decodes with and encodes input in.

Deno.test("CP437 decodes by its table, with ASCII and control codes below 0x80", () => {
  assert.equal(
    decodeText(Uint8Array.of(0xc9, 0xcd, 0xcd, 0xbb), "cp437"),
    "\u2554\u2550\u2550\u2557",
  );
  assert.equal(
    decodeText(Uint8Array.of(0xb0, 0xb1, 0xb2, 0xdb), "cp437"),
    "\u2591\u2592\u2593\u2588",
  );
  assert.equal(
    decodeText(Uint8Array.of(0x80, 0xe1, 0xe6, 0xff), "cp437"),
    "\u00c7\u00df\u00b5\u00a0",
  );
  assert.equal(decodeText(bytes("\x1b[1;31mA\r\n"), "cp437"), "\x1b[1;31mA\r\n");
});

Deno.test("every byte round-trips through decodeText and encodeText in CP437 and Latin-1", () => {
  const all = Uint8Array.from({ length: 256 }, (_, byte) => byte);
  for (const charset of ["cp437", "latin1"] as const) {
    const text = decodeText(all, charset);
    assert.equal([...text].length, 256, charset);
    assert.deepEqual([...encodeText(text, charset)], [...all], charset);
  }
  // The table maps 128 bytes to 128 different characters.
  assert.equal(new Set(decodeText(all.subarray(0x80), "cp437")).size, 128);
});

Deno.test("Latin-1 decodes as TextDecoder('latin1') does, windows-1252 included", () => {
  const bytes1252 = Uint8Array.of(0x63, 0x61, 0x66, 0xe9, 0x20, 0x80, 0x99);
  assert.equal(decodeText(bytes1252, "latin1"), "caf\u00e9 \u20ac\u2122");
  assert.equal(decodeText(bytes1252, "latin1"), new TextDecoder("latin1").decode(bytes1252));
});

Deno.test("encodeText turns characters the charset lacks into ?", () => {
  assert.deepEqual([...encodeText("h\u00e9 \u2713 \u{1f600}", "latin1")], [
    ...bytes("h", 0xe9, " ? ?"),
  ]);
  assert.deepEqual([...encodeText("\u00e9\u2550\u20ac", "cp437")], [0x82, 0xcd, 0x3f]);
  assert.deepEqual([...encodeText("h\u00e9", "utf-8")], [...bytes("h\u00e9")]);
});

Deno.test("the engine's decode and encode follow its charset; UTF-8 decodes as a stream", () => {
  const cp437 = new Telnet({ charset: "cp437" });
  assert.equal(cp437.decode(Uint8Array.of(0xda, 0xc4, 0xbf)), "\u250c\u2500\u2510");
  assert.deepEqual([...cp437.encodeInput(cp437.encode("\u00e9\r"))], [0x82, CR, LF]);
  const utf8 = new Telnet();
  const check = bytes("\u2713"); // three bytes, split in two calls
  assert.equal(utf8.decode(check.subarray(0, 2)), "");
  assert.equal(utf8.decode(check.subarray(2)), "\u2713");
  assert.deepEqual([...utf8.encode("\u2713")], [...check]);
});

Deno.test("normalizeCharset knows the usual names and the constructor refuses others", () => {
  assert.equal(normalizeCharset("UTF-8"), "utf-8");
  assert.equal(normalizeCharset("utf8"), "utf-8");
  for (const name of ["ISO-8859-1", "iso_8859-1", "Latin1", "CP819", "WINDOWS-1252"]) {
    assert.equal(normalizeCharset(name), "latin1", name);
  }
  for (const name of ["CP437", "IBM437", "437"]) {
    assert.equal(normalizeCharset(name), "cp437", name);
  }
  assert.equal(normalizeCharset("KOI8-R"), undefined);
  assert.throws(() => new Telnet({ charset: "koi8-r" as never }), RangeError);
  assert.equal(new Telnet({ charset: "ISO-8859-1" as never }).charset, "latin1");
});

// ---------------------------------------------------------------------------
// EOR (RFC 885) and GA (RFC 854) as prompt marks.

Deno.test("WILL EOR is accepted with DO EOR; DO EOR is refused: the client sends no records", () => {
  const telnet = new Telnet();
  assert.deepEqual(receive(bytes(IAC, WILL, EOR), telnet).reply, [IAC, DO, EOR]);
  assert.deepEqual(receive(bytes(IAC, DO, EOR), telnet).reply, [IAC, WONT, EOR]);
  assert.deepEqual(telnet.enabled, { local: [], remote: [EOR] });
});

Deno.test("IAC EOR after a prompt says where the prompt ends", () => {
  // RFC 885: IAC EOR (239) ends a record; MUD servers end each prompt with it.
  const telnet = new Telnet();
  receive(bytes(IAC, WILL, EOR), telnet);
  const result = telnet.receive(bytes("You see a door.", CR, LF, "HP:100> ", IAC, EOR_MARK));
  assert.deepEqual([...result.display], [...bytes("You see a door.", CR, LF, "HP:100> ")]);
  assert.deepEqual(result.events, [{ type: "prompt", at: 25, mark: "eor" }]);
  assert.equal(new TextDecoder().decode(result.display.subarray(17, 25)), "HP:100> ");
});

Deno.test("IAC GA marks a prompt too, negotiated or not", () => {
  const { display, events } = receive(bytes("Name? ", IAC, GA, "more"));
  assert.deepEqual(display, [...bytes("Name? more")]);
  assert.deepEqual(events, [{ type: "prompt", at: 6, mark: "ga" }]);
});

Deno.test("a prompt mark's offset is in the display of the call that completes the mark", () => {
  const telnet = new Telnet();
  const first = telnet.receive(bytes("> ", IAC));
  assert.deepEqual(first.events, []);
  const second = telnet.receive(bytes(EOR_MARK, "x", IAC, GA));
  assert.deepEqual(second.events, [
    { type: "prompt", at: 0, mark: "eor" },
    { type: "prompt", at: 1, mark: "ga" },
  ]);
});

Deno.test("a prompt mark that ends a subnegotiation early still marks the prompt", () => {
  const { display, events } = receive(bytes(IAC, SB, 99, "lost", IAC, GA, "> "));
  assert.deepEqual(display, [...bytes("> ")]);
  assert.deepEqual(events, [{ type: "prompt", at: 0, mark: "ga" }]);
});

// ---------------------------------------------------------------------------
// GMCP (option 201), as Mudlet's wiki and IRE's GMCP document give it:
// IAC SB GMCP <Package.Message> [space <JSON>] IAC SE.

/** IAC SB GMCP `message` IAC SE. */
function gmcp(message: string): Uint8Array {
  return bytes(IAC, SB, GMCP, message, IAC, SE);
}

/** An engine the server has turned GMCP on for. */
function gmcpEngine(options: ConstructorParameters<typeof Telnet>[0] = {}): Telnet {
  const telnet = new Telnet(options);
  receive(bytes(IAC, WILL, GMCP), telnet);
  return telnet;
}

Deno.test("WILL GMCP is accepted with DO GMCP, then Core.Hello", () => {
  const telnet = new Telnet();
  const { reply, events } = receive(bytes(IAC, WILL, GMCP), telnet);
  assert.deepEqual(reply, [
    ...[IAC, DO, GMCP],
    ...gmcp('Core.Hello {"client":"SOCKETPROXY","version":"1.0"}'),
  ]);
  assert.deepEqual(events, [{ type: "option", option: GMCP, side: "remote", enabled: true }]);
  assert.deepEqual(receive(bytes(IAC, WILL, GMCP), telnet).reply, [], "no second hello");
});

Deno.test("Core.Supports.Set follows Core.Hello when the engine is given packages", () => {
  const telnet = new Telnet({
    clientName: "MYCLIENT",
    clientVersion: "2.1",
    gmcpSupports: ["Char 1", "Room 1"],
  });
  assert.deepEqual(receive(bytes(IAC, WILL, GMCP), telnet).reply, [
    ...[IAC, DO, GMCP],
    ...gmcp('Core.Hello {"client":"MYCLIENT","version":"2.1"}'),
    ...gmcp('Core.Supports.Set ["Char 1","Room 1"]'),
  ]);
});

Deno.test("DO GMCP is refused: the server sends WILL GMCP, never asks the client to", () => {
  assert.deepEqual(receive(bytes(IAC, DO, GMCP)).reply, [IAC, WONT, GMCP]);
});

Deno.test("a GMCP message is taken out of the stream and handed out with its JSON", () => {
  const telnet = gmcpEngine();
  const input = concatBytes([
    bytes("before "),
    gmcp('Char.Vitals { "hp": 100, "maxhp": 120, "name": "Gr\u00fcn" }'),
    bytes("after"),
  ]);
  const { display, reply, events } = receive(input, telnet);
  assert.deepEqual(display, [...bytes("before after")]);
  assert.deepEqual(reply, []);
  assert.deepEqual(events, [{
    type: "gmcp",
    package: "Char.Vitals",
    text: '{ "hp": 100, "maxhp": 120, "name": "Gr\u00fcn" }',
    data: { hp: 100, maxhp: 120, name: "Gr\u00fcn" },
  }]);
});

Deno.test("a GMCP message without data, or with data that is not JSON, comes with its text", () => {
  const telnet = gmcpEngine();
  const { events } = receive(
    concatBytes([gmcp("Core.Ping"), gmcp("Comm.Channel.Text hello there"), gmcp("Core.Goodbye ")]),
    telnet,
  );
  assert.deepEqual(events, [
    { type: "gmcp", package: "Core.Ping", text: "", data: undefined },
    { type: "gmcp", package: "Comm.Channel.Text", text: "hello there", data: undefined },
    { type: "gmcp", package: "Core.Goodbye", text: "", data: undefined },
  ]);
});

Deno.test("GMCP JSON scalars and arrays are data too", () => {
  const telnet = gmcpEngine();
  const { events } = receive(
    concatBytes([gmcp("Room.Players []"), gmcp('Char.Name "Bob"'), gmcp("Core.KeepAlive null")]),
    telnet,
  );
  assert.deepEqual(events.map((event) => event.type === "gmcp" && event.data), [[], "Bob", null]);
});

Deno.test("a GMCP message with no package name is dropped", () => {
  const telnet = gmcpEngine();
  assert.deepEqual(receive(concatBytes([gmcp(""), gmcp(" {}")]), telnet).events, []);
});

Deno.test("a GMCP message before GMCP is agreed, or after WONT GMCP, is dropped", () => {
  assert.deepEqual(receive(gmcp('Char.Vitals {"hp":1}')).events, []);
  const telnet = gmcpEngine();
  const { reply, events } = receive(
    concatBytes([bytes(IAC, WONT, GMCP), gmcp('Char.Vitals {"hp":1}')]),
    telnet,
  );
  assert.deepEqual(reply, [IAC, DONT, GMCP]);
  assert.deepEqual(events, [{ type: "option", option: GMCP, side: "remote", enabled: false }]);
});

Deno.test("a GMCP message over the size limit is dropped whole and the stream goes on", () => {
  const telnet = gmcpEngine({ maxMessage: 1024 });
  const long = gmcp(`Room.Info {"desc":"${"x".repeat(2000)}"}`);
  const { display, events } = receive(
    concatBytes([long, bytes("shown"), gmcp('Char.Vitals {"hp":5}')]),
    telnet,
  );
  assert.deepEqual(display, [...bytes("shown")]);
  assert.deepEqual(events, [{
    type: "gmcp",
    package: "Char.Vitals",
    text: '{"hp":5}',
    data: { hp: 5 },
  }]);
});

Deno.test("a GMCP message of exactly the size limit is delivered", () => {
  const telnet = gmcpEngine({ maxMessage: 1024 });
  const name = "Room.Info ";
  const message = name + JSON.stringify("y".repeat(1024 - name.length - 2));
  assert.equal(encoder.encode(message).length, 1024);
  assert.equal(receive(gmcp(message), telnet).events.length, 1);
  assert.equal(receive(gmcp(message + " "), telnet).events.length, 0);
});

Deno.test("an endless GMCP message holds no more than the limit", () => {
  const telnet = gmcpEngine({ maxMessage: 4096 });
  telnet.receive(bytes(IAC, SB, GMCP, "Room.Info "));
  const filler = new Uint8Array(100_000).fill(0x41);
  for (let i = 0; i < 10; i++) {
    const { display, reply, events } = telnet.receive(filler);
    assert.equal(display.length + reply.length + events.length, 0);
  }
  assert.equal(telnet.snapshot().sbData.length, 4096);
  const { display, events } = receive(bytes(IAC, SE, "ok"), telnet);
  assert.deepEqual(display, [...bytes("ok")]);
  assert.deepEqual(events, []);
});

Deno.test("the constructor refuses a message limit out of range", () => {
  for (const maxMessage of [0, 1023, 16 * 1024 * 1024 + 1, 2048.5, NaN]) {
    assert.throws(() => new Telnet({ maxMessage }), RangeError, String(maxMessage));
  }
});

Deno.test("sendGmcp builds IAC SB GMCP <package> <JSON> IAC SE once GMCP is on", () => {
  const telnet = new Telnet();
  assert.equal(telnet.sendGmcp("Core.Ping").length, 0, "GMCP still off");
  receive(bytes(IAC, WILL, GMCP), telnet);
  assert.deepEqual([...telnet.sendGmcp("Core.Ping")], [...gmcp("Core.Ping")]);
  assert.deepEqual(
    [...telnet.sendGmcp("Core.Supports.Set", ["Char 1", "Room 1"])],
    [...gmcp('Core.Supports.Set ["Char 1","Room 1"]')],
  );
  assert.deepEqual(
    [...telnet.sendGmcp("Comm.Channel.Text", { text: "h\u00e9" })],
    [...gmcp('Comm.Channel.Text {"text":"h\u00e9"}')],
  );
});

Deno.test("sendGmcp refuses a package name that is not printable ASCII without spaces", () => {
  const telnet = gmcpEngine();
  for (const name of ["", "Core Ping", "Caf\u00e9", "Core.\xff"]) {
    assert.throws(() => telnet.sendGmcp(name), TypeError, JSON.stringify(name));
  }
  assert.throws(() => telnet.sendGmcp("Core.X", 1n), TypeError);
});

// ---------------------------------------------------------------------------
// MSDP (option 69): tintin.mudhalla.net/protocols/msdp.

/** IAC SB MSDP `parts` IAC SE. */
function msdp(...parts: (number | string)[]): Uint8Array {
  return bytes(IAC, SB, MSDP, ...parts, IAC, SE);
}

/** An engine the server has turned MSDP on for. */
function msdpEngine(options: ConstructorParameters<typeof Telnet>[0] = {}): Telnet {
  const telnet = new Telnet(options);
  receive(bytes(IAC, WILL, MSDP), telnet);
  return telnet;
}

/** The variables of the only MSDP event `input` gives. */
function msdpVariables(telnet: Telnet, input: Uint8Array): unknown {
  const { events } = receive(input, telnet);
  assert.equal(events.length, 1, JSON.stringify(events));
  const [event] = events;
  assert.equal(event?.type, "msdp");
  return event?.type === "msdp" ? event.variables : undefined;
}

Deno.test("WILL MSDP is accepted with DO MSDP; DO MSDP is refused", () => {
  // MSDP: "IAC WILL MSDP indicates the server wants to enable MSDP"; the
  // client answers IAC DO MSDP.
  const telnet = new Telnet();
  assert.deepEqual(receive(bytes(IAC, WILL, MSDP), telnet).reply, [IAC, DO, MSDP]);
  assert.deepEqual(receive(bytes(IAC, DO, MSDP), telnet).reply, [IAC, WONT, MSDP]);
});

Deno.test("MSDP variables and values are handed out, several in one subnegotiation", () => {
  const telnet = msdpEngine();
  const input = msdp(MSDP_VAR, "HEALTH", MSDP_VAL, "100", MSDP_VAR, "HEALTH_MAX", MSDP_VAL, "120");
  const { display } = receive(concatBytes([bytes("a"), input, bytes("b")]), msdpEngine());
  assert.deepEqual(display, [...bytes("ab")]);
  assert.deepEqual(msdpVariables(telnet, input), { HEALTH: "100", HEALTH_MAX: "120" });
});

Deno.test("an MSDP array is decoded to an array", () => {
  // The spec's example of an array: the reportable variables.
  const telnet = msdpEngine();
  const input = msdp(
    ...[MSDP_VAR, "REPORTABLE_VARIABLES", MSDP_VAL, MSDP_ARRAY_OPEN],
    ...[MSDP_VAL, "HEALTH", MSDP_VAL, "HEALTH_MAX", MSDP_VAL, "MANA"],
    MSDP_ARRAY_CLOSE,
  );
  assert.deepEqual(msdpVariables(telnet, input), {
    REPORTABLE_VARIABLES: ["HEALTH", "HEALTH_MAX", "MANA"],
  });
});

Deno.test("an MSDP table, with a table inside it, is decoded to objects", () => {
  // The spec's example of a table: the room, its exits a table of their own.
  const telnet = msdpEngine();
  const input = msdp(
    ...[MSDP_VAR, "ROOM", MSDP_VAL, MSDP_TABLE_OPEN],
    ...[MSDP_VAR, "VNUM", MSDP_VAL, "6008"],
    ...[MSDP_VAR, "NAME", MSDP_VAL, "The forest clearing"],
    ...[MSDP_VAR, "AREA", MSDP_VAL, "Haon Dor"],
    ...[MSDP_VAR, "TERRAIN", MSDP_VAL, "forest"],
    ...[MSDP_VAR, "EXITS", MSDP_VAL, MSDP_TABLE_OPEN],
    ...[MSDP_VAR, "n", MSDP_VAL, "6011", MSDP_VAR, "e", MSDP_VAL, "6007"],
    ...[MSDP_TABLE_CLOSE, MSDP_TABLE_CLOSE],
  );
  assert.deepEqual(msdpVariables(telnet, input), {
    ROOM: {
      VNUM: "6008",
      NAME: "The forest clearing",
      AREA: "Haon Dor",
      TERRAIN: "forest",
      EXITS: { n: "6011", e: "6007" },
    },
  });
});

Deno.test("MSDP: several values after one variable are an array; none is an empty string", () => {
  const telnet = msdpEngine();
  const input = msdp(MSDP_VAR, "SEND", MSDP_VAL, "HEALTH", MSDP_VAL, "MANA", MSDP_VAR, "EMPTY");
  assert.deepEqual(msdpVariables(telnet, input), { SEND: ["HEALTH", "MANA"], EMPTY: "" });
});

Deno.test("MSDP text is decoded in the charset in force", () => {
  assert.deepEqual(
    msdpVariables(msdpEngine(), msdp(MSDP_VAR, "NAME", MSDP_VAL, "Gr\u00fcn")),
    { NAME: "Gr\u00fcn" },
  );
  assert.deepEqual(
    msdpVariables(
      msdpEngine({ charset: "latin1" }),
      msdp(MSDP_VAR, "NAME", MSDP_VAL, "Gr", 0xfc, "n"),
    ),
    { NAME: "Gr\u00fcn" },
  );
});

Deno.test("malformed MSDP is read as far as it makes sense", () => {
  const telnet = msdpEngine();
  // Stray bytes and a value before any variable, an unmatched closer, an
  // unclosed table at the end.
  const input = msdp(
    ...["junk", MSDP_VAL, "orphan", MSDP_TABLE_CLOSE, MSDP_ARRAY_CLOSE],
    ...[MSDP_VAR, "A", MSDP_VAL, "1"],
    ...[MSDP_VAR, "B", MSDP_VAL, MSDP_TABLE_OPEN, MSDP_VAR, "C", MSDP_VAL, "2"],
  );
  assert.deepEqual(msdpVariables(telnet, input), { A: "1", B: { C: "2" } });
});

Deno.test("an MSDP variable named __proto__ is an own key, not a prototype", () => {
  const telnet = msdpEngine();
  const variables = msdpVariables(
    telnet,
    msdp(
      MSDP_VAR,
      "__proto__",
      MSDP_VAL,
      MSDP_TABLE_OPEN,
      MSDP_VAR,
      "x",
      MSDP_VAL,
      "1",
      MSDP_TABLE_CLOSE,
    ),
  ) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(variables), Object.prototype);
  assert.deepEqual(Object.keys(variables), ["__proto__"]);
  assert.equal((variables as { x?: unknown }).x, undefined);
});

Deno.test("MSDP nested 32 deep is decoded; 33 deep, a hostile server's, is dropped", () => {
  function nested(depth: number): Uint8Array {
    const open = Array.from({ length: depth }, () => [MSDP_TABLE_OPEN, MSDP_VAR, "a", MSDP_VAL]);
    return msdp(
      MSDP_VAR,
      "X",
      MSDP_VAL,
      ...open.flat(),
      "v",
      ...new Array(depth).fill(MSDP_TABLE_CLOSE),
    );
  }
  const telnet = msdpEngine();
  let value = msdpVariables(telnet, nested(32)) as Record<string, unknown>;
  for (let i = 0; i <= 32; i++) {
    value = (value[i === 0 ? "X" : "a"] ?? {}) as Record<string, unknown>;
  }
  assert.equal(value, "v");
  assert.deepEqual(receive(nested(33), telnet).events, []);
  assert.deepEqual(receive(nested(5000), telnet).events, []);
});

Deno.test("an MSDP message over the size limit is dropped", () => {
  const telnet = msdpEngine({ maxMessage: 1024 });
  const { display, events } = receive(
    concatBytes([msdp(MSDP_VAR, "DESC", MSDP_VAL, "x".repeat(1100)), bytes("next")]),
    telnet,
  );
  assert.deepEqual(display, [...bytes("next")]);
  assert.deepEqual(events, []);
});

Deno.test("an MSDP message before MSDP is agreed is dropped", () => {
  assert.deepEqual(receive(msdp(MSDP_VAR, "HEALTH", MSDP_VAL, "1")).events, []);
});

Deno.test("sendMsdp builds the spec's client commands once MSDP is on", () => {
  const telnet = new Telnet();
  assert.equal(telnet.sendMsdp("LIST", "COMMANDS").length, 0, "MSDP still off");
  receive(bytes(IAC, WILL, MSDP), telnet);
  assert.deepEqual(
    [...telnet.sendMsdp("LIST", "COMMANDS")],
    [...msdp(MSDP_VAR, "LIST", MSDP_VAL, "COMMANDS")],
  );
  // Several names after REPORT: one MSDP_VAL each.
  assert.deepEqual(
    [...telnet.sendMsdp("REPORT", ["HEALTH", "MANA"])],
    [...msdp(MSDP_VAR, "REPORT", MSDP_VAL, "HEALTH", MSDP_VAL, "MANA")],
  );
  assert.deepEqual(
    [...telnet.sendMsdp("CONFIG", { A: "1", B: ["x", "y"] })],
    [
      ...msdp(
        ...[MSDP_VAR, "CONFIG", MSDP_VAL, MSDP_TABLE_OPEN, MSDP_VAR, "A", MSDP_VAL, "1"],
        ...[MSDP_VAR, "B", MSDP_VAL, MSDP_ARRAY_OPEN, MSDP_VAL, "x", MSDP_VAL, "y"],
        ...[MSDP_ARRAY_CLOSE, MSDP_TABLE_CLOSE],
      ),
    ],
  );
});

Deno.test("what sendMsdp builds decodes back to the same value", () => {
  const value = { NAME: "clearing", EXITS: { n: "6011" }, ITEMS: [["a", "b"], { k: "v" }] };
  const telnet = msdpEngine();
  const wire = telnet.sendMsdp("ROOM", value);
  assert.deepEqual(msdpVariables(msdpEngine(), wire), { ROOM: value });
});

Deno.test("sendMsdp doubles 0xFF and refuses MSDP's reserved bytes", () => {
  const latin1 = msdpEngine({ charset: "latin1" });
  assert.deepEqual([...latin1.sendMsdp("X", "\u00ff")], [
    ...msdp(MSDP_VAR, "X", MSDP_VAL, IAC, IAC),
  ]);
  const telnet = msdpEngine();
  assert.throws(() => telnet.sendMsdp("A\x01B", "x"), TypeError);
  assert.throws(() => telnet.sendMsdp("A", "x\x06"), TypeError);
  assert.throws(() => telnet.sendMsdp("A", null as never), TypeError);
  let deep: unknown = "v";
  for (let i = 0; i < 40; i++) deep = { a: deep };
  assert.throws(() => telnet.sendMsdp("A", deep as never), RangeError);
});

// ---------------------------------------------------------------------------
// MSSP (option 70): tintin.mudhalla.net/protocols/mssp.

/** IAC SB MSSP `parts` IAC SE. */
function mssp(...parts: (number | string)[]): Uint8Array {
  return bytes(IAC, SB, MSSP, ...parts, IAC, SE);
}

Deno.test("MSSP: the spec's example handshake is answered and its variables handed out", () => {
  // server - IAC WILL MSSP
  // client - IAC DO MSSP
  // server - IAC SB MSSP MSSP_VAR "PLAYERS" MSSP_VAL "52" MSSP_VAR "UPTIME" MSSP_VAL "1234567890" IAC SE
  const telnet = new Telnet();
  assert.deepEqual(receive(bytes(IAC, WILL, MSSP), telnet).reply, [IAC, DO, MSSP]);
  const { display, reply, events } = receive(
    mssp(MSSP_VAR, "PLAYERS", MSSP_VAL, "52", MSSP_VAR, "UPTIME", MSSP_VAL, "1234567890"),
    telnet,
  );
  assert.deepEqual(display, []);
  assert.deepEqual(reply, []);
  assert.deepEqual(events, [{ type: "mssp", variables: { PLAYERS: "52", UPTIME: "1234567890" } }]);
});

Deno.test("MSSP: several values after one variable are an array, none an empty string", () => {
  const telnet = new Telnet();
  receive(bytes(IAC, WILL, MSSP), telnet);
  const { events } = receive(
    mssp(
      ...[MSSP_VAR, "NAME", MSSP_VAL, "Test MUD"],
      ...[MSSP_VAR, "PORT", MSSP_VAL, "23", MSSP_VAL, "6023"],
      ...[MSSP_VAR, "CODEBASE", MSSP_VAL, ""],
      ...[MSSP_VAR, "EMPTY"],
    ),
    telnet,
  );
  assert.deepEqual(events, [{
    type: "mssp",
    variables: { NAME: "Test MUD", PORT: ["23", "6023"], CODEBASE: "", EMPTY: "" },
  }]);
});

Deno.test("MSSP before MSSP is agreed is dropped; DO MSSP is refused", () => {
  assert.deepEqual(receive(mssp(MSSP_VAR, "PLAYERS", MSSP_VAL, "1")).events, []);
  assert.deepEqual(receive(bytes(IAC, DO, MSSP)).reply, [IAC, WONT, MSSP]);
});

// ---------------------------------------------------------------------------
// What stays refused.

Deno.test("MCCP2 and MCCP3 are refused, so the stream is never compressed", () => {
  // MCCP2: the server sends WILL MCCP2 (86) and starts compressing after
  // IAC SB MCCP2 IAC SE only once the client said DO; MCCP3 (87) likewise.
  for (const option of [MCCP2, MCCP3]) {
    const telnet = new Telnet();
    assert.deepEqual(receive(bytes(IAC, WILL, option), telnet).reply, [IAC, DONT, option]);
    assert.deepEqual(receive(bytes(IAC, DO, option), telnet).reply, [IAC, WONT, option]);
    // A server that starts compressing anyway: its marker is dropped, the rest shown as is.
    const { display } = receive(bytes(IAC, SB, option, IAC, SE, "plain"), telnet);
    assert.deepEqual(display, [...bytes("plain")]);
    assert.deepEqual(telnet.enabled, { local: [], remote: [] });
  }
  assert.equal(TELNET_OPTION.MCCP2, MCCP2);
  assert.equal(TELNET_OPTION.MCCP3, MCCP3);
});

Deno.test("the other MUD options are refused: MXP, MSP, ATCP, ZMP, NEW-ENVIRON, 102, BINARY", () => {
  for (const option of [91, 90, 200, 93, 39, 102, BINARY]) {
    const telnet = new Telnet();
    assert.deepEqual(
      receive(bytes(IAC, WILL, option), telnet).reply,
      [IAC, DONT, option],
      `${option}`,
    );
    assert.deepEqual(
      receive(bytes(IAC, DO, option), telnet).reply,
      [IAC, WONT, option],
      `${option}`,
    );
    assert.deepEqual(telnet.enabled, { local: [], remote: [] });
  }
});

Deno.test("a server that toggles the MUD options gets one answer per change, never a loop", () => {
  // RFC 1143: a request that changes nothing is not answered.
  const telnet = new Telnet();
  const toggles: number[] = [];
  for (let i = 0; i < 100; i++) {
    for (const option of [GMCP, MSDP, MSSP, EOR, CHARSET]) {
      toggles.push(IAC, WILL, option, IAC, WILL, option, IAC, WONT, option, IAC, WONT, option);
    }
  }
  const { reply } = receive(Uint8Array.from(toggles), telnet);
  const hello = gmcp('Core.Hello {"client":"SOCKETPROXY","version":"1.0"}').length;
  // Each round: DO and DONT for each of the five options, and GMCP's hello.
  assert.equal(reply.length, 100 * (5 * 6 + hello));
  assert.deepEqual(telnet.enabled, { local: [], remote: [] });
});

// ---------------------------------------------------------------------------
// Events for the page.

Deno.test("the page event names are socketproxy:gmcp, msdp, mssp and prompt", () => {
  assert.deepEqual(PAGE_EVENTS, {
    gmcp: "socketproxy:gmcp",
    msdp: "socketproxy:msdp",
    mssp: "socketproxy:mssp",
    prompt: "socketproxy:prompt",
  });
  assert.equal(
    pageEventName({ type: "gmcp", package: "A", text: "", data: undefined }),
    "socketproxy:gmcp",
  );
  assert.equal(pageEventName({ type: "msdp", variables: {} }), "socketproxy:msdp");
  assert.equal(pageEventName({ type: "mssp", variables: {} }), "socketproxy:mssp");
  assert.equal(pageEventName({ type: "prompt", at: 0, mark: "eor" }), "socketproxy:prompt");
  assert.equal(pageEventName({ type: "charset", charset: "utf-8" }), undefined);
  assert.equal(
    pageEventName({ type: "option", option: GMCP, side: "remote", enabled: true }),
    undefined,
  );
});

Deno.test("events survive structured cloning, as postMessage needs", () => {
  const telnet = gmcpEngine();
  receive(bytes(IAC, WILL, MSDP, IAC, WILL, MSSP), telnet);
  const { events } = receive(
    concatBytes([
      gmcp('Char.Vitals {"hp":1}'),
      msdp(
        MSDP_VAR,
        "ROOM",
        MSDP_VAL,
        MSDP_TABLE_OPEN,
        MSDP_VAR,
        "VNUM",
        MSDP_VAL,
        "1",
        MSDP_TABLE_CLOSE,
      ),
      mssp(MSSP_VAR, "NAME", MSSP_VAL, "x"),
      bytes("> ", IAC, GA),
    ]),
    telnet,
  );
  assert.equal(events.length, 4);
  assert.deepEqual(structuredClone(events), events);
});

Deno.test("option events report every change of state, and only changes", () => {
  const { events } = receive(
    bytes(IAC, WILL, ECHO, IAC, WILL, ECHO, IAC, DO, NAWS, IAC, WONT, ECHO, IAC, DO, BINARY),
  );
  assert.deepEqual(events, [
    { type: "option", option: ECHO, side: "remote", enabled: true },
    { type: "option", option: NAWS, side: "local", enabled: true },
    { type: "option", option: ECHO, side: "remote", enabled: false },
  ]);
});

// ---------------------------------------------------------------------------
// A MUD's whole opening, split anywhere, and kept across a reload.

const MUD = concatBytes([
  bytes(IAC, WILL, GMCP, IAC, WILL, MSDP, IAC, WILL, MSSP, IAC, WILL, EOR, IAC, WILL, ECHO),
  bytes(IAC, DO, CHARSET, IAC, DO, TTYPE, IAC, DO, NAWS, IAC, WILL, 86),
  charsetRequest(";ISO-8859-1;UTF-8"),
  TTYPE_SEND,
  TTYPE_SEND,
  TTYPE_SEND,
  bytes("Welcome, h\u00e9ros ", IAC, IAC, CR, 0, CR, LF),
  gmcp('Char.Vitals {"hp":100,"mp":50}'),
  msdp(
    MSDP_VAR,
    "ROOM",
    MSDP_VAL,
    MSDP_TABLE_OPEN,
    MSDP_VAR,
    "VNUM",
    MSDP_VAL,
    "6008",
    MSDP_TABLE_CLOSE,
  ),
  mssp(MSSP_VAR, "NAME", MSSP_VAL, "Test MUD", MSSP_VAR, "PORT", MSSP_VAL, "23", MSSP_VAL, "6023"),
  bytes("HP:100> ", IAC, EOR_MARK, IAC, WONT, ECHO, "look", CR, LF, "> ", IAC, GA),
]);

Deno.test("a MUD's opening parses into display, replies and events", () => {
  const whole = receive(MUD);
  assert.deepEqual(whole.display, [
    ...bytes("Welcome, h\u00e9ros ", IAC, CR, CR, LF, "HP:100> look", CR, LF, "> "),
  ]);
  const kinds = whole.events.map((event) => event.type);
  assert.deepEqual(kinds.filter((kind) => kind !== "option"), [
    "gmcp",
    "msdp",
    "mssp",
    "prompt",
    "prompt",
  ]);
  const prompts = whole.events.filter((event) => event.type === "prompt");
  assert.deepEqual(prompts, [
    { type: "prompt", at: 28, mark: "eor" },
    { type: "prompt", at: 36, mark: "ga" },
  ]);
  const reply = String.fromCharCode(...whole.reply);
  for (
    const part of [
      [IAC, DO, GMCP],
      [IAC, DONT, 86],
      charsetAccepted("UTF-8"),
      ttypeIs("SOCKETPROXY"),
      ttypeIs("xterm-256color"),
      ttypeIs("MTTS 269"),
      [IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE],
      [IAC, DONT, ECHO],
    ]
  ) {
    assert.ok(reply.includes(String.fromCharCode(...part)), `reply has ${part}`);
  }
});

Deno.test("a MUD's opening split into two calls at every index parses like the whole", () => {
  const whole = receive(MUD);
  for (let i = 0; i <= MUD.length; i++) {
    assert.deepEqual(feed(new Telnet(), splitAt(MUD, [i])), whole, `split at ${i}`);
  }
});

Deno.test("a MUD's opening fed one byte per call parses like the whole", () => {
  const chunks = Array.from(MUD, (byte) => Uint8Array.of(byte));
  assert.deepEqual(feed(new Telnet(), chunks), receive(MUD));
});

Deno.test("a MUD's opening split at random, many times, parses like the whole", () => {
  const whole = receive(MUD);
  const random = prng(0x6d7564);
  for (let round = 0; round < 300; round++) {
    const split = feed(new Telnet(), splitAt(MUD, randomSplits(random, MUD.length)));
    assert.deepEqual(split, whole, `round ${round}`);
  }
});

Deno.test("a snapshot taken anywhere in a MUD's opening goes on in a new engine", () => {
  const whole = receive(MUD);
  for (let i = 0; i <= MUD.length; i++) {
    const before = new Telnet();
    const first = feed(before, [MUD.slice(0, i)]);
    const after = new Telnet();
    after.restore(JSON.parse(JSON.stringify(before.snapshot())));
    const second = feed(after, [MUD.slice(i)]);
    const shown = first.display.length;
    assert.deepEqual(
      {
        display: [...first.display, ...second.display],
        reply: [...first.reply, ...second.reply],
        events: [
          ...first.events,
          ...second.events.map((event) =>
            event.type === "prompt" ? { ...event, at: event.at + shown } : event
          ),
        ],
      },
      whole,
      `snapshot at ${i}`,
    );
    assert.equal(after.charset, before.charset);
  }
});

Deno.test("the TTYPE cycle and the charset are kept in a snapshot", () => {
  const telnet = new Telnet({ charset: "latin1" });
  receive(concatBytes([bytes(IAC, DO, TTYPE, IAC, DO, CHARSET), TTYPE_SEND]), telnet);
  receive(charsetRequest(";UTF-8"), telnet);
  const state = telnet.snapshot();
  assert.equal(state.ttype, 1);
  assert.equal(state.charset, "utf-8");
  const restored = new Telnet({ charset: "latin1" });
  restored.restore(state);
  assert.equal(restored.charset, "utf-8");
  assert.deepEqual(receive(TTYPE_SEND, restored).reply, ttypeIs("xterm-256color"));
});

Deno.test("a snapshot from before MUD options restores with their defaults", () => {
  // What an older page saved: no sbOverflow, ttype or charset.
  const old: TelnetState = {
    remote: [ECHO],
    local: [TTYPE, NAWS],
    parser: 0,
    verb: 0,
    afterCr: false,
    sbOption: -1,
    sbData: [],
  };
  const telnet = new Telnet({ charset: "cp437" });
  telnet.restore(old);
  assert.equal(telnet.remoteEcho, true);
  assert.equal(telnet.charset, "cp437");
  assert.deepEqual(receive(TTYPE_SEND, telnet).reply, ttypeIs("SOCKETPROXY"));
});

Deno.test("restore takes a GMCP message up to its limit and refuses more, or bad new fields", () => {
  const telnet = gmcpEngine({ maxMessage: 2048 });
  telnet.receive(bytes(IAC, SB, GMCP, "Room.Info ", "z".repeat(1500)));
  const state = telnet.snapshot();
  assert.equal(state.sbData.length, 1510);
  const restored = new Telnet({ maxMessage: 2048 });
  restored.restore(state);
  const { events } = receive(bytes(IAC, SE), restored);
  assert.deepEqual(events, [{
    type: "gmcp",
    package: "Room.Info",
    text: "z".repeat(1500),
    data: undefined,
  }]);
  for (
    const bad of [
      { ...state, sbData: new Array(2049).fill(65) },
      { ...state, remote: [], sbData: new Array(1500).fill(65) }, // GMCP off: 1 KiB only
      { ...state, charset: "koi8-r" },
      { ...state, charset: "UTF-8" },
      { ...state, ttype: 4 },
      { ...state, sbOverflow: "yes" },
      null,
    ]
  ) {
    assert.throws(() => new Telnet({ maxMessage: 2048 }).restore(bad as never), TypeError);
  }
});
