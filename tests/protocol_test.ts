import assert from "node:assert/strict";
import {
  formatHello,
  formatReply,
  type Hello,
  parseHello,
  parseReply,
  ProtocolError,
  type Reply,
  UnknownDestinationError,
  UntrustedError,
} from "../lib/protocol.ts";

const ID = "AbC-123_xyz";
const SECRET = "0123456789abcdefghijkl"; // 22 chars, the shortest allowed

/** Asserts that parsing `line` as a hello throws ProtocolError "bad-request". */
function assertBadRequest(line: string): void {
  assert.throws(
    () => parseHello(line),
    (error: unknown) => {
      assert.ok(
        error instanceof ProtocolError,
        `expected a ProtocolError for ${JSON.stringify(line)}`,
      );
      assert.equal(error.code, "bad-request", `code for ${JSON.stringify(line)}`);
      assert.equal(error.offset, undefined);
      return true;
    },
  );
}

/** Asserts that `line` parses as a reply that throws ProtocolError `code` with `offset` and `message`. */
function assertErrReply(
  line: string,
  code: string,
  offset: number | undefined,
  message: string,
): void {
  assert.throws(
    () => parseReply(line),
    (error: unknown) => {
      assert.ok(error instanceof ProtocolError, `expected a ProtocolError for ${line}`);
      assert.equal(error.code, code);
      assert.equal(error.offset, offset);
      assert.equal(error.message, message);
      return true;
    },
  );
}

// parseHello: valid forms

Deno.test("parseHello reads NEW", () => {
  assert.deepEqual(parseHello("NEW"), { verb: "NEW" });
});

Deno.test("parseHello reads RESUME with id and secret, without an ack", () => {
  const hello = parseHello(`RESUME ${ID} ${SECRET}`);
  assert.deepEqual(hello, { verb: "RESUME", id: ID, secret: SECRET });
  assert.ok(!("ack" in hello));
});

Deno.test("parseHello reads RESUME with an ack", () => {
  assert.deepEqual(parseHello(`RESUME ${ID} ${SECRET} 42`), {
    verb: "RESUME",
    id: ID,
    secret: SECRET,
    ack: 42,
  });
});

Deno.test("parseHello reads ack 0 and the largest safe integer", () => {
  assert.deepEqual(parseHello(`RESUME ${ID} ${SECRET} 0`), {
    verb: "RESUME",
    id: ID,
    secret: SECRET,
    ack: 0,
  });
  const hello = parseHello(`RESUME ${ID} ${SECRET} ${Number.MAX_SAFE_INTEGER}`);
  assert.ok(hello.verb === "RESUME");
  assert.equal(hello.ack, Number.MAX_SAFE_INTEGER);
});

Deno.test("parseHello reads CLOSE with id and secret", () => {
  assert.deepEqual(parseHello(`CLOSE ${ID} ${SECRET}`), {
    verb: "CLOSE",
    id: ID,
    secret: SECRET,
  });
});

Deno.test("parseHello ignores a trailing CR", () => {
  assert.deepEqual(parseHello("NEW\r"), { verb: "NEW" });
  assert.deepEqual(parseHello(`RESUME ${ID} ${SECRET} 7\r`), {
    verb: "RESUME",
    id: ID,
    secret: SECRET,
    ack: 7,
  });
  assert.deepEqual(parseHello(`CLOSE ${ID} ${SECRET}\r`), {
    verb: "CLOSE",
    id: ID,
    secret: SECRET,
  });
});

Deno.test("parseHello accepts ids of 1 to 64 chars and secrets of 22 to 64 chars", () => {
  for (const [id, secret] of [["a", SECRET], ["i".repeat(64), "s".repeat(64)]] as const) {
    assert.deepEqual(parseHello(`CLOSE ${id} ${secret}`), { verb: "CLOSE", id, secret });
  }
});

// parseHello: invalid forms

Deno.test("parseHello rejects an empty line, with or without CR", () => {
  assertBadRequest("");
  assertBadRequest("\r");
});

Deno.test("parseHello rejects verbs in lower or mixed case", () => {
  assertBadRequest("new");
  assertBadRequest(`resume ${ID} ${SECRET}`);
  assertBadRequest(`Close ${ID} ${SECRET}`);
});

Deno.test("parseHello rejects unknown verbs", () => {
  assertBadRequest("HELLO");
  assertBadRequest(`ATTACH ${ID} ${SECRET}`);
  assertBadRequest("12345");
});

Deno.test("parseHello rejects an HTTP request line", () => {
  assertBadRequest("GET / HTTP/1.1");
  assertBadRequest("POST /session HTTP/1.1\r");
});

