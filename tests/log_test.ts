import assert from "node:assert/strict";
import {
  describeError,
  formatJson,
  formatText,
  type LogFormat,
  Logger,
  type LogLevel,
  type LogRecord,
} from "../lib/log.ts";

const TIME = new Date(Date.UTC(2026, 10, 25, 10, 0, 0));
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** A logger whose lines and records are kept in arrays. */
function capture(
  level: LogLevel,
  format: LogFormat = "text",
): { logger: Logger; lines: string[]; records: LogRecord[] } {
  const lines: string[] = [];
  const records: LogRecord[] = [];
  const logger = new Logger({
    level,
    format,
    sink: (line, record) => {
      lines.push(line);
      records.push(record);
    },
  });
  return { logger, lines, records };
}

function record(fields: LogRecord["fields"], level: LogLevel = "info"): LogRecord {
  return { time: TIME, level, event: "session.created", fields };
}

// Levels

Deno.test("Logger suppresses debug lines at the info level", () => {
  const { logger, lines } = capture("info");
  logger.debug("quiet");
  logger.info("loud");
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? "", / INFO loud$/);
});

Deno.test("Logger writes every level at or above its threshold and none below", () => {
  const { logger, records } = capture("warn");
  logger.debug("a");
  logger.info("b");
  logger.warn("c");
  logger.error("d");
  logger.log("info", "e");
  logger.log("error", "f");
  assert.deepEqual(records.map((r) => `${r.level} ${r.event}`), ["warn c", "error d", "error f"]);
});

Deno.test("Logger defaults to the info level", () => {
  const lines: string[] = [];
  const logger = new Logger({ sink: (line) => lines.push(line) });
  logger.debug("quiet");
  logger.info("loud");
  assert.equal(lines.length, 1);
  assert.equal(logger.enabled("debug"), false);
  assert.equal(logger.enabled("info"), true);
});

Deno.test("Logger.enabled() tells which levels are written", () => {
  const expected: Record<LogLevel, LogLevel[]> = {
    debug: ["debug", "info", "warn", "error"],
    info: ["info", "warn", "error"],
    warn: ["warn", "error"],
    error: ["error"],
  };
  for (const [threshold, written] of Object.entries(expected)) {
    const { logger } = capture(threshold as LogLevel);
    const enabled = (["debug", "info", "warn", "error"] as const).filter((l) => logger.enabled(l));
    assert.deepEqual(enabled, written, `threshold ${threshold}`);
  }
});

Deno.test("Logger hands the sink the record along with its line", () => {
  const { logger, lines, records } = capture("debug");
  logger.warn("session.detached", { id: "abc", sent: 42 });
  assert.equal(records.length, 1);
  const [only] = records;
  assert.equal(only?.level, "warn");
  assert.equal(only?.event, "session.detached");
  assert.deepEqual(only?.fields, { id: "abc", sent: 42 });
  assert.equal(lines[0], formatText(only as LogRecord));
});

// Text format

Deno.test("the text format writes an ISO timestamp, the upper-case level and the event", () => {
  const { logger, lines, records } = capture("debug");
  logger.error("server.failed");
  const [timestamp, level, event, ...rest] = (lines[0] ?? "").split(" ");
  assert.match(timestamp ?? "", ISO_TIME);
  assert.equal(timestamp, records[0]?.time.toISOString());
  assert.equal(level, "ERROR");
  assert.equal(event, "server.failed");
  assert.deepEqual(rest, []);
});

Deno.test("the text format writes fields as key=value in order", () => {
  assert.equal(
    formatText(record({ id: "abc", peer: "127.0.0.1:5000", bytes: 42, open: true, why: null })),
    "2026-11-25T10:00:00.000Z INFO session.created id=abc peer=127.0.0.1:5000 bytes=42 open=true why=null",
  );
});

Deno.test("the text format JSON-quotes values with spaces, quotes, control or non-ASCII characters", () => {
  assert.equal(
    formatText(record({ a: "two words", b: 'say "hi"', c: "", d: "line\nbreak", e: "café" })),
    '2026-11-25T10:00:00.000Z INFO session.created a="two words" b="say \\"hi\\"" c="" ' +
      'd="line\\nbreak" e="café"',
  );
});

