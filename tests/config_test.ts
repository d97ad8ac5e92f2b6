import assert from "node:assert/strict";
import {
  FETCH_BLOCKED_PORTS,
  parseCount,
  parseDuration,
  parseLogLevel,
  parseSize,
} from "../lib/commands/config.ts";
import { formatHostPort, type HostPort, parseHostPort } from "../lib/address.ts";
import { SERVER_DEFAULTS, type ServerConfig } from "../lib/proxy/config.ts";
import { UsageError } from "../lib/errors.ts";
import { parseServerArgs } from "../lib/commands/server.ts";

const DEFAULTS: HostPort = { hostname: "localhost", port: 9009 };

/** Asserts that `fn` throws a UsageError (exit status 2) whose message includes `fragment`. */
function assertUsageError(fn: () => unknown, fragment: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof UsageError, `expected a UsageError, got ${error}`);
    assert.equal(error.exitCode, 2);
    assert.ok(
      error.message.includes(fragment),
      `expected "${error.message}" to include "${fragment}"`,
    );
    return true;
  });
}

// parseHostPort

Deno.test("parseHostPort reads HOST:PORT", () => {
  assert.deepEqual(parseHostPort("example.com:23", "--x"), { hostname: "example.com", port: 23 });
});

Deno.test("parseHostPort takes the port from the defaults when only HOST is given", () => {
  assert.deepEqual(parseHostPort("0.0.0.0", "--x", { defaults: DEFAULTS }), {
    hostname: "0.0.0.0",
    port: 9009,
  });
});

Deno.test("parseHostPort takes the host from the defaults when only :PORT is given", () => {
  assert.deepEqual(parseHostPort(":7000", "--x", { defaults: DEFAULTS }), {
    hostname: "localhost",
    port: 7000,
  });
});

Deno.test("parseHostPort takes the port from the defaults for HOST: with an empty port", () => {
  assert.deepEqual(parseHostPort("example.com:", "--x", { defaults: DEFAULTS }), {
    hostname: "example.com",
    port: 9009,
  });
});

Deno.test("parseHostPort reads a bracketed IPv6 host with a port", () => {
  assert.deepEqual(parseHostPort("[::1]:8080", "--x"), { hostname: "::1", port: 8080 });
});

Deno.test("parseHostPort reads a bracketed IPv6 host alone, with the default port", () => {
  assert.deepEqual(parseHostPort("[::1]", "--x", { defaults: DEFAULTS }), {
    hostname: "::1",
    port: 9009,
  });
});

Deno.test("parseHostPort reads a bare IPv6 address as a host, never as HOST:PORT", () => {
  assert.deepEqual(parseHostPort("::1", "--x", { defaults: DEFAULTS }), {
    hostname: "::1",
    port: 9009,
  });
  assert.deepEqual(parseHostPort("fe80::1:2", "--x", { defaults: DEFAULTS }), {
    hostname: "fe80::1:2",
    port: 9009,
  });
});

Deno.test("parseHostPort applies the host and port defaults independently", () => {
  const defaults = { hostname: "default.host", port: 1234 };
  assert.deepEqual(parseHostPort("other.host", "--x", { defaults }), {
    hostname: "other.host",
    port: 1234,
  });
  assert.deepEqual(parseHostPort(":4321", "--x", { defaults }), {
    hostname: "default.host",
    port: 4321,
  });
  assert.deepEqual(parseHostPort("other.host:4321", "--x", { defaults }), {
    hostname: "other.host",
    port: 4321,
  });
});

Deno.test("parseHostPort rejects port 0 unless allowPortZero is set", () => {
  assertUsageError(() => parseHostPort("localhost:0", "--proxy"), '--proxy: invalid port "0"');
  assert.deepEqual(parseHostPort("localhost:0", "--proxy", { allowPortZero: true }), {
    hostname: "localhost",
    port: 0,
  });
});

