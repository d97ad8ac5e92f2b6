/**
 * The browser terminal end to end, in Debian's chromium driven headless by
 * playwright-core (never a downloaded browser): a telnet-speaking
 * destination, the page's banner, a command and its answer, a reload that
 * continues with nothing repeated, a gateway that goes away and comes back,
 * and a password typed in character mode.
 *
 * Set SOCKETPROXY_SCREENSHOT=docs/terminal.png to save a picture of the
 * working page (`deno task screenshot`).
 */

import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import {
  CHROMIUM,
  rememberSecrets,
  screen,
  waitForScreen,
  waitForStatus,
  waitUntil,
  withBrowser,
} from "./_browser.ts";
import { type GatewayLimits, WebGateway } from "../lib/gateway/mod.ts";
import { WEB_ASSETS } from "../lib/gateway/mod.ts";
import { Destination, encoder, LogCapture, startServer, WAIT_MS } from "./_helpers.ts";
import { NGINX, startNginx } from "./_nginx.ts";

const SCREENSHOT = Deno.env.get("SOCKETPROXY_SCREENSHOT");

const IAC = 255, WILL = 251, WONT = 252, DO = 253, SB = 250, SE = 240;
const ECHO = 1, SGA = 3, TTYPE = 24, NAWS = 31;

/** What the telnet destination heard from one connection. */
interface Heard {
  lines: string[];
  terminalType: string;
  sizes: [number, number][];
}

/**
 * A small telnet service: asks for the terminal type and size, prompts,
 * answers "look", and asks for a password with the server echoing (so the
 * page must switch to character mode and not show it).
 */
function telnetService(): Destination & { heard: Heard[]; connections: Deno.TcpConn[] } {
  const heard: Heard[] = [];
  const connections: Deno.TcpConn[] = [];
  const destination = new Destination((conn) => {
    connections.push(conn);
    const state: Heard = { lines: [], terminalType: "", sizes: [] };
    heard.push(state);
    void (async () => {
      const write = (data: string | number[]) =>
        conn.write(typeof data === "string" ? encoder.encode(data) : Uint8Array.from(data)).catch(
          () => 0,
        );
      await write([IAC, DO, TTYPE, IAC, DO, NAWS, IAC, WILL, SGA]);
      await write("\x1b[1;32mWelcome to the test MUD\x1b[0m\r\n> ");
      const buffer = new Uint8Array(4096);
      let line = "";
      let sb: number[] | null = null;
      let command: number | null = null;
      let passwordWanted = false;
      while (true) {
        const count = await conn.read(buffer).catch(() => null);
        if (count === null) return;
        for (const byte of buffer.subarray(0, count)) {
          if (sb !== null) {
            if (byte === SE && sb.at(-1) === IAC) {
              sb.pop();
              if (sb[0] === TTYPE && sb[1] === 0) {
                state.terminalType = String.fromCharCode(...sb.slice(2));
              }
              if (sb[0] === NAWS) {
                state.sizes.push([
                  (sb[1] ?? 0) * 256 + (sb[2] ?? 0),
                  (sb[3] ?? 0) * 256 + (sb[4] ?? 0),
                ]);
              }
              sb = null;
            } else sb.push(byte);
          } else if (command !== null) {
            if (command === IAC && byte === SB) sb = [];
            else if (command === IAC && byte >= WILL) command = byte;
            else {
              if (command === WILL && byte === TTYPE) await write([IAC, SB, TTYPE, 1, IAC, SE]);
              command = null;
              continue;
            }
            if (sb !== null || byte === SB) command = null;
            continue;
          } else if (byte === IAC) command = IAC;
          else if (byte === 10) {
            const text = line.replace(/\r$/, "");
            line = "";
            state.lines.push(text);
            if (passwordWanted) {
              passwordWanted = false;
              await write([IAC, WONT, ECHO]);
              await write("\r\nWelcome back.\r\n> ");
            } else if (text === "look") await write("You are in a small room.\r\n> ");
            else if (text === "quit") {
              await write("Bye.\r\n");
              conn.close();
              return;
            } else if (text === "login") {
              passwordWanted = true;
              await write("Password: ");
              await write([IAC, WILL, ECHO]);
            } else await write(`Huh? (${text.length} characters)\r\n> `);
          } else if (byte !== 0) line += String.fromCharCode(byte);
        }
      }
    })();
  });
  return Object.assign(destination, { heard, connections });
}

function transportOf(page: Page): Promise<string> {
  // deno-lint-ignore no-explicit-any
  return page.evaluate(() => (globalThis as any).socketproxy.session.transport);
}

