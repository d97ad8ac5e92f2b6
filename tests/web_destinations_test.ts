/**
 * `web --to`, `--allow-destination` and `--terminal`: which destinations
 * a page may use and how it speaks to each, from flags or the environment,
 * and one clear error for each mistake.
 */

import assert from "node:assert/strict";
import { parseWebArgs, type WebConfig } from "../lib/commands/web.ts";
import { environmentOf } from "../lib/commands/settings.ts";
import { RAW_TERMINAL, TELNET_TERMINAL } from "../lib/gateway/mod.ts";
import { UsageError } from "../lib/errors.ts";

function web(args: string[], variables: Record<string, string> = {}): WebConfig {
  const config = parseWebArgs(args, { env: environmentOf(variables) });
  assert.ok(config !== "help");
  return config;
}

function refused(args: string[], pattern: RegExp, variables: Record<string, string> = {}): void {
  assert.throws(() => web(args, variables), (error: unknown) => {
    assert.ok(error instanceof UsageError, String(error));
    assert.match(error.message, pattern);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  });
}

Deno.test("without destination flags a page may name none, and speaks telnet", () => {
  const config = web([]);
  assert.equal(config.defaultDestination, undefined);
  assert.deepEqual([...config.destinations], []);
  assert.deepEqual(config.defaultTerminal, TELNET_TERMINAL);
});

Deno.test("--to, --allow-destination and --terminal build the pages' destinations", () => {
  const config = web([
    "--to=mud",
    "--allow-destination=bbs",
    "--allow-destination=shell",
    "--terminal=bbs:mode=raw,charset=cp437",
    "--terminal=mud:charset=latin1",
  ]);
  assert.equal(config.defaultDestination, "mud");
  assert.deepEqual(config.defaultTerminal, { ...TELNET_TERMINAL, charset: "latin1" });
  assert.deepEqual(config.destinations.get("bbs"), { ...RAW_TERMINAL, charset: "cp437" });
  assert.deepEqual(config.destinations.get("shell"), TELNET_TERMINAL);
  assert.equal(config.destinations.has("mud"), false, "--to is served as the default");
});

Deno.test("--terminal without a name sets the default destination's terminal", () => {
  assert.deepEqual(web(["--terminal=mode=raw"]).defaultTerminal, RAW_TERMINAL);
});

Deno.test("the environment gives lists comma-separated, each terminal's settings kept with it", () => {
  const config = web([], {
    SOCKETPROXY_WEB_TO: "mud",
    SOCKETPROXY_WEB_ALLOW_DESTINATION: "bbs,shell",
    SOCKETPROXY_WEB_TERMINAL: "bbs:mode=raw,charset=cp437,shell:mode=raw,line-ending=lf",
  });
  assert.deepEqual(config.destinations.get("bbs"), { ...RAW_TERMINAL, charset: "cp437" });
  assert.deepEqual(config.destinations.get("shell"), { ...RAW_TERMINAL, lineEnding: "lf" });
});

Deno.test("destination mistakes are one usage error each", () => {
  refused(["--to=no such"], /^--to: "no such" is not a destination name/);
  refused(["--allow-destination=a/b"], /^--allow-destination: "a\/b" is not a destination name/);
  refused(["--terminal=bbs:mode=ssh"], /^--terminal: .*mode must be telnet or raw/);
  refused(["--terminal=bbs:colour=on"], /^--terminal: .*unknown setting "colour=on"/);
  refused(
    ["--terminal=bbs:mode=raw"],
    /^--terminal: "bbs" is neither --to nor an --allow-destination/,
  );
  refused(
    ["--allow-destination=bbs", "--terminal=bbs:mode=raw", "--terminal=bbs:mode=telnet"],
    /^--terminal: bbs is given twice/,
  );
  refused([], /^SOCKETPROXY_WEB_TERMINAL: .*mode must be telnet or raw/, {
    SOCKETPROXY_WEB_TERMINAL: "mode=ssh",
  });
});
