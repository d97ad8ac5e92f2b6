/**
 * The page's telnet engine (web/telnet.ts) against TinyMUX, a real MUD
 * server from Debian, through a socketproxy server: what TinyMUX
 * negotiates is answered, CHARSET agrees on UTF-8, and a line with
 * non-ASCII characters comes back intact (a refused CHARSET made the game
 * answer `héllo ?`); then the same in the browser, through the gateway and
 * the page. Skipped, saying why, where the package or chromium is missing.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ClientSession } from "../lib/client/mod.ts";
import { Telnet, TELNET_OPTION, type TelnetEvent } from "../web/telnet.ts";
import { LogCapture, startServer, WAIT_MS } from "./_helpers.ts";
import {
  CHROMIUM,
  rememberSecrets,
  waitForScreen,
  waitForStatus,
  withBrowser,
} from "./_browser.ts";
import { WEB_ASSETS, WebGateway } from "../lib/gateway/mod.ts";
import { startTinyMux, TINYMUX_MISSING } from "./_tinymux.ts";

/** A player: the engine between a socketproxy session and the game, text kept as shown. */
class Player {
  readonly telnet = new Telnet({ size: { columns: 100, rows: 30 } });
  readonly events: TelnetEvent[] = [];
  text = "";
  readonly #session: ClientSession;
  #waiting: { pattern: RegExp; resolve: () => void } | null = null;

  constructor(session: ClientSession) {
    this.#session = session;
  }

  /** Takes output as the terminal would: commands answered, text decoded. */
  take(bytes: Uint8Array): void {
    const { display, reply, events } = this.telnet.receive(bytes);
    if (reply.length > 0) this.#session.send(reply);
    this.events.push(...events);
    this.text += this.telnet.decode(display);
    if (this.#waiting?.pattern.test(this.text)) this.#waiting.resolve();
  }

  /** Types a line, as the page's line mode sends it. */
  type(line: string): void {
    this.#session.send(this.telnet.encodeInput(this.telnet.encode(`${line}\r`)));
  }

  /** Resolves when the text shown so far matches `pattern`. */
  shows(pattern: RegExp): Promise<void> {
    if (pattern.test(this.text)) return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const timer = setTimeout(
      () => reject(new Error(`no ${pattern} within ${WAIT_MS} ms in:\n${this.text.slice(-2000)}`)),
      WAIT_MS,
    );
    this.#waiting = {
      pattern,
      resolve: () => {
        clearTimeout(timer);
        this.#waiting = null;
        resolve();
      },
    };
    return promise;
  }
}

Deno.test({
  name: TINYMUX_MISSING
    ? `TinyMUX through socketproxy: charset agreed, UTF-8 intact (skipped: ${TINYMUX_MISSING})`
    : "TinyMUX through socketproxy: charset agreed, UTF-8 intact",
  ignore: TINYMUX_MISSING !== undefined,
  async fn() {
    await using mux = await startTinyMux();
    await using proxy = startServer(mux.port);
    const session = await ClientSession.create({
      proxy: { hostname: "127.0.0.1", port: proxy.port },
    });
    const player = new Player(session);
    const stop = new AbortController();
    const reading = (async () => {
      const stream = session.stream({ signal: stop.signal });
      for (let next = await stream.next();; next = await stream.next()) {
        if (next.done) return next.value;
        player.take(next.value);
      }
    })();
    try {
      await player.shows(/"connect <name> <password>"/);
      player.type("connect wizard potrzebie");
      await player.shows(/Last connect|MOTD|Wizard/i);
      player.type("say héllo ✓ ünïcode");
      // TinyMUX quotes with U+201C and U+201D once it knows the client takes UTF-8.
      await player.shows(/You say, “héllo ✓ ünïcode”/);
      assert.equal(player.telnet.charset, "utf-8");
      const { local } = player.telnet.enabled;
      for (const option of [TELNET_OPTION.TTYPE, TELNET_OPTION.NAWS, TELNET_OPTION.CHARSET]) {
        assert.ok(local.includes(option), `option ${option} agreed (local: ${local})`);
      }
      player.type("QUIT");
      assert.equal(await reading, "destination-closed");
    } finally {
      stop.abort();
      await reading.catch(() => {});
      if (session.state === "open") await session.close();
    }
  },
});

Deno.test({
  name: TINYMUX_MISSING || !CHROMIUM
    ? `TinyMUX in the browser terminal: UTF-8 both ways, the game knows its client (skipped: ${
      TINYMUX_MISSING ?? "chromium is not installed"
    })`
    : "TinyMUX in the browser terminal: UTF-8 both ways, the game knows its client",
  ignore: TINYMUX_MISSING !== undefined || !CHROMIUM,
  async fn() {
    await using mux = await startTinyMux();
    await using proxy = startServer(mux.port);
    const gateway = await WebGateway.listen({ hostname: "127.0.0.1", port: 0 }, {
      proxy: { hostname: "127.0.0.1", port: proxy.port },
      logger: new LogCapture().logger,
      assets: WEB_ASSETS,
    });
    try {
      await withBrowser(async (browser) => {
        const page = await browser.newPage();
        await page.goto(`http://127.0.0.1:${gateway.addr.port}/`);
        await waitForStatus(page, "connected");
        await rememberSecrets(page);
        await waitForScreen(page, /"connect <name> <password>"/);
        const type = async (line: string) => {
          await page.fill("#input", line);
          await page.press("#input", "Enter");
        };
        await type("connect wizard potrzebie");
        await waitForScreen(page, /Last connect/);
        await type("say héllo ✓ ünïcode");
        await waitForScreen(page, /You say, “héllo ✓ ünïcode”/);
        // TinyMUX tells what it learned: the client's name (TTYPE), telnet,
        // and that it takes UTF-8 (CHARSET).
        await type("think [terminfo(me)]");
        await waitForScreen(page, /^SOCKETPROXY telnet unicode$/m);
        await page.close();
      });
    } finally {
      await gateway.close();
    }
  },
});