Deno.test({
  name: CHROMIUM
    ? "the browser terminal: banner, a command, a reload, a gateway restart"
    : "the browser terminal: banner, a command, a reload, a gateway restart (skipped: chromium is not installed; apt-get install chromium)",
  ignore: !CHROMIUM,
  async fn() {
    await using destination = telnetService();
    await using proxy = startServer(destination.port);
    let gateway = await WebGateway.listen({ hostname: "127.0.0.1", port: 0 }, {
      proxy: { hostname: "127.0.0.1", port: proxy.port },
      logger: new LogCapture().logger,
      assets: WEB_ASSETS,
    });
    const port = gateway.addr.port;
    try {
      await withBrowser(async (browser) => {
        const page = await browser.newPage({ viewport: { width: 1000, height: 560 } });
        await page.goto(`http://127.0.0.1:${port}/`);
        await waitForScreen(page, /Welcome to the test MUD\n> /);
        await waitForStatus(page, "connected");
        await rememberSecrets(page);
        const heard = destination.heard[0];
        assert.ok(heard);
        // The page shows the banner before its answers reach the destination, and the
        // terminal type takes a second round trip (WILL TTYPE, then SEND): wait for them.
        await waitUntil(
          () => heard.terminalType !== "" && heard.sizes.length > 0,
          "TTYPE and NAWS heard",
        );
        assert.equal(
          heard.terminalType,
          "SOCKETPROXY",
          "TTYPE answered: the client name first (MTTS)",
        );
        assert.ok(
          heard.sizes.length > 0 && (heard.sizes[0]?.[0] ?? 0) > 40,
          `NAWS sent: ${heard.sizes}`,
        );

        // A line-oriented service (no server echo): line mode, with the line shown once.
        assert.equal(await page.isVisible("#input"), true, "line mode is on");
        await page.fill("#input", "look");
        await page.press("#input", "Enter");
        await waitForScreen(page, /look\nYou are in a small room\.\n> /);
        assert.deepEqual(heard.lines, ["look"]);

        // A password prompt with the server echoing: character mode, nothing shown.
        await page.fill("#input", "login");
        await page.press("#input", "Enter");
        await waitForScreen(page, /Password: /);
        await page.waitForSelector("#line[hidden]", { state: "attached", timeout: WAIT_MS });
        await page.keyboard.type("hunter2");
        await page.keyboard.press("Enter");
        const afterLogin = await waitForScreen(page, /Welcome back\.\n> /);
        assert.doesNotMatch(afterLogin, /hunter2/, "the password was not shown");
        assert.deepEqual(heard.lines, ["look", "login", "hunter2"]);
        await page.waitForSelector("#line:not([hidden])", { timeout: WAIT_MS });

        if (SCREENSHOT) {
          await page.fill("#input", "look");
          await page.press("#input", "Enter");
          await waitForScreen(page, /small room\.\n> $/);
          await page.screenshot({ path: SCREENSHOT });
        }

        // A reload continues the session, its screen kept and nothing repeated, and tells
        // the server the window's size, here changed while the page was away.
        const rooms = (await screen(page)).match(/small room/g)?.length ?? 0;
        await page.goto("about:blank");
        await page.setViewportSize({ width: 800, height: 480 });
        await page.goto(`http://127.0.0.1:${port}/`);
        await waitForStatus(page, "connected");
        const size = await page.evaluate(() => {
          // deno-lint-ignore no-explicit-any
          const { terminal } = (globalThis as any).socketproxy;
          return [terminal.cols, terminal.rows] as [number, number];
        });
        assert.ok(size[0] < (heard.sizes[0]?.[0] ?? 0), `a narrower window: ${size}`);
        await waitUntil(
          () => heard.sizes.at(-1)?.join() === size.join(),
          `NAWS with the new size ${size} (heard ${heard.sizes.at(-1)})`,
        );
        await page.fill("#input", "look");
        await page.press("#input", "Enter");
        const reloaded = await waitForScreen(
          page,
          new RegExp(`(small room[^]*){${rooms + 1}}`),
        );
        assert.equal(
          reloaded.match(/Welcome to the test MUD/g)?.length,
          1,
          "the screen from before the reload kept, nothing repeated",
        );
        assert.equal(reloaded.match(/small room/g)?.length, rooms + 1, reloaded);
        assert.equal(destination.heard.length, 1, "still the first destination connection");

        // The network goes (the gateway stops) and comes back: the page reconnects.
        await gateway.close();
        await waitForStatus(page, "reconnecting");
        // While the gateway is away the page waits longer each time (0.3 s, 0.5 s, 1 s,
        // 2 s ...), as when the proxy is away, rather than every 0.3 s forever.
        await page.waitForFunction(
          () =>
            /trying again in [2-5] s/.test(
              // deno-lint-ignore no-explicit-any
              (globalThis as any).document.getElementById("detail").textContent,
            ),
          undefined,
          { timeout: WAIT_MS },
        );
        const conn = destination.connections[0];
        assert.ok(conn);
        await conn.write(encoder.encode("\r\nThe world shifts while you are away.\r\n> "));
        gateway = await WebGateway.listen({ hostname: "127.0.0.1", port }, {
          proxy: { hostname: "127.0.0.1", port: proxy.port },
          logger: new LogCapture().logger,
          assets: WEB_ASSETS,
        });
        await waitForStatus(page, "connected");
        await waitForScreen(page, /The world shifts while you are away\./);
        await rememberSecrets(page);
        assert.equal(await transportOf(page), "websocket", "an outage is no reason to poll");
      });
    } finally {
      await gateway.close();
    }
  },
});

