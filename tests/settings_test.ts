/**
 * The settings mechanism (lib/commands/settings.ts) through the commands'
 * own tables: each value from the first of flag, environment, `--config`
 * file and default; lists from the environment; the admin token from a
 * file; every typo (variable, section, key) an error naming where it is;
 * and `--check`'s report with where each value came from, secrets masked.
 */

import assert from "node:assert/strict";
import { UsageError } from "../lib/errors.ts";
import { parseServerArgs, SERVER_COMMAND, SERVER_USAGE } from "../lib/commands/server.ts";
import { parseWebArgs, WEB_COMMAND, WEB_USAGE } from "../lib/commands/web.ts";
import { parseDemoArgs } from "../lib/commands/demo.ts";
import { parseClientArgs } from "../lib/commands/client.ts";
import { STATUS_COMMAND, STATUS_USAGE } from "../lib/commands/status.ts";
import { CLOSE_USAGE } from "../lib/commands/close.ts";
import { DRAIN_USAGE } from "../lib/commands/drain.ts";
import { DEMO_USAGE } from "../lib/commands/demo.ts";
import { adminTarget } from "../lib/commands/admin_client.ts";
import {
  COMMAND_SECTIONS,
  environmentOf,
  resolveSettings,
  variableName,
} from "../lib/commands/settings.ts";
import { runMain } from "./_helpers.ts";

const DEST = "example.com:23";

/** Asserts that `fn` throws a UsageError (exit 2) whose message is `expected` or matches it. */
function assertUsageError(fn: () => unknown, expected: string | RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof UsageError, `expected a UsageError, got ${error}`);
    assert.equal(error.exitCode, 2);
    if (typeof expected === "string") assert.equal(error.message, expected);
    else assert.match(error.message, expected);
    assert.doesNotMatch(error.message, /\n/, "one line");
    return true;
  });
}

