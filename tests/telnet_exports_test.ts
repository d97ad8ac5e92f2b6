// The names web/telnet.ts exports are the library's "./telnet" export and
// the page's imports: splitting the engine into files must keep them all.
import assert from "node:assert/strict";
import * as telnet from "../web/telnet.ts";
import type {
  CharsetEvent,
  GmcpEvent,
  MsdpEvent,
  MsdpValue,
  MsspEvent,
  MttsOptions,
  OptionEvent,
  PromptEvent,
  TelnetCharset,
  TelnetEvent,
  TelnetOptions,
  TelnetReceived,
  TelnetState,
} from "../web/telnet.ts";

/** Every export of web/telnet.ts, by name, with the kind `deno doc` gives it. */
const EXPORTS: Record<string, string> = {
  CharsetEvent: "interface",
  decodeText: "function",
  encodeText: "function",
  GmcpEvent: "interface",
  MsdpEvent: "interface",
  MsdpValue: "typeAlias",
  MsspEvent: "interface",
  MttsOptions: "interface",
  normalizeCharset: "function",
  OptionEvent: "interface",
  PAGE_EVENTS: "variable",
  pageEventName: "function",
  PromptEvent: "interface",
  Telnet: "class",
  TELNET_OPTION: "variable",
  TelnetCharset: "typeAlias",
  TelnetEvent: "typeAlias",
  TelnetOptions: "interface",
  TelnetReceived: "interface",
  TelnetState: "interface",
};

/** The exports that exist at run time, the rest being types. */
const VALUES = [
  "decodeText",
  "encodeText",
  "normalizeCharset",
  "PAGE_EVENTS",
  "pageEventName",
  "Telnet",
  "TELNET_OPTION",
];

Deno.test("web/telnet.ts exports exactly the fixed list, as deno doc reads it", async () => {
  const path = new URL("../web/telnet.ts", import.meta.url);
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", path.pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const doc = JSON.parse(new TextDecoder().decode(stdout)) as {
    nodes: Record<string, { symbols: { name: string; declarations: { kind: string }[] }[] }>;
  };
  const module = doc.nodes[path.href];
  assert.ok(module, `deno doc has no node for ${path.href}`);
  const found = Object.fromEntries(
    module.symbols.map((symbol) => [symbol.name, symbol.declarations[0]?.kind ?? ""]),
  );
  assert.deepEqual(found, EXPORTS);
});

Deno.test("web/telnet.ts exports exactly the fixed values at run time", () => {
  assert.deepEqual(Object.keys(telnet).sort(), [...VALUES].sort());
  for (const name of VALUES) assert.equal(EXPORTS[name] !== undefined, true, name);
});

Deno.test("web/telnet.ts exports the types the page and library users name", () => {
  // Compiling this is the check; the values only keep the types in use.
  const charset: TelnetCharset = "cp437";
  const value: MsdpValue = { HP: ["10", "20"] };
  const events: TelnetEvent[] = [
    { type: "prompt", at: 0, mark: "ga" } satisfies PromptEvent,
    { type: "gmcp", package: "Core.Ping", text: "", data: undefined } satisfies GmcpEvent,
    { type: "msdp", variables: { VITALS: value } } satisfies MsdpEvent,
    { type: "mssp", variables: { NAME: "x" } } satisfies MsspEvent,
    { type: "charset", charset } satisfies CharsetEvent,
    { type: "option", option: 1, side: "remote", enabled: true } satisfies OptionEvent,
  ];
  const mtts: MttsOptions = { proxy: true };
  const options: TelnetOptions = { mtts, charset };
  const engine = new telnet.Telnet(options);
  const received: TelnetReceived = engine.receive(new Uint8Array(0));
  const state: TelnetState = engine.snapshot();
  assert.equal(events.length, 6);
  assert.equal(received.display.length, 0);
  assert.equal(state.charset, "cp437");
});