Deno.test("parseHostPort accepts the extreme ports 1 and 65535", () => {
  assert.equal(parseHostPort("h:1", "--x").port, 1);
  assert.equal(parseHostPort("h:65535", "--x").port, 65535);
});

Deno.test("parseHostPort rejects ports that are out of range or not numbers", () => {
  for (const port of ["70000", "65536", "-1", "abc", "1.5", "123456", " 80"]) {
    assertUsageError(() => parseHostPort(`localhost:${port}`, "--dest"), "--dest: invalid port");
  }
  assertUsageError(() => parseHostPort("[::1]:99999", "--dest"), '--dest: invalid port "99999"');
});

Deno.test("parseHostPort rejects hosts with spaces or other invalid characters", () => {
  for (const text of ["my host:80", "host name", "bad/host:80", "[::1 x]:80", "h@st:80"]) {
    assertUsageError(
      () => parseHostPort(text, "--dest", { defaults: DEFAULTS }),
      "--dest: invalid host",
    );
  }
});

Deno.test("parseHostPort rejects empty text, even with defaults", () => {
  assertUsageError(() => parseHostPort("", "--dest"), "--dest: empty address");
  assertUsageError(() => parseHostPort("", "--dest", { defaults: DEFAULTS }), "empty address");
});

Deno.test("parseHostPort without defaults requires a port", () => {
  assertUsageError(() => parseHostPort("localhost", "DEST"), 'DEST: missing port in "localhost"');
  assertUsageError(() => parseHostPort("[::1]", "DEST"), "DEST: missing port");
  assertUsageError(() => parseHostPort("::1", "DEST"), "DEST: missing port");
});

Deno.test("parseHostPort without defaults requires a host", () => {
  assertUsageError(() => parseHostPort(":80", "DEST"), 'DEST: missing host in ":80"');
});

// formatHostPort

Deno.test("formatHostPort writes HOST:PORT for names and IPv4 addresses", () => {
  assert.equal(formatHostPort({ hostname: "localhost", port: 9009 }), "localhost:9009");
  assert.equal(formatHostPort({ hostname: "127.0.0.1", port: 0 }), "127.0.0.1:0");
});

Deno.test("formatHostPort brackets IPv6 hosts, and its output parses back", () => {
  const addr = { hostname: "::1", port: 9009 };
  assert.equal(formatHostPort(addr), "[::1]:9009");
  assert.deepEqual(parseHostPort(formatHostPort(addr), "--x"), addr);
});

// parseSize

Deno.test("parseSize reads a bare number as bytes", () => {
  assert.equal(parseSize("0", "--buffer"), 0);
  assert.equal(parseSize("1", "--buffer"), 1);
  assert.equal(parseSize("65536", "--buffer"), 65536);
});

Deno.test("parseSize reads k, m and g as binary multiples, in either case", () => {
  assert.equal(parseSize("64k", "--buffer"), 64 * 1024);
  assert.equal(parseSize("64K", "--buffer"), 64 * 1024);
  assert.equal(parseSize("2m", "--buffer"), 2 * 1024 ** 2);
  assert.equal(parseSize("2M", "--buffer"), 2 * 1024 ** 2);
  assert.equal(parseSize("3g", "--buffer"), 3 * 1024 ** 3);
  assert.equal(parseSize("3G", "--buffer"), 3 * 1024 ** 3);
});

Deno.test("parseSize rejects text that is not a whole size", () => {
  for (const text of ["1x", "-1", "", "1.5k", "k", "1 k", " 1", "1kk", "1e3", "0x10"]) {
    assertUsageError(() => parseSize(text, "--buffer"), `--buffer: cannot parse size "${text}"`);
  }
});

Deno.test("parseSize rejects a size too large to count exactly", () => {
  assertUsageError(() => parseSize("99999999999999999999", "--buffer"), "too large");
  assertUsageError(() => parseSize("9007199254740991g", "--buffer"), "--buffer: size");
});