Deno.test("parseHello rejects extra fields", () => {
  assertBadRequest("NEW now");
  assertBadRequest(`RESUME ${ID} ${SECRET} 1 2`);
  assertBadRequest(`CLOSE ${ID} ${SECRET} 1`);
});

Deno.test("parseHello rejects missing fields", () => {
  assertBadRequest("RESUME");
  assertBadRequest(`RESUME ${ID}`);
  assertBadRequest("CLOSE");
  assertBadRequest(`CLOSE ${ID}`);
});

Deno.test("parseHello rejects double, leading and trailing spaces", () => {
  assertBadRequest(`RESUME  ${ID} ${SECRET}`);
  assertBadRequest(`RESUME ${ID}  ${SECRET}`);
  assertBadRequest(`RESUME ${ID} ${SECRET}  1`);
  assertBadRequest(`CLOSE ${ID}  ${SECRET}`);
  assertBadRequest(" NEW");
  assertBadRequest("NEW ");
  assertBadRequest(`RESUME ${ID} ${SECRET} `);
});

Deno.test("parseHello rejects an id longer than 64 chars", () => {
  assertBadRequest(`RESUME ${"i".repeat(65)} ${SECRET}`);
  assertBadRequest(`CLOSE ${"i".repeat(65)} ${SECRET}`);
});

Deno.test("parseHello rejects an id with characters outside [A-Za-z0-9_-]", () => {
  for (const id of ["a.b", "a+b", "a/b", "a=b", "a%20", "é"]) {
    assertBadRequest(`RESUME ${id} ${SECRET}`);
  }
});

Deno.test("parseHello rejects a secret shorter than 22 chars or longer than 64", () => {
  assertBadRequest(`RESUME ${ID} ${SECRET.slice(1)}`);
  assertBadRequest(`CLOSE ${ID} ${SECRET.slice(1)}`);
  assertBadRequest(`RESUME ${ID} ${"s".repeat(65)}`);
});

Deno.test("parseHello rejects a secret with characters outside [A-Za-z0-9_-]", () => {
  assertBadRequest(`RESUME ${ID} ${SECRET.slice(1)}+`);
  assertBadRequest(`CLOSE ${ID} ${SECRET.slice(1)}=`);
});

Deno.test("parseHello rejects an ack that is not a plain decimal", () => {
  for (const ack of ["abc", "0x10", "1.5", "1e3", "", "١"]) {
    assertBadRequest(`RESUME ${ID} ${SECRET} ${ack}`);
  }
});

Deno.test("parseHello rejects a negative ack or one with a sign", () => {
  assertBadRequest(`RESUME ${ID} ${SECRET} -1`);
  assertBadRequest(`RESUME ${ID} ${SECRET} +1`);
  assertBadRequest(`RESUME ${ID} ${SECRET} -0`);
});

Deno.test("parseHello rejects an ack of 2^53 or more", () => {
  assertBadRequest(`RESUME ${ID} ${SECRET} ${2 ** 53}`);
  assertBadRequest(`RESUME ${ID} ${SECRET} 9007199254740993`);
  assertBadRequest(`RESUME ${ID} ${SECRET} 99999999999999999`);
});

Deno.test("parseHello rejects non-printable bytes anywhere in the line", () => {
  assertBadRequest("\x00");
  assertBadRequest("NEW\x00");
  assertBadRequest("\xffNEW");
  assertBadRequest("NEW\t");
  assertBadRequest("NEW\r\r");
  assertBadRequest(`RESUME ${ID}\x7f ${SECRET}`);
  assertBadRequest(`RESUME\t${ID} ${SECRET}`);
});

// formatHello

Deno.test("formatHello writes one LF-terminated line", () => {
  assert.equal(formatHello({ verb: "NEW" }), "NEW\n");
  assert.equal(
    formatHello({ verb: "RESUME", id: ID, secret: SECRET, ack: 5 }),
    `RESUME ${ID} ${SECRET} 5\n`,
  );
  assert.equal(formatHello({ verb: "RESUME", id: ID, secret: SECRET }), `RESUME ${ID} ${SECRET}\n`);
  assert.equal(formatHello({ verb: "CLOSE", id: ID, secret: SECRET }), `CLOSE ${ID} ${SECRET}\n`);
});

Deno.test("formatHello output parses back to the same hello", () => {
  const hellos: Hello[] = [
    { verb: "NEW" },
    { verb: "RESUME", id: ID, secret: SECRET },
    { verb: "RESUME", id: ID, secret: SECRET, ack: 0 },
    { verb: "RESUME", id: "x", secret: "s".repeat(64), ack: Number.MAX_SAFE_INTEGER },
    { verb: "CLOSE", id: ID, secret: SECRET },
  ];
  for (const hello of hellos) {
    const line = formatHello(hello);
    assert.ok(line.endsWith("\n"));
    assert.deepEqual(parseHello(line.slice(0, -1)), hello);
  }
});