for (const transport of ["longpoll", "poll"] as const) {
  Deno.test({
    name: CHROMIUM
      ? `the browser terminal with ?transport=${transport}`
      : `the browser terminal with ?transport=${transport} (skipped: chromium is not installed)`,
    ignore: !CHROMIUM,
    async fn() {
      await using destination = telnetService();
      await using proxy = startServer(destination.port);
      await using gateway = await WebGateway.listen({ hostname: "127.0.0.1", port: 0 }, {
        proxy: { hostname: "127.0.0.1", port: proxy.port },
        logger: new LogCapture().logger,
        assets: WEB_ASSETS,
      });
      await withBrowser(async (browser) => {
        const page = await browser.newPage();
        await page.goto(`http://127.0.0.1:${gateway.addr.port}/?transport=${transport}`);
        await waitForScreen(page, /Welcome to the test MUD/);
        await waitForStatus(page, "connected");
        await rememberSecrets(page);
        assert.match(
          await page.textContent("#detail") ?? "",
          transport === "poll" ? /^polling/ : /long-polling/,
        );
        await page.fill("#input", "look");
        await page.press("#input", "Enter");
        await waitForScreen(page, /You are in a small room\./);
      });
    },
  });
}

function startGateway(
  proxyPort: number,
  limits: Partial<GatewayLimits> = {},
): Promise<WebGateway> {
  return WebGateway.listen({ hostname: "127.0.0.1", port: 0 }, {
    proxy: { hostname: "127.0.0.1", port: proxyPort },
    logger: new LogCapture().logger,
    assets: WEB_ASSETS,
    limits,
  });
}