// parseDuration

Deno.test("parseDuration reads ms, s, m and h", () => {
  assert.equal(parseDuration("250ms", "--t"), 250);
  assert.equal(parseDuration("10s", "--t"), 10_000);
  assert.equal(parseDuration("2m", "--t"), 120_000);
  assert.equal(parseDuration("1h", "--t"), 3_600_000);
});

Deno.test("parseDuration reads a bare number as seconds", () => {
  assert.equal(parseDuration("90", "--t"), 90_000);
});

Deno.test("parseDuration reads decimals", () => {
  assert.equal(parseDuration("1.5s", "--t"), 1500);
  assert.equal(parseDuration("1.5", "--t"), 1500);
  assert.equal(parseDuration("0.5m", "--t"), 30_000);
});

Deno.test("parseDuration reads zero", () => {
  assert.equal(parseDuration("0", "--t"), 0);
  assert.equal(parseDuration("0ms", "--t"), 0);
});

Deno.test("parseDuration rejects text that is not a duration", () => {
  for (const text of ["", "10x", "-1s", "s", ".5s", "1.s", "1 s", "1S", "1d", "1e3", "1s2"]) {
    assertUsageError(
      () => parseDuration(text, "--idle-timeout"),
      `--idle-timeout: cannot parse duration "${text}"`,
    );
  }
});

Deno.test("parseDuration accepts up to 2^31 - 1 ms and rejects anything longer", () => {
  assert.equal(parseDuration("2147483647ms", "--t"), 2 ** 31 - 1);
  assertUsageError(() => parseDuration("2147483648ms", "--t"), '--t: duration "2147483648ms"');
  assertUsageError(() => parseDuration("597h", "--t"), "too long");
  assertUsageError(() => parseDuration("1" + "0".repeat(400), "--t"), "too long");
});

// parseCount

Deno.test("parseCount reads whole numbers of at least the minimum", () => {
  assert.equal(parseCount("1", "--n", 1), 1);
  assert.equal(parseCount("10000", "--n", 1), 10000);
  assert.equal(parseCount("0", "--n", 0), 0);
});

Deno.test("parseCount rejects numbers below the minimum and text that is not a count", () => {
  for (const text of ["0", "", "-1", "1.5", "abc", " 1", "+1", "99999999999999999999"]) {
    assertUsageError(
      () => parseCount(text, "--max-sessions", 1),
      `--max-sessions: expected a whole number of at least 1, got "${text}"`,
    );
  }
});

// parseLogLevel

Deno.test("parseLogLevel accepts each log level", () => {
  for (const level of ["debug", "info", "warn", "error"]) {
    assert.equal(parseLogLevel(level, "--log-level"), level);
  }
});

Deno.test("parseLogLevel rejects unknown levels, including other cases", () => {
  for (const text of ["trace", "INFO", "", "warning"]) {
    assertUsageError(() => parseLogLevel(text, "--log-level"), `--log-level: unknown level`);
  }
});

// parseServerArgs

const DEST = "example.com:23";

/** Parses server arguments, failing the test on "help". */
function serverConfig(args: string[]): ServerConfig {
  const config = parseServerArgs(args);
  if (config === "help") assert.fail(`expected a configuration for ${args.join(" ")}`);
  return config;
}

Deno.test("parseServerArgs with only DEST uses the server defaults", () => {
  assert.deepEqual(serverConfig([DEST]), {
    ...SERVER_DEFAULTS,
    destination: { hostname: "example.com", port: 23 },
  });
});

Deno.test("parseServerArgs reads --proxy, defaulting the parts left out", () => {
  assert.deepEqual(serverConfig(["--proxy=0.0.0.0:7000", DEST]).proxy, {
    hostname: "0.0.0.0",
    port: 7000,
  });
  assert.deepEqual(serverConfig(["--proxy=:7000", DEST]).proxy, {
    hostname: "localhost",
    port: 7000,
  });
  assert.deepEqual(serverConfig(["--proxy", "0.0.0.0", DEST]).proxy, {
    hostname: "0.0.0.0",
    port: 9009,
  });
});