// formatReply and parseReply

Deno.test("formatReply writes the OK line", () => {
  const reply: Reply = { id: ID, secret: SECRET, in: 6, from: 3, pending: 3, state: "open" };
  assert.equal(formatReply(reply), `OK ${ID} ${SECRET} 6 3 3 open\n`);
});

Deno.test("formatReply output parses back to the same reply", () => {
  const replies: Reply[] = [
    { id: ID, secret: SECRET, in: 0, from: 0, pending: 0, state: "open" },
    { id: ID, secret: SECRET, in: 123, from: 4096, pending: 17, state: "closed" },
    {
      id: "i".repeat(64),
      secret: "s".repeat(64),
      in: Number.MAX_SAFE_INTEGER,
      from: Number.MAX_SAFE_INTEGER,
      pending: 1,
      state: "open",
    },
  ];
  for (const reply of replies) {
    assert.deepEqual(parseReply(formatReply(reply).slice(0, -1)), reply);
  }
});

Deno.test("parseReply ignores a trailing CR", () => {
  assert.deepEqual(parseReply(`OK ${ID} ${SECRET} 1 2 3 closed\r`), {
    id: ID,
    secret: SECRET,
    in: 1,
    from: 2,
    pending: 3,
    state: "closed",
  });
  assert.deepEqual(parseReply(`BYE ${ID}\r`), { bye: ID });
});

Deno.test("parseReply reads BYE with the session id", () => {
  assert.deepEqual(parseReply(`BYE ${ID}`), { bye: ID });
});

Deno.test("parseReply throws the ProtocolError of each ERR code without an offset", () => {
  for (const code of ["auth", "bad-request", "timeout", "unreachable", "busy", "untrusted"]) {
    assertErrReply(`ERR ${code} something went wrong`, code, undefined, "something went wrong");
  }
});

Deno.test("parseReply puts the offset of ERR gap in .offset", () => {
  assertErrReply(
    "ERR gap 4096 output before offset 4096 was released",
    "gap",
    4096,
    "output before offset 4096 was released",
  );
});

Deno.test("parseReply puts the offset of ERR ack in .offset", () => {
  assertErrReply(
    "ERR ack 10 ack is beyond what was sent",
    "ack",
    10,
    "ack is beyond what was sent",
  );
  assertErrReply("ERR ack 0 nothing sent yet\r", "ack", 0, "nothing sent yet");
});

Deno.test("parseReply reads back what ProtocolError.line() writes", () => {
  const errors = [
    new ProtocolError("gap", "output before offset 4096 was released", 4096),
    new ProtocolError("ack", "beyond", 0),
    new ProtocolError("auth", "unknown session or wrong secret"),
    new ProtocolError("busy", "too many sessions"),
  ];
  for (const error of errors) {
    assertErrReply(error.line().slice(0, -1), error.code, error.offset, error.message);
  }
});

Deno.test("parseReply throws SyntaxError for lines that are not replies", () => {
  const junk = [
    "",
    "\r",
    "HTTP/1.1 200 OK",
    "OK",
    `OK ${ID} ${SECRET} 0 0 0`,
    `OK ${ID} ${SECRET} 0 0 0 open extra`,
    `OK ${ID} ${SECRET} 0 0 0 half-open`,
    `OK ${ID} short 0 0 0 open`,
    `OK bad.id ${SECRET} 0 0 0 open`,
    `ok ${ID} ${SECRET} 0 0 0 open`,
    "BYE",
    `BYE ${ID} extra`,
    "BYE bad.id",
    "ERR",
    "ERR nope something",
    "ERR AUTH wrong secret",
  ];
  for (const line of junk) {
    assert.throws(() => parseReply(line), SyntaxError, `for ${JSON.stringify(line)}`);
  }
});

Deno.test("parseReply quotes only the first word of a junk line in its SyntaxError", () => {
  assert.throws(() => parseReply("x".repeat(200)), {
    name: "SyntaxError",
    message: `Not a socketproxy reply: "${"x".repeat(40)}..."`,
  });
  // A malformed OK line may carry a secret: it is not quoted.
  assert.throws(
    () => parseReply("OK abc TOPSECRETTOPSECRETTOPSECRET 0 0 0 open v2"),
    (error: unknown) => error instanceof SyntaxError && !error.message.includes("TOPSECRET"),
  );
});

