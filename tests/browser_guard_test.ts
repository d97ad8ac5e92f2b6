/**
 * The checks that keep hostile web pages out: which Host names a server
 * answers, which Origins may change state, the flags that configure them,
 * the rate limit on their log lines, and the start-up warning for an
 * exposed admin port.
 */

import assert from "node:assert/strict";
import { isLoopbackHost } from "../lib/address.ts";
import { HostCheck, originAllowed } from "../lib/http/browser_guard.ts";
import { parseAllowHost, parseAllowOrigin } from "../lib/commands/config.ts";
import { parseServerArgs, startupWarnings } from "../lib/commands/server.ts";
import { parseWebArgs } from "../lib/commands/web.ts";
import { UsageError } from "../lib/errors.ts";
import { Logger, RateLimitedLog } from "../lib/log.ts";

Deno.test("on loopback, only loopback names, IP addresses and allowed names are answered", () => {
  const check = HostCheck.create({ listen: { hostname: "localhost", port: 9010 } });
  assert.ok(check.enabled);
  for (
    const host of [
      "localhost:9010",
      "LOCALHOST",
      "app.localhost:1",
      "127.0.0.1:9010",
      "[::1]:9010",
      "10.1.2.3",
    ]
  ) {
    assert.ok(check.allows(host), host);
  }
  for (
    const host of ["evil.example:9010", "evil.example", "localhost.evil.example", "", "a b", null]
  ) {
    assert.ok(!check.allows(host), String(host));
  }
  const named = HostCheck.create({
    listen: { hostname: "127.0.0.1", port: 8080 },
    allowHosts: ["play.example.com", ".games.example"],
  });
  assert.ok(named.allows("play.example.com"));
  assert.ok(named.allows("Play.Example.com.:443"), "case and a trailing dot do not matter");
  assert.ok(named.allows("mud.games.example"));
  assert.ok(!named.allows("games.example.evil"));
  assert.ok(!named.allows("example.com"));
});

Deno.test("private, unspecified and named listen addresses are checked; a public address once names are given", () => {
  for (
    const hostname of [
      "10.0.0.5",
      "192.168.1.2",
      "172.20.0.1",
      "0.0.0.0",
      "::",
      "fd00::1",
      "myhost",
    ]
  ) {
    assert.ok(HostCheck.create({ listen: { hostname, port: 80 } }).enabled, hostname);
  }
  const named = HostCheck.create({ listen: { hostname: "myhost", port: 80 } });
  assert.ok(named.allows("myhost:80"), "the name it listens on");
  const open = HostCheck.create({ listen: { hostname: "203.0.113.7", port: 80 } });
  assert.ok(!open.enabled);
  assert.ok(open.allows("anything.example"));
  const closed = HostCheck.create({
    listen: { hostname: "203.0.113.7", port: 80 },
    allowHosts: ["play.example.com"],
  });
  assert.ok(closed.enabled);
  assert.ok(!closed.allows("anything.example"));
});

Deno.test("an Origin is allowed when it is the request's own Host, listed, or * is given", () => {
  assert.ok(originAllowed("http://localhost:8080", "localhost:8080", []));
  assert.ok(originAllowed("https://play.example.com", "play.example.com", []), "default port");
  assert.ok(originAllowed("https://play.example.com", "play.example.com:443", []));
  assert.ok(!originAllowed("http://play.example.com", "play.example.com:443", []));
  assert.ok(!originAllowed("https://evil.example", "localhost:8080", []));
  assert.ok(!originAllowed("null", "localhost:8080", []));
  assert.ok(!originAllowed("file://", "localhost:8080", []));
  assert.ok(
    originAllowed("https://play.example.com", "localhost:8080", ["https://play.example.com"]),
  );
  assert.ok(!originAllowed("https://play.example.com:8443", "x", ["https://play.example.com"]));
  assert.ok(originAllowed("https://evil.example", "localhost:8080", ["*"]));
});

Deno.test("--allow-host and --allow-origin take names and origins, and refuse the rest in one line", () => {
  assert.equal(parseAllowHost(".Example.com", "--allow-host"), ".example.com");
  assert.throws(() => parseAllowHost("http://x", "--allow-host"), UsageError);
  assert.throws(
    () => parseAllowHost("a b", "--allow-host"),
    /--allow-host: "a b" is not a host name/,
  );
  assert.equal(
    parseAllowOrigin("https://Play.Example.com:443", "--allow-origin"),
    "https://play.example.com",
  );
  assert.equal(
    parseAllowOrigin("http://localhost:8080/", "--allow-origin"),
    "http://localhost:8080",
  );
  assert.equal(parseAllowOrigin("*", "--allow-origin"), "*");
  for (const bad of ["play.example.com", "ftp://x", "https://x/path", "https://"]) {
    assert.throws(
      () => parseAllowOrigin(bad, "--allow-origin"),
      /--allow-origin: .* is not an origin/,
    );
  }
  const web = parseWebArgs([
    "--allow-host=a.example",
    "--allow-host=b.example",
    "--allow-origin=https://c.example",
  ]);
  assert.ok(web !== "help");
  assert.deepEqual(web.allowHosts, ["a.example", "b.example"]);
  assert.deepEqual(web.allowOrigins, ["https://c.example"]);
  const server = parseServerArgs(["--allow-host=admin.example", "127.0.0.1:23"]);
  assert.ok(server !== "help");
  assert.deepEqual(server.adminAllowHosts, ["admin.example"]);
});

Deno.test("an admin port off loopback with no token is warned of at start; on loopback or with a token it is not", () => {
  const at = (admin: string, extra: string[] = []) => {
    const config = parseServerArgs([`--admin=${admin}`, ...extra, "127.0.0.1:23"]);
    assert.ok(config !== "help");
    return startupWarnings(config).map((warning) => warning.event);
  };
  assert.ok(at("0.0.0.0:9010").includes("admin.no_token"));
  assert.ok(at("192.168.1.5:9010").includes("admin.no_token"));
  assert.ok(!at("127.0.0.1:9010").includes("admin.no_token"));
  assert.ok(!at("localhost:9010").includes("admin.no_token"));
  assert.ok(
    !at("0.0.0.0:9010", ["--admin-token=a-long-enough-admin-token"]).includes("admin.no_token"),
  );
  assert.ok(isLoopbackHost("127.1.2.3") && isLoopbackHost("::1") && !isLoopbackHost("::"));
});

Deno.test("refusals are logged once an interval, the next line counting those held back", () => {
  const lines: string[] = [];
  let now = 0;
  const log = new RateLimitedLog(new Logger({ sink: (line) => lines.push(line) }), {
    intervalMs: 1000,
    now: () => now,
  });
  for (let i = 0; i < 5; i++) log.warn("web.host_not_allowed", { host: "evil.example" });
  log.warn("web.origin_not_allowed", { origin: "https://evil.example" });
  assert.equal(lines.length, 2, "one line per event");
  now = 1000;
  log.warn("web.host_not_allowed", { host: "evil.example" });
  assert.equal(lines.length, 3);
  assert.match(lines[2] ?? "", /held_back=4/);
});