Deno.test("parseServerArgs accepts port 0 for --proxy", () => {
  assert.equal(serverConfig(["--proxy=:0", DEST]).proxy.port, 0);
});

Deno.test("parseServerArgs reads --admin, defaulting the parts left out", () => {
  assert.deepEqual(serverConfig(["--admin=127.0.0.1:9999", DEST]).admin, {
    hostname: "127.0.0.1",
    port: 9999,
  });
  assert.deepEqual(serverConfig(["--admin=:0", DEST]).admin, { hostname: "localhost", port: 0 });
  assert.deepEqual(serverConfig(["--admin=[::1]", DEST]).admin, { hostname: "::1", port: 9010 });
});

Deno.test("parseServerArgs disables the admin port with --admin=off", () => {
  assert.equal(serverConfig(["--admin=off", DEST]).admin, null);
});

Deno.test("parseServerArgs reads --buffer as a size", () => {
  assert.equal(serverConfig(["--buffer=64k", DEST]).bufferSize, 65536);
  assert.equal(serverConfig(["--buffer=1", DEST]).bufferSize, 1);
});

Deno.test("parseServerArgs reads --idle-timeout, where 0 means never", () => {
  assert.equal(serverConfig(["--idle-timeout=90", DEST]).idleTimeout, 90_000);
  assert.equal(serverConfig(["--idle-timeout=0", DEST]).idleTimeout, 0);
});

Deno.test("parseServerArgs reads --handshake-timeout and --connect-timeout", () => {
  const config = serverConfig(["--handshake-timeout=1.5s", "--connect-timeout=250ms", DEST]);
  assert.equal(config.handshakeTimeout, 1500);
  assert.equal(config.connectTimeout, 250);
});

Deno.test("parseServerArgs reads --max-sessions and --log-level", () => {
  const config = serverConfig(["--max-sessions=5", "--log-level=debug", DEST]);
  assert.equal(config.maxSessions, 5);
  assert.equal(config.logLevel, "debug");
});

Deno.test("parseServerArgs accepts flags after DEST", () => {
  assert.equal(serverConfig([DEST, "--buffer=2k"]).bufferSize, 2048);
});

Deno.test("parseServerArgs returns help for --help or -h, even without DEST", () => {
  assert.equal(parseServerArgs(["--help"]), "help");
  assert.equal(parseServerArgs(["-h"]), "help");
  assert.equal(parseServerArgs([DEST, "--help"]), "help");
});

Deno.test("parseServerArgs rejects a missing DEST", () => {
  assertUsageError(() => parseServerArgs([]), "missing DEST_HOST:DEST_PORT");
  assertUsageError(() => parseServerArgs(["--buffer=1k"]), "missing DEST_HOST:DEST_PORT");
});

Deno.test("parseServerArgs rejects a malformed DEST", () => {
  assertUsageError(() => parseServerArgs(["example.com"]), "DEST_HOST:DEST_PORT: missing port");
  assertUsageError(() => parseServerArgs(["example.com:0"]), "DEST_HOST:DEST_PORT: invalid port");
  assertUsageError(() => parseServerArgs(["bad host:1"]), "DEST_HOST:DEST_PORT: invalid host");
});

Deno.test("parseServerArgs rejects an extra positional argument", () => {
  assertUsageError(() => parseServerArgs([DEST, "other:1"]), 'got also "other:1"');
});

Deno.test("parseServerArgs rejects an unknown flag", () => {
  assertUsageError(() => parseServerArgs(["--bogus", DEST]), 'unknown option "--bogus"');
  assertUsageError(() => parseServerArgs(["-x", DEST]), 'unknown option "-x"');
});