// A malformed OK line must not read as an ERR bad-request from the server.
Deno.test("parseReply throws SyntaxError for an OK line with a malformed offset", () => {
  for (
    const line of [
      `OK ${ID} ${SECRET} x 0 0 open`,
      `OK ${ID} ${SECRET} 0 -1 0 open`,
      `OK ${ID} ${SECRET} 0 0 99999999999999999 open`,
    ]
  ) {
    assert.throws(
      () => parseReply(line),
      (error: unknown) => {
        assert.ok(
          error instanceof SyntaxError,
          `for ${JSON.stringify(line)}: expected a SyntaxError, got ${error}`,
        );
        return true;
      },
    );
  }
});

// ProtocolError

Deno.test("ProtocolError carries its code, message and offset", () => {
  const error = new ProtocolError("gap", "released", 12);
  assert.ok(error instanceof Error);
  assert.equal(error.name, "ProtocolError");
  assert.equal(error.code, "gap");
  assert.equal(error.message, "released");
  assert.equal(error.offset, 12);
});

Deno.test("ProtocolError.line() formats ERR with the code and text", () => {
  assert.equal(
    new ProtocolError("auth", "unknown session or wrong secret").line(),
    "ERR auth unknown session or wrong secret\n",
  );
});

Deno.test("ProtocolError.line() puts the offset between the code and the text", () => {
  assert.equal(
    new ProtocolError("gap", "output before offset 4096 was released", 4096).line(),
    "ERR gap 4096 output before offset 4096 was released\n",
  );
  assert.equal(new ProtocolError("ack", "nothing sent", 0).line(), "ERR ack 0 nothing sent\n");
});

Deno.test("ProtocolError.line() replaces non-printable characters with ?", () => {
  assert.equal(
    new ProtocolError("bad-request", "bad\nline\r\x00\tcafé\x7f").line(),
    "ERR bad-request bad?line???caf??\n",
  );
});

Deno.test("parseReply keeps the whole message of an ERR gap without an offset", () => {
  assert.throws(() => parseReply("ERR gap some text"), (error: unknown) => {
    assert.ok(error instanceof ProtocolError);
    assert.equal(error.offset, undefined);
    assert.equal(error.message, "some text");
    return true;
  });
});

Deno.test("NEW takes framed, to= and from= in any order, each once", () => {
  assert.deepEqual(parseHello("NEW to=mud"), { verb: "NEW", to: "mud" });
  assert.deepEqual(parseHello("NEW from=192.0.2.7:4000 to=game.main-2 framed"), {
    verb: "NEW",
    from: "192.0.2.7:4000",
    to: "game.main-2",
    framed: true,
  });
  for (
    const from of ["192.0.2.7", "[2001:db8::1]", "[2001:db8::1]:65535", "[::ffff:192.0.2.7]:1"]
  ) {
    assert.equal((parseHello(`NEW from=${from}`) as { from?: string }).from, from);
  }
  for (
    const line of [
      "NEW to=mud to=mud",
      "NEW framed framed",
      "NEW from=192.0.2.7 from=192.0.2.8",
      "NEW to=",
      "NEW to=" + "a".repeat(65),
      "NEW to=m/d",
      "NEW from=example.com",
      "NEW from=192.0.2.256",
      "NEW from=192.0.2.7:0",
      "NEW from=192.0.2.7:65536",
      "NEW from=192.0.2.7:04000",
      "NEW from=2001:db8::1",
      "NEW from=[192.0.2.7]",
      "NEW from=[2001:db8::1::2]",
      "NEW via=gateway",
      "NEW TO=mud",
      `RESUME ${ID} ${SECRET} 0 to=mud`,
      `CLOSE ${ID} ${SECRET} framed`,
    ]
  ) assertBadRequest(line);
});

Deno.test("formatHello writes NEW's options, and they read back", () => {
  const hello: Hello = { verb: "NEW", framed: true, to: "mud", from: "[2001:db8::1]:7" };
  assert.equal(formatHello(hello), "NEW framed to=mud from=[2001:db8::1]:7\n");
  assert.deepEqual(parseHello(formatHello(hello).slice(0, -1)), hello);
});

Deno.test("ERR untrusted and ERR unknown-destination <name> parse to their typed errors", () => {
  assert.throws(() => parseReply("ERR untrusted from= needs --trust-from"), UntrustedError);
  assert.throws(
    () => parseReply("ERR unknown-destination bbs no destination named bbs"),
    (error: unknown) => {
      assert.ok(error instanceof UnknownDestinationError);
      assert.equal(error.destination, "bbs");
      assert.equal(error.message, "no destination named bbs");
      return true;
    },
  );
  const written = new UnknownDestinationError("no destination named bbs", "bbs").line();
  assert.equal(written, "ERR unknown-destination bbs no destination named bbs\n");
});
