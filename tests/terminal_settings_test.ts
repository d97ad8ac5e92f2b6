/**
 * `--terminal=NAME:key=value,...` values parsed into a destination's
 * terminal settings, and settings from the gateway checked by the page.
 */

import assert from "node:assert/strict";
import {
  parseTerminalSettings,
  RAW_TERMINAL,
  TELNET_TERMINAL,
  terminalSettingsOf,
} from "../lib/gateway/mod.ts";

Deno.test("a name alone is a telnet destination with the defaults", () => {
  assert.deepEqual(parseTerminalSettings("mud"), { name: "mud", settings: TELNET_TERMINAL });
  assert.deepEqual(parseTerminalSettings("mud:"), { name: "mud", settings: TELNET_TERMINAL });
});

Deno.test("raw mode starts from a terminal's defaults: Enter is CR, the destination echoes", () => {
  assert.deepEqual(parseTerminalSettings("shell:mode=raw"), {
    name: "shell",
    settings: RAW_TERMINAL,
  });
  assert.deepEqual(RAW_TERMINAL, {
    mode: "raw",
    charset: "utf-8",
    lineEnding: "cr",
    localEcho: false,
  });
});

Deno.test("every setting, in either spelling, with charset aliases and on/off words", () => {
  assert.deepEqual(
    parseTerminalSettings("bbs.old:mode=raw,charset=IBM437,line-ending=crlf,local-echo=on"),
    {
      name: "bbs.old",
      settings: { mode: "raw", charset: "cp437", lineEnding: "crlf", localEcho: true },
    },
  );
  assert.deepEqual(
    parseTerminalSettings("old_mud:charset=ISO-8859-1, lineEnding=lf ,localEcho=false").settings,
    { mode: "telnet", charset: "latin1", lineEnding: "lf", localEcho: false },
  );
  assert.equal(parseTerminalSettings("m:local-echo=YES").settings.localEcho, true);
});

Deno.test("bad values are refused with a message naming the value", () => {
  const cases: [string, typeof TypeError | typeof RangeError, RegExp][] = [
    ["", TypeError, /Cannot parse terminal settings "": expected NAME:key=value/],
    ["two words:mode=raw", TypeError, /destination name/],
    [`${"x".repeat(65)}:mode=raw`, TypeError, /destination name/],
    ["mud:colour=red", TypeError, /unknown setting "colour=red"/],
    ["mud:mode", TypeError, /unknown setting "mode"/],
    ["mud:constructor=1", TypeError, /unknown setting/],
    ["mud:mode=raw,mode=telnet", TypeError, /mode given twice/],
    ["mud:mode=ssh", RangeError, /mode must be telnet or raw: got "ssh"/],
    ["mud:charset=koi8-r", RangeError, /charset must be utf-8, latin1 or cp437: got "koi8-r"/],
    ["mud:line-ending=crcr", RangeError, /line-ending must be crlf, lf or cr: got "crcr"/],
    ["mud:local-echo=maybe", RangeError, /local-echo must be on or off: got "maybe"/],
  ];
  for (const [value, type, message] of cases) {
    assert.throws(() => parseTerminalSettings(value), (error: unknown) => {
      assert.ok(error instanceof type, `${value}: ${error}`);
      assert.match(String((error as Error).message), message);
      return true;
    });
  }
});

Deno.test("the page checks the gateway's settings and fills in the mode's defaults", () => {
  assert.deepEqual(terminalSettingsOf({ to: "x", mode: "raw", localEcho: true }), {
    ...RAW_TERMINAL,
    localEcho: true,
  });
  assert.deepEqual(terminalSettingsOf({}), TELNET_TERMINAL);
  assert.throws(() => terminalSettingsOf(null), TypeError);
  assert.throws(() => terminalSettingsOf([]), TypeError);
  assert.throws(() => terminalSettingsOf({ mode: "x" }), RangeError);
  assert.throws(() => terminalSettingsOf({ lineEnding: 5 }), RangeError);
});