Deno.test("parseServerArgs rejects a flag missing its value", () => {
  assertUsageError(() => parseServerArgs([DEST, "--buffer"]), "--buffer needs a value");
});

Deno.test("parseServerArgs rejects a value for --help", () => {
  assertUsageError(() => parseServerArgs(["--help=yes"]), "--help does not take a value");
});

Deno.test("parseServerArgs rejects a bad --proxy or --admin address", () => {
  assertUsageError(() => parseServerArgs(["--proxy=:99999", DEST]), "--proxy: invalid port");
  assertUsageError(() => parseServerArgs(["--admin=bad host", DEST]), "--admin: invalid host");
});

Deno.test("parseServerArgs rejects a bad --buffer size", () => {
  assertUsageError(
    () => parseServerArgs(["--buffer=1x", DEST]),
    '--buffer: cannot parse size "1x"',
  );
});

Deno.test("parseServerArgs rejects a zero --buffer", () => {
  assertUsageError(() => parseServerArgs(["--buffer=0", DEST]), "--buffer: must be at least 1");
  assertUsageError(() => parseServerArgs(["--buffer=0k", DEST]), "--buffer: must be at least 1");
});

Deno.test("parseServerArgs rejects a bad --idle-timeout", () => {
  assertUsageError(() => parseServerArgs(["--idle-timeout=soon", DEST]), "--idle-timeout:");
});

Deno.test("parseServerArgs rejects a zero --handshake-timeout", () => {
  assertUsageError(
    () => parseServerArgs(["--handshake-timeout=0", DEST]),
    "--handshake-timeout: must be more than 0",
  );
});

Deno.test("parseServerArgs rejects a zero --connect-timeout", () => {
  assertUsageError(
    () => parseServerArgs(["--connect-timeout=0ms", DEST]),
    "--connect-timeout: must be more than 0",
  );
});

Deno.test("parseServerArgs rejects a bad --max-sessions", () => {
  for (const text of ["0", "-1", "many"]) {
    assertUsageError(
      () => parseServerArgs([`--max-sessions=${text}`, DEST]),
      `--max-sessions: expected a whole number of at least 1, got "${text}"`,
    );
  }
});

Deno.test("parseServerArgs rejects a bad --log-level", () => {
  assertUsageError(
    () => parseServerArgs(["--log-level=verbose", DEST]),
    '--log-level: unknown level "verbose"',
  );
});

Deno.test("parseServerArgs refuses an --admin port that fetch refuses", () => {
  assertUsageError(
    () => parseServerArgs(["--admin=127.0.0.1:6000", "example.com:23"]),
    "--admin: port 6000 is one that fetch refuses (a browser-blocked port), " +
      "so status and close could not reach it; choose another",
  );
  assertUsageError(() => parseServerArgs(["--admin=:10080", "example.com:23"]), "port 10080");
  // Only the admin port speaks HTTP: the proxy port may be any port.
  const config = parseServerArgs(["--proxy=:6000", "--admin=:6001", "example.com:23"]);
  assert.ok(config !== "help");
  assert.deepEqual([config.proxy.port, config.admin?.port], [6000, 6001]);
});

Deno.test("FETCH_BLOCKED_PORTS are ports this runtime's fetch refuses", async () => {
  // A refused port fails before any connection is made: nothing is contacted.
  for (const port of FETCH_BLOCKED_PORTS) {
    await assert.rejects(
      fetch(`http://127.0.0.1:${port}/`),
      (error: unknown) => error instanceof TypeError && /are blocked/.test(error.message),
      `port ${port}`,
    );
  }
});

Deno.test("parseServerArgs checks the flags before DEST: a forgotten value is named", () => {
  // "h:1" is the value of --buffer, so the size is what is wrong.
  assertUsageError(() => parseServerArgs(["--buffer", "h:1"]), '--buffer: cannot parse size "h:1"');
  assertUsageError(() => parseServerArgs(["--buffer", "64k"]), "missing DEST_HOST:DEST_PORT");
});