/** Writes `content` (JSON when not a string) to a temporary file and returns its path. */
function tempFile(content: unknown, suffix = ".json"): string {
  const path = Deno.makeTempFileSync({ prefix: "socketproxy-settings-", suffix });
  Deno.writeTextFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

/** Parses server arguments with only the given variables in the environment. */
function server(args: string[], variables: Record<string, string> = {}, listable = true) {
  const config = parseServerArgs(args, { env: environmentOf(variables, { listable }) });
  assert.ok(config !== "help");
  return config;
}

// Precedence

Deno.test("a variable named for the command sets a flag's value", () => {
  assert.equal(variableName("server", "idle-timeout"), "SOCKETPROXY_SERVER_IDLE_TIMEOUT");
  const config = server([DEST], {
    SOCKETPROXY_SERVER_BUFFER: "64k",
    SOCKETPROXY_SERVER_IDLE_TIMEOUT: "2m",
    SOCKETPROXY_SERVER_PROXY: ":7000",
  });
  assert.equal(config.bufferSize, 65536);
  assert.equal(config.idleTimeout, 120_000);
  assert.equal(config.proxy.port, 7000);
});

Deno.test("--proxy is the listen address of server and the target of web: each its own variable", () => {
  const env = environmentOf({
    SOCKETPROXY_SERVER_PROXY: "0.0.0.0:7000",
    SOCKETPROXY_WEB_PROXY: "10.1.2.3:7001",
  });
  const serverConfig = parseServerArgs([DEST], { env });
  const web = parseWebArgs([], { env });
  assert.ok(serverConfig !== "help" && web !== "help");
  assert.deepEqual(serverConfig.proxy, { hostname: "0.0.0.0", port: 7000 });
  assert.deepEqual(web.proxy, { hostname: "10.1.2.3", port: 7001 });
});

Deno.test("precedence: flag over environment over file over default", () => {
  const file = tempFile({
    server: { buffer: "1k", "idle-timeout": "5m", "max-sessions": 7, "log-level": "warn" },
  });
  try {
    const config = server([`--config=${file}`, "--buffer=4k", DEST], {
      SOCKETPROXY_SERVER_BUFFER: "2k",
      SOCKETPROXY_SERVER_IDLE_TIMEOUT: "6m",
    });
    assert.equal(config.bufferSize, 4096, "the flag");
    assert.equal(config.idleTimeout, 360_000, "the environment, over the file");
    assert.equal(config.maxSessions, 7, "the file, a JSON number");
    assert.equal(config.logLevel, "warn", "the file");
    assert.equal(config.connectTimeout, 10_000, "the default");
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test("the file comes from --config, SOCKETPROXY_<COMMAND>_CONFIG or SOCKETPROXY_CONFIG", () => {
  const one = tempFile({ server: { buffer: "1k" }, web: { listen: ":8001" } });
  const two = tempFile({ server: { buffer: "2k" } });
  try {
    assert.equal(server([DEST], { SOCKETPROXY_CONFIG: one }).bufferSize, 1024);
    assert.equal(
      server([DEST], { SOCKETPROXY_CONFIG: one, SOCKETPROXY_SERVER_CONFIG: two }).bufferSize,
      2048,
    );
    assert.equal(server([`--config=${one}`, DEST], { SOCKETPROXY_CONFIG: two }).bufferSize, 1024);
    const web = parseWebArgs([], { env: environmentOf({ SOCKETPROXY_CONFIG: one }) });
    assert.ok(web !== "help" && web.listen.port === 8001, "one file, a section per command");
  } finally {
    Deno.removeSync(one);
    Deno.removeSync(two);
  }
});

Deno.test("DEST_HOST:DEST_PORT can come from SOCKETPROXY_SERVER_DEST or the file's dest", () => {
  const file = tempFile({ server: { dest: "file.example:4000" } });
  try {
    assert.deepEqual(server([`--config=${file}`]).destination, {
      hostname: "file.example",
      port: 4000,
    });
    assert.equal(
      server([`--config=${file}`], { SOCKETPROXY_SERVER_DEST: "env.example:4001" }).destination
        ?.hostname,
      "env.example",
    );
    assert.equal(
      server([`--config=${file}`, "arg.example:4002"], { SOCKETPROXY_SERVER_DEST: "e:1" })
        .destination?.hostname,
      "arg.example",
    );
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test("--no-NAME turns off a switch that the environment or the file turned on", () => {
  const env = environmentOf({ SOCKETPROXY_WEB_TLS: "true" });
  const on = parseWebArgs([], { env });
  const off = parseWebArgs(["--no-tls"], { env });
  assert.ok(on !== "help" && off !== "help");
  assert.deepEqual(on.proxyTls, {});
  assert.equal(off.proxyTls, undefined);
  assertUsageError(
    () => parseWebArgs(["--no-listen"], { env }),
    'unknown option "--no-listen"',
  );
  assertUsageError(() => parseWebArgs(["--no-help"], { env }), 'unknown option "--no-help"');
  assertUsageError(
    () => parseWebArgs([], { env: environmentOf({ SOCKETPROXY_WEB_TLS: "maybe" }) }),
    'SOCKETPROXY_WEB_TLS: expected true or false, not "maybe"',
  );
});

// Lists

Deno.test("a repeatable flag's variable is a comma-separated list", () => {
  const web = parseWebArgs([], {
    env: environmentOf({
      SOCKETPROXY_WEB_ALLOW_HOST: "Play.example.com, .example.org",
      SOCKETPROXY_WEB_ALLOW_ORIGIN: "https://a.example,https://b.example",
    }),
  });
  assert.ok(web !== "help");
  assert.deepEqual(web.allowHosts, ["play.example.com", ".example.org"]);
  assert.deepEqual(web.allowOrigins, ["https://a.example", "https://b.example"]);
});

Deno.test("a list from the command line replaces the environment's, which replaces the file's", () => {
  const file = tempFile({ web: { "allow-host": ["file.example"] } });
  try {
    const env = (variables: Record<string, string>) =>
      environmentOf({ SOCKETPROXY_WEB_CONFIG: file, ...variables });
    const fromFile = parseWebArgs([], { env: env({}) });
    const fromEnv = parseWebArgs([], { env: env({ SOCKETPROXY_WEB_ALLOW_HOST: "env.example" }) });
    const fromFlags = parseWebArgs(["--allow-host=a.example", "--allow-host=b.example"], {
      env: env({ SOCKETPROXY_WEB_ALLOW_HOST: "env.example" }),
    });
    assert.ok(fromFile !== "help" && fromEnv !== "help" && fromFlags !== "help");
    assert.deepEqual(fromFile.allowHosts, ["file.example"]);
    assert.deepEqual(fromEnv.allowHosts, ["env.example"]);
    assert.deepEqual(fromFlags.allowHosts, ["a.example", "b.example"]);
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test("destinations from the environment keep their own send-proxy option", () => {
  const config = server([], {
    SOCKETPROXY_SERVER_DESTINATION: "bbs=bbs.example:23,test=127.0.0.1:4001,send-proxy=v1",
    SOCKETPROXY_SERVER_TRUST_FROM: "10.0.0.0/8,::1/128",
  });
  assert.deepEqual(
    config.destinations.map((named) => [named.name, named.addr.port, named.sendProxy]),
    [["bbs", 23, null], ["test", 4001, "v1"]],
  );
  assert.deepEqual(config.trustFrom, ["10.0.0.0/8", "::1/128"]);
});

// Errors name where the value came from

Deno.test("a bad value names the variable or the file and key it came from", () => {
  assertUsageError(
    () => server([DEST], { SOCKETPROXY_SERVER_BUFFER: "1x" }),
    /^SOCKETPROXY_SERVER_BUFFER: cannot parse size "1x"/,
  );
  const file = tempFile({ server: { "idle-timeout": "soon" } });
  try {
    assertUsageError(
      () => server([`--config=${file}`, DEST]),
      new RegExp(`^${file}: server\\.idle-timeout: cannot parse duration "soon"`),
    );
  } finally {
    Deno.removeSync(file);
  }
  assertUsageError(() => server(["--buffer=1x", DEST]), /^--buffer: cannot parse size "1x"/);
});

Deno.test("file errors name the file: missing, not JSON, not an object, a wrong type", () => {
  assertUsageError(
    () => server(["--config=/nonexistent/socketproxy.json", DEST]),
    '--config: cannot read "/nonexistent/socketproxy.json": no such file',
  );
  const cases: [unknown, string][] = [
    ['{"server": {"buffer": "1k",}}', "not valid JSON: Expected double-quoted property name"],
    ["[1, 2]", "expected a JSON object with a section per command"],
    [{ server: [] }, "server: expected an object of settings"],
    [{ server: { buffer: ["1k"] } }, "server.buffer: expected a string, not a list"],
    [{ server: { "allow-host": { a: 1 } } }, "server.allow-host: expected a string or a list"],
    [{ web: { tls: "yes" } }, 'web.tls: expected true or false, not "yes"'],
  ];
  for (const [content, message] of cases) {
    const file = tempFile(content);
    try {
      const run = () =>
        JSON.stringify(content).includes("web")
          ? parseWebArgs([`--config=${file}`])
          : server([`--config=${file}`, DEST]);
      assertUsageError(run, new RegExp(`^${file}: ${message.replace(/[.[\]()]/g, "\\$&")}`));
    } finally {
      Deno.removeSync(file);
    }
  }
});

Deno.test("an unknown key or section in the file is an error, with the likely meant one", () => {
  const key = tempFile({ server: { bufer: "1k" } });
  const section = tempFile({ sever: { buffer: "1k" } });
  try {
    assertUsageError(
      () => server([`--config=${key}`, DEST]),
      `${key}: server: unknown setting "bufer" (did you mean "buffer"?)`,
    );
    assertUsageError(
      () => server([`--config=${section}`, DEST]),
      `${section}: unknown section "sever": expected ${
        COMMAND_SECTIONS.join(", ")
      } (did you mean "server"?)`,
    );
  } finally {
    Deno.removeSync(key);
    Deno.removeSync(section);
  }
});

Deno.test("--help reads neither the environment nor the file", () => {
  assert.equal(
    parseServerArgs(["--help", "--config=/nonexistent.json"], {
      env: environmentOf({ SOCKETPROXY_SERVER_BUFER: "1" }),
    }),
    "help",
  );
});

// Unknown variables

Deno.test("an unknown SOCKETPROXY_<COMMAND>_* variable is an error, listed or not", () => {
  for (const listable of [true, false]) {
    assertUsageError(
      () => server([DEST], { SOCKETPROXY_SERVER_BUFER: "1k" }, listable),
      'unknown variable "SOCKETPROXY_SERVER_BUFER": socketproxy server has no such setting ' +
        '(did you mean "SOCKETPROXY_SERVER_BUFFER"?)',
    );
    assertUsageError(
      () => server([DEST], { SOCKETPROXY_SERVER_IDLETIMEOUT: "1m" }, listable),
      /"SOCKETPROXY_SERVER_IDLETIMEOUT".*did you mean "SOCKETPROXY_SERVER_IDLE_TIMEOUT"/,
    );
    assertUsageError(
      () => server([DEST], { SOCKETPROXY_SERVER_buffer: "1k" }, listable),
      /unknown variable "SOCKETPROXY_SERVER_buffer"/,
    );
  }
  // Where the environment can be listed, any unknown name under the prefix is caught.
  assertUsageError(
    () => server([DEST], { SOCKETPROXY_SERVER_COLOUR: "blue" }),
    'unknown variable "SOCKETPROXY_SERVER_COLOUR": socketproxy server has no such setting',
  );
  // Other commands' variables, and others under SOCKETPROXY_, are not this command's business.
  const config = server([DEST], {
    SOCKETPROXY_WEB_LISTEN: ":1",
    SOCKETPROXY_SCREENSHOT: "x.png",
    SOCKETPROXY_ADMIN_TOKEN: "t0ken",
  });
  assert.equal(config.adminToken, "t0ken");
});

// The admin token

Deno.test("the admin token: flag, command variable, SOCKETPROXY_ADMIN_TOKEN, file, in that order", () => {
  const tokenFile = tempFile("from-a-file\n", ".token");
  try {
    assert.equal(server([DEST], { SOCKETPROXY_ADMIN_TOKEN: "shared" }).adminToken, "shared");
    assert.equal(
      server([DEST], {
        SOCKETPROXY_ADMIN_TOKEN: "shared",
        SOCKETPROXY_SERVER_ADMIN_TOKEN: "own",
      }).adminToken,
      "own",
    );
    assert.equal(
      server([`--admin-token-file=${tokenFile}`, DEST], { SOCKETPROXY_ADMIN_TOKEN: "shared" })
        .adminToken,
      "from-a-file",
      "the file's token, its newline dropped",
    );
    assert.equal(
      server([DEST], {
        SOCKETPROXY_ADMIN_TOKEN: "shared",
        SOCKETPROXY_SERVER_ADMIN_TOKEN_FILE: tokenFile,
      }).adminToken,
      "from-a-file",
    );
    assert.equal(
      server(["--admin-token=flag", DEST], { SOCKETPROXY_SERVER_ADMIN_TOKEN_FILE: tokenFile })
        .adminToken,
      "flag",
    );
    const status = resolveSettings(STATUS_COMMAND, [`--admin-token-file=${tokenFile}`], {
      env: environmentOf({}),
    });
    assert.equal(adminTarget(status).token, "from-a-file", "status and close read it too");
  } finally {
    Deno.removeSync(tokenFile);
  }
});

Deno.test("the admin token file: missing, empty, not a token, or given twice is one clear error", () => {
  const empty = tempFile("\n", ".token");
  const spaced = tempFile("two words\n", ".token");
  try {
    assertUsageError(
      () => server(["--admin-token-file=/nonexistent/token", DEST]),
      '--admin-token-file: cannot read "/nonexistent/token": no such file',
    );
    assertUsageError(
      () => server([`--admin-token-file=${empty}`, DEST]),
      `--admin-token-file: "${empty}" is empty`,
    );
    assertUsageError(
      () => server([`--admin-token-file=${spaced}`, DEST]),
      "--admin-token-file: the token must be printable ASCII without spaces",
    );
    assertUsageError(
      () => server(["--admin-token=a", `--admin-token-file=${spaced}`, DEST]),
      "--admin-token and --admin-token-file both give the admin-token: give one",
    );
  } finally {
    Deno.removeSync(empty);
    Deno.removeSync(spaced);
  }
});

// --check's report

Deno.test("--check's report gives each value and where it came from, secrets masked", () => {
  const file = tempFile({ server: { "max-sessions": 50 } });
  try {
    const settings = resolveSettings(SERVER_COMMAND, ["--check", `--config=${file}`, DEST], {
      env: environmentOf({
        SOCKETPROXY_SERVER_BUFFER: "64k",
        SOCKETPROXY_ADMIN_TOKEN: "very-secret-token",
      }),
    });
    assert.ok(settings.check);
    const report = settings.report();
    const row = (name: string): string[] =>
      report.split("\n").find((line) => line.startsWith(`${name} `))?.split(/\s{2,}/) ?? [];
    assert.deepEqual(row("dest"), ["dest", DEST, "argument DEST_HOST:DEST_PORT"]);
    assert.deepEqual(row("buffer"), ["buffer", "64k", "env SOCKETPROXY_SERVER_BUFFER"]);
    assert.deepEqual(row("max-sessions"), [
      "max-sessions",
      "50",
      `file ${file}: server.max-sessions`,
    ]);
    assert.deepEqual(row("idle-timeout"), ["idle-timeout", "1h", "default"]);
    assert.deepEqual(row("admin-token"), [
      "admin-token",
      "********",
      "env SOCKETPROXY_ADMIN_TOKEN",
    ]);
    assert.deepEqual(row("config"), ["config", file, "flag --config"]);
    assert.doesNotMatch(report, /very-secret-token/);
  } finally {
    Deno.removeSync(file);
  }
});

// The help

Deno.test("every command's help lists --config and says how the environment and the file set it", () => {
  const usages: [string, string][] = [
    ["server", SERVER_USAGE],
    ["web", WEB_USAGE],
    ["status", STATUS_USAGE],
    ["close", CLOSE_USAGE],
    ["drain", DRAIN_USAGE],
    ["demo", DEMO_USAGE],
  ];
  for (const [command, usage] of usages) {
    const upper = command.toUpperCase();
    assert.match(usage, /^ {2}--config=FILE +read settings from the "\w+" section/m, command);
    const text = usage.replace(/\s+/g, " ");
    assert.ok(text.includes(`SOCKETPROXY_${upper}_NAME`), command);
    assert.ok(text.includes(`"${command}" section of a JSON file`), command);
    assert.ok(text.includes("A flag wins over the environment, the environment over the file"));
  }
  for (const usage of [SERVER_USAGE, WEB_USAGE]) assert.match(usage, /^ {2}--check +check/m);
  for (const usage of [SERVER_USAGE, STATUS_USAGE, CLOSE_USAGE, DRAIN_USAGE]) {
    assert.match(usage, /^ {2}--admin-token-file=FILE +read TOKEN from this file/m);
  }
  // Every flag of the table is in the help, and no flag that the table lacks.
  const helpFlags = [...WEB_USAGE.matchAll(/^ {2}(?:-\w, )?--([\w-]+)/gm)].map((match) => match[1]);
  assert.deepEqual(helpFlags, [
    ...WEB_COMMAND.settings.map((setting) => setting.name),
    "config",
    "check",
    "help",
  ]);
});

Deno.test("demo reads its settings the same way", () => {
  const demo = parseDemoArgs([], { env: environmentOf({ SOCKETPROXY_DEMO_WEB: ":0" }) });
  assert.ok(demo !== "help" && demo.web.port === 0);
  assertUsageError(
    () => parseDemoArgs([], { env: environmentOf({ SOCKETPROXY_DEMO_WEBB: ":0" }) }),
    /unknown variable "SOCKETPROXY_DEMO_WEBB"/,
  );
});

Deno.test("client reads its settings the same way, the session also from a file", () => {
  const secret = "s".repeat(32);
  const sessionFile = tempFile(`abc:${secret}\n`, ".txt");
  try {
    const client = parseClientArgs([], {
      env: environmentOf({
        SOCKETPROXY_CLIENT_PROXY: "example.com:7000",
        SOCKETPROXY_CLIENT_STREAM: "true",
        SOCKETPROXY_CLIENT_SESSION_FILE: sessionFile,
      }),
    });
    assert.ok(client !== "help");
    assert.deepEqual(client.proxy, { hostname: "example.com", port: 7000 });
    assert.equal(client.stream, true);
    assert.deepEqual(client.session, { id: "abc", secret });
    assertUsageError(
      () => parseClientArgs([], { env: environmentOf({ SOCKETPROXY_CLIENT_WAIT: "soon" }) }),
      /^SOCKETPROXY_CLIENT_WAIT: /,
    );
    assertUsageError(
      () => parseClientArgs(["--session=nonsense"], { env: environmentOf({}) }),
      "--session: expected ID:SECRET, as printed when a session opens",
    );
  } finally {
    Deno.removeSync(sessionFile);
  }
});

Deno.test("an argument a command does not take is one usage error, for every command", () => {
  const env = environmentOf({});
  assertUsageError(() => parseClientArgs(["extra"], { env }), 'unexpected argument "extra"');
  assertUsageError(() => parseDemoArgs(["extra"], { env }), 'unexpected argument "extra"');
  assertUsageError(() => parseWebArgs(["extra"], { env }), 'unexpected argument "extra"');
  assertUsageError(
    () => parseServerArgs([DEST, "other:1"], { env }),
    'expected one DEST_HOST:DEST_PORT, got also "other:1"',
  );
});

Deno.test("the sections a file may have are the commands main.ts runs that read settings", async () => {
  const help = (await runMain(["--help"])).stdout;
  const commands = [...help.matchAll(/^ {2}([a-z]+)\b/gm)].map((match) => match[1]);
  assert.deepEqual(
    [...COMMAND_SECTIONS].sort(),
    commands.filter((name) => name !== "completions").sort(),
  );
});

Deno.test("strings() reads a list's items or a string's value alike", () => {
  const spec = {
    command: "example",
    summary: "an example",
    intro: "Does nothing.",
    settings: [
      { name: "one", kind: "string", value: "X", help: "one" },
      { name: "many", kind: "list", value: "X", help: "many" },
    ],
  } as const;
  const env = environmentOf({});
  const given = resolveSettings(spec, ["--one=a", "--many=b", "--many=c"], { env });
  assert.deepEqual(given.strings("one"), ["a"]);
  assert.deepEqual(given.strings("many"), ["b", "c"]);
  const none = resolveSettings(spec, [], { env });
  assert.deepEqual([none.strings("one"), none.strings("many")], [[], []]);
});