Deno.test({
  name: CHROMIUM
    ? "the browser terminal: a big paste, much typing and a reload, a session end and a reload"
    : "the browser terminal: a big paste, much typing and a reload, a session end and a reload (skipped: chromium is not installed)",
  ignore: !CHROMIUM,
  async fn() {
    await using destination = telnetService();
    await using proxy = startServer(destination.port);
    await using gateway = await startGateway(proxy.port, { maxInput: 8192 });
    await withBrowser(async (browser) => {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${gateway.addr.port}/`);
      await waitForScreen(page, /Welcome to the test MUD\n> /);
      await waitForStatus(page, "connected");
      await rememberSecrets(page);
      const heard = destination.heard[0];
      assert.ok(heard);

      // A paste far past the gateway's input limit: one line, whole.
      await page.fill("#input", "p".repeat(100_000));
      await page.press("#input", "Enter");
      await waitForScreen(page, /Huh\? \(100000 characters\)\n> /);
      assert.deepEqual(heard.lines.map((line) => line.length), [100_000]);

      // Much typing, a line at a time, then a reload before all of it is confirmed.
      const lines = await page.evaluate(async () => {
        // deno-lint-ignore no-explicit-any
        const { session } = (globalThis as any).socketproxy;
        const sent: string[] = [];
        for (let i = 0; i < 800; i++) {
          const line = `line ${i} ${"t".repeat(90)}`;
          sent.push(line);
          session.send(new TextEncoder().encode(line + "\r\n"));
          if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
        }
        return sent;
      });
      await page.reload();
      await waitForStatus(page, "connected");
      await waitUntil(() => heard.lines.length >= 1 + lines.length, "all typed lines heard");
      assert.deepEqual(heard.lines.slice(1), lines, "every line once, in order, across the reload");

      // The service ends the session; a reload starts a new one with telnet afresh.
      await page.fill("#input", "quit");
      await page.press("#input", "Enter");
      await waitForStatus(page, "ended");
      await page.reload();
      await waitForScreen(page, /Welcome to the test MUD\n> /);
      await waitForStatus(page, "connected");
      await rememberSecrets(page);
      const fresh = destination.heard[1];
      assert.ok(fresh, "a new destination connection");
      // As on the first connection: the answers come after the banner is shown.
      await waitUntil(
        () => fresh.terminalType !== "" && fresh.sizes.length > 0,
        "TTYPE and NAWS negotiated on the new connection",
      );
      assert.equal(fresh.terminalType, "SOCKETPROXY", "TTYPE negotiated anew");
      assert.ok(fresh.sizes.length > 0, "NAWS negotiated anew, with the window's size");
      assert.equal(proxy.server.store.size, 1, "the ended session is gone");
    });
  },
});

Deno.test({
  name: CHROMIUM && NGINX
    ? "the browser terminal under /terminal/ behind nginx"
    : "the browser terminal under /terminal/ behind nginx (skipped: needs chromium and nginx; apt-get install chromium nginx-light)",
  ignore: !CHROMIUM || !NGINX,
  async fn() {
    await using destination = telnetService();
    await using proxy = startServer(destination.port);
    await using gateway = await startGateway(proxy.port);
    await using nginx = await startNginx(gateway.addr.port);
    await withBrowser(async (browser) => {
      const page = await browser.newPage();
      await page.goto(nginx.base);
      await waitForScreen(page, /Welcome to the test MUD\n> /);
      await waitForStatus(page, "connected");
      await rememberSecrets(page);
      assert.equal(await transportOf(page), "websocket");
      await page.fill("#input", "look");
      await page.press("#input", "Enter");
      await waitForScreen(page, /You are in a small room\./);
      await page.reload();
      await waitForStatus(page, "connected");
      await page.fill("#input", "look");
      await page.press("#input", "Enter");
      const again = await waitForScreen(page, /(small room[^]*){2}/);
      assert.equal(again.match(/Welcome to the test MUD/g)?.length, 1, "resumed, nothing repeated");
      assert.equal(again.match(/small room/g)?.length, 2, again);
      assert.doesNotMatch(nginx.log(), /\[(error|crit|alert|emerg)\]/);
    });
  },
});

/** The page's status, as its body says it. */
function statusOf(page: Page): Promise<string | undefined> {
  // deno-lint-ignore no-explicit-any
  return page.evaluate(() => (globalThis as any).document.body.dataset.status);
}

Deno.test({
  name: CHROMIUM
    ? "the browser terminal in two windows: the one taken over stops, and a key resumes it there"
    : "the browser terminal in two windows: the one taken over stops, and a key resumes it there (skipped: chromium is not installed)",
  ignore: !CHROMIUM,
  async fn() {
    await using destination = telnetService();
    await using proxy = startServer(destination.port);
    await using gateway = await startGateway(proxy.port);
    const url = `http://127.0.0.1:${gateway.addr.port}/`;
    await withBrowser(async (browser) => {
      const first = await browser.newPage();
      await first.goto(url);
      await waitForScreen(first, /Welcome to the test MUD\n> /);
      await waitForStatus(first, "connected");
      await rememberSecrets(first);
      const heard = destination.heard[0];
      assert.ok(heard);
      await waitUntil(() => heard.terminalType !== "", "TTYPE answered");
      // A duplicated tab: the same sessionStorage, so the same session.
      const stored = await first.evaluate(() => JSON.stringify(Object.entries(sessionStorage)));
      // The first window goes on after the copy: input the copy's storage knows nothing of.
      await first.fill("#input", "look");
      await first.press("#input", "Enter");
      await waitForScreen(first, /look\nYou are in a small room\.\n> /);
      const second = await browser.newPage();
      await second.addInitScript((entries: string) => {
        for (const [key, value] of JSON.parse(entries)) sessionStorage.setItem(key, value);
      }, stored);
      await second.goto(url);

      // The second window takes the session over: the first is told so, and stops at once.
      const [loser, winner] = [first, second];
      await waitForStatus(loser, "taken-over");
      assert.match(
        await loser.textContent("#detail") ?? "",
        /taken over by another window; click or press a key to resume here/,
      );
      await waitForStatus(winner, "connected");
      assert.equal(proxy.logs.events("session.taken_over").length, 1, "no exchange back");
      // The copy's first input (its window size) goes after the first window's, not over it.
      await winner.fill("#input", "look");
      await winner.press("#input", "Enter");
      await waitForScreen(winner, /look\nYou are in a small room\.\n> /);
      assert.deepEqual(heard.lines, ["look", "look"]);

      // A key in the stopped window takes the session back there; the other one stops.
      await loser.press("#input", "Enter");
      await waitForStatus(loser, "connected");
      await waitForStatus(winner, "taken-over");
      assert.equal(await statusOf(loser), "connected");
      assert.equal(proxy.logs.events("session.taken_over").length, 2);
      await loser.fill("#input", "look");
      await loser.press("#input", "Enter");
      // Its own looks' answers; the other window's it took, and acknowledged, in that window.
      const screen = await waitForScreen(loser, /(look\nYou are in a small room\.\n> [^]*){2}/);
      assert.equal(screen.match(/small room/g)?.length, 2, screen);
      assert.deepEqual(heard.lines, ["look", "look", "look"], "the key itself not sent");
      assert.equal(destination.heard.length, 1, "one session throughout");
    });
  },
});