Deno.test("the text format keeps every event on one line", () => {
  const line = formatText(record({ message: "first\nsecond\r\nthird" }));
  assert.ok(!line.includes("\n") && !line.includes("\r"), line);
});

Deno.test("the text format leaves out undefined fields", () => {
  assert.equal(
    formatText(record({ id: "abc", gone: undefined, n: 0 }, "debug")),
    "2026-11-25T10:00:00.000Z DEBUG session.created id=abc n=0",
  );
});

// JSON format

Deno.test("the json format writes one parseable object per line", () => {
  const { logger, lines } = capture("info", "json");
  logger.info("session.created", { id: "abc", peer: "a b\nc" });
  logger.warn("session.closed", { id: "abc", reason: "idle" });
  assert.equal(lines.length, 2);
  for (const line of lines) {
    assert.ok(!line.includes("\n"));
    assert.equal(typeof JSON.parse(line), "object");
  }
  const { time, ...rest } = JSON.parse(lines[1] ?? "");
  assert.match(time, ISO_TIME);
  assert.deepEqual(rest, { level: "warn", event: "session.closed", id: "abc", reason: "idle" });
});

Deno.test("the json format puts time, level and event first, then the fields", () => {
  const line = formatJson(record({ id: "abc", bytes: 42, open: false, why: null }));
  const parsed = JSON.parse(line);
  assert.deepEqual(Object.keys(parsed), ["time", "level", "event", "id", "bytes", "open", "why"]);
  assert.deepEqual(parsed, {
    time: "2026-11-25T10:00:00.000Z",
    level: "info",
    event: "session.created",
    id: "abc",
    bytes: 42,
    open: false,
    why: null,
  });
});

Deno.test("the json format writes an ISO timestamp and the lower-case level", () => {
  const { logger, lines } = capture("debug", "json");
  logger.debug("tick");
  const parsed = JSON.parse(lines[0] ?? "");
  assert.match(parsed.time, ISO_TIME);
  assert.equal(parsed.level, "debug");
});

Deno.test("the json format leaves out undefined fields", () => {
  const parsed = JSON.parse(formatJson(record({ id: "abc", gone: undefined })));
  assert.ok(!("gone" in parsed));
  assert.equal(parsed.id, "abc");
});

// describeError

Deno.test("describeError gives an error's name and message", () => {
  assert.equal(describeError(new Error("boom")), "Error: boom");
  assert.equal(describeError(new RangeError("too far")), "RangeError: too far");
  assert.equal(
    describeError(new Deno.errors.ConnectionReset("Connection reset by peer (os error 104)")),
    "ConnectionReset: Connection reset by peer (os error 104)",
  );
});

Deno.test("describeError uses a custom error name", () => {
  class ProxyError extends Error {
    override name = "ProxyError";
  }
  assert.equal(describeError(new ProxyError("lost")), "ProxyError: lost");
});

Deno.test("describeError leaves out the stack", () => {
  const text = describeError(new Error("boom"));
  assert.ok(!text.includes("\n"), text);
  assert.ok(!text.includes(" at "), text);
});

Deno.test("describeError stringifies values that are not errors", () => {
  assert.equal(describeError("plain text"), "plain text");
  assert.equal(describeError(42), "42");
  assert.equal(describeError(undefined), "undefined");
  assert.equal(describeError(null), "null");
  assert.equal(describeError({ code: 1 }), "[object Object]");
});

Deno.test("formatJson never lets a field hide the record's time, level or event", () => {
  const line = formatJson({
    time: new Date(0),
    level: "info",
    event: "session.created",
    fields: { event: "spoofed", level: "error" },
  });
  const object = JSON.parse(line);
  assert.equal(object.event, "session.created");
  assert.equal(object.level, "info");
  assert.equal(object.field_event, "spoofed");
  assert.equal(object.field_level, "error");
});
