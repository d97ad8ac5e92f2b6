/**
 * The browser terminal as a MUD or BBS player meets it, in Debian's
 * chromium driven headless by playwright-core (never a downloaded browser):
 * a scripted MUD that negotiates TTYPE/MTTS, CHARSET, EOR, GMCP, MSDP and
 * MSSP, whose colours, UTF-8, prompts and GMCP events reach the page; the
 * events posted to an embedding site, and GMCP sent from it; underscores
 * that show; the screen kept across a reload, pixel for pixel; and a raw
 * (non-telnet) CP437 destination chosen with `?to=`.
 */

import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import {
  CHROMIUM,
  rememberSecrets,
  waitForScreen,
  waitForStatus,
  waitUntil,
  withBrowser,
} from "./_browser.ts";
import { type GatewayOptions, RAW_TERMINAL, WEB_ASSETS, WebGateway } from "../lib/gateway/mod.ts";
import {
  Destination,
  encoder,
  issuedSecrets,
  LogCapture,
  startServer,
  WAIT_MS,
} from "./_helpers.ts";

const IAC = 255, DONT = 254, DO = 253, WONT = 252, WILL = 251, SB = 250, SE = 240;
const EOR_MARK = 239;
const TTYPE = 24, EOR = 25, CHARSET = 42, MSDP = 69, MSSP = 70, GMCP = 201;
const VAR = 1, VAL = 2, TABLE_OPEN = 3, TABLE_CLOSE = 4;
const PROMPT = "\x1b[1;36mHP:100>\x1b[0m ";

/** What the MUD heard from the player's client. */
interface Heard {
  /** TTYPE IS answers, in order. */
  ttypes: string[];
  /** The charset the client ACCEPTED. */
  charset: string | null;
  /** GMCP messages from the client. */
  gmcp: string[];
  /** Lines typed, decoded as UTF-8. */
  lines: string[];
  /** Options the client agreed to: `DO 201`, `WILL 24`, ... */
  agreed: string[];
}

function bytes(...parts: (string | number | number[])[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === "string") out.push(...encoder.encode(part));
    else if (typeof part === "number") out.push(part);
    else out.push(...part);
  }
  return Uint8Array.from(out);
}

/**
 * A scripted MUD: offers what MUD servers offer, asks for the terminal type
 * three times (MTTS), asks for UTF-8 with CHARSET, sends GMCP, MSDP and
 * MSSP once each is agreed, marks prompts with IAC EOR, and answers
 * commands: `say`, `fill` (a screenful of colours), `underscores`, and
 * GMCP `Core.Ping` (answered in kind).
 */
function mud(): Destination & { heard: Heard[] } {
  const heard: Heard[] = [];
  const destination = new Destination((conn) => {
    const state: Heard = { ttypes: [], charset: null, gmcp: [], lines: [], agreed: [] };
    heard.push(state);
    const write = (data: Uint8Array) => conn.write(data).catch(() => 0);
    const gmcp = (message: string) => write(bytes(IAC, SB, GMCP, message, IAC, SE));
    async function subnegotiation(data: number[]): Promise<void> {
      const [option, command] = data;
      const text = new TextDecoder().decode(Uint8Array.from(data.slice(2)));
      if (option === TTYPE && command === 0) {
        state.ttypes.push(text);
        if (state.ttypes.length < 3) await write(bytes(IAC, SB, TTYPE, 1, IAC, SE));
      } else if (option === CHARSET && command === 2) {
        state.charset = text;
      } else if (option === GMCP) {
        const message = new TextDecoder().decode(Uint8Array.from(data.slice(1)));
        state.gmcp.push(message);
        if (message.startsWith("Core.Ping")) await gmcp("Core.Ping");
      }
    }
    async function negotiated(verb: number, option: number): Promise<void> {
      state.agreed.push(`${verb === DO ? "DO" : verb === WILL ? "WILL" : "NO"} ${option}`);
      if (verb === WILL && option === TTYPE) await write(bytes(IAC, SB, TTYPE, 1, IAC, SE));
      if (verb === DO && option === CHARSET) {
        await write(bytes(IAC, SB, CHARSET, 1, ";UTF-8;ISO-8859-1", IAC, SE));
      }
      if (verb === DO && option === GMCP) await gmcp('Char.Vitals {"hp":100,"maxhp":120}');
      if (verb === DO && option === MSDP) {
        await write(bytes(
          IAC,
          SB,
          MSDP,
          VAR,
          "HEALTH",
          VAL,
          "100",
          VAR,
          "ROOM",
          VAL,
          [
            TABLE_OPEN,
            VAR,
          ],
          "NAME",
          VAL,
          "Hall",
          TABLE_CLOSE,
          IAC,
          SE,
        ));
      }
      if (verb === DO && option === MSSP) {
        await write(
          bytes(IAC, SB, MSSP, VAR, "NAME", VAL, "Test MUD", VAR, "PLAYERS", VAL, "3", IAC, SE),
        );
      }
    }
    async function line(text: string): Promise<void> {
      state.lines.push(text);
      if (text.startsWith("say ")) {
        await write(bytes(`You say: ${text.slice(4)}\r\n`, PROMPT, IAC, EOR_MARK));
      } else if (text === "fill") {
        const colours = Array.from(
          { length: 30 },
          (_, i) =>
            `\x1b[${31 + i % 7}m${String(i).padStart(2, "0")} ` +
            `\x1b[48;5;${16 + i * 7}m ${"=".repeat(20 + i)} \x1b[0m \x1b[1;38;2;250;${
              i * 8
            };90mtrue\x1b[0m ✓\r\n`,
        );
        await write(bytes(...colours, "END OF FILL\r\n", PROMPT, IAC, EOR_MARK));
      } else if (text === "underscores") {
        await write(bytes(`${"_".repeat(40)}\r\n`, PROMPT, IAC, EOR_MARK));
      } else {
        await write(bytes(`Huh?\r\n`, PROMPT, IAC, EOR_MARK));
      }
    }
    void (async () => {
      await write(bytes(IAC, DO, TTYPE, IAC, WILL, CHARSET, IAC, WILL, EOR));
      await write(bytes(IAC, WILL, GMCP, IAC, WILL, MSDP, IAC, WILL, MSSP));
      await write(bytes(
        "\x1b[1;31mRed\x1b[0m \x1b[32mgreen\x1b[0m héllo ✓ 漢字\r\n",
        PROMPT,
        IAC,
        EOR_MARK,
      ));
      const buffer = new Uint8Array(4096);
      let typed: number[] = [];
      let sb: number[] | null = null;
      let command: number | null = null;
      while (true) {
        const count = await conn.read(buffer).catch(() => null);
        if (count === null) return;
        for (const byte of buffer.subarray(0, count)) {
          if (command === IAC) {
            command = null;
            if (byte === SB) sb = [];
            else if (byte === SE && sb) {
              await subnegotiation(sb);
              sb = null;
            } else if (byte === IAC) (sb ?? typed).push(IAC);
            else if (byte >= WILL && byte <= DONT) command = byte;
          } else if (command !== null) {
            await negotiated(command === WONT || command === DONT ? 0 : command, byte);
            command = null;
          } else if (byte === IAC) command = IAC;
          else if (sb) sb.push(byte);
          else if (byte === 10) {
            await line(new TextDecoder().decode(Uint8Array.from(typed)).replace(/\r$/, ""));
            typed = [];
          } else if (byte !== 0) typed.push(byte);
        }
      }
    })();
  });
  return Object.assign(destination, { heard });
}

/** A raw CP437 service, as a BBS door or a shell on a pty: echoes what it gets, no telnet. */
function rawShell(): Destination & { heard: number[] } {
  const heard: number[] = [];
  const destination = new Destination((conn) => {
    void (async () => {
      // CP437 box drawing, then bytes a telnet engine would take for IAC WILL ECHO.
      await conn.write(bytes([0xc9, 0xcd, 0xbb], " BBS ", [0xff, 0xfb, 0x01], "\r\n$ "));
      const buffer = new Uint8Array(1024);
      while (true) {
        const count = await conn.read(buffer).catch(() => null);
        if (count === null) return;
        const got = buffer.slice(0, count);
        heard.push(...got);
        const echo = Array.from(got).flatMap((byte) => byte === 13 ? [13, 10, 0x24, 0x20] : [byte]);
        await conn.write(Uint8Array.from(echo)).catch(() => 0);
      }
    })();
  });
  return Object.assign(destination, { heard });
}

async function startGateway(proxyPort: number, options: Partial<GatewayOptions> = {}) {
  return await WebGateway.listen({ hostname: "127.0.0.1", port: 0 }, {
    proxy: { hostname: "127.0.0.1", port: proxyPort },
    logger: new LogCapture().logger,
    assets: WEB_ASSETS,
    ...options,
  });
}

/** Collects the page's events from its first script on, in `globalThis.seen`. */
function listenForEvents(page: Page): Promise<unknown> {
  return page.addInitScript(() => {
    const seen: { name: string; detail: unknown }[] = [];
    Object.assign(globalThis, { seen });
    for (const name of ["gmcp", "msdp", "mssp", "prompt"]) {
      addEventListener(`socketproxy:${name}`, (event) => {
        seen.push({ name, detail: (event as CustomEvent).detail });
      });
    }
  });
}

/** The events seen so far, once one named `name` is among them. */
// deno-lint-ignore no-explicit-any
async function eventsOnce(page: Page, name: string): Promise<{ name: string; detail: any }[]> {
  await page.waitForFunction(
    // deno-lint-ignore no-explicit-any
    (wanted) => (globalThis as any).seen.some((event: { name: string }) => event.name === wanted),
    name,
    { timeout: WAIT_MS },
  );
  // deno-lint-ignore no-explicit-any
  return await page.evaluate(() => (globalThis as any).seen);
}

/**
 * Runs in the page (plain JavaScript, so that it needs no DOM types here):
 * decodes PNG screenshots (base64) with a canvas, and counts the pixels of
 * the first that differ from `background` (`#rrggbb`), or, given two, the
 * pixels that differ between them (-1 when their sizes differ).
 */
const COUNT_PIXELS = `async ({ shots, background }) => {
  const load = async (data) => {
    const image = new Image();
    image.src = "data:image/png;base64," + data;
    await image.decode();
    const canvas = document.createElement("canvas");
    canvas.width = image.width;
    canvas.height = image.height;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    return context.getImageData(0, 0, image.width, image.height).data;
  };
  const a = await load(shots[0]);
  let count = 0;
  if (shots.length === 1) {
    const [r, g, b] = [1, 3, 5].map((at) => parseInt(background.slice(at, at + 2), 16));
    for (let i = 0; i < a.length; i += 4) {
      if (Math.abs(a[i] - r) + Math.abs(a[i + 1] - g) + Math.abs(a[i + 2] - b) > 24) count++;
    }
    return count;
  }
  const b = await load(shots[1]);
  if (a.length !== b.length) return -1;
  for (let i = 0; i < a.length; i += 4) {
    if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) count++;
  }
  return count;
}`;

/** Counts pixels of screenshots in the page (see {@linkcode COUNT_PIXELS}). */
async function countPixels(page: Page, shots: Uint8Array[], background = ""): Promise<number> {
  const args = JSON.stringify({ shots: shots.map((shot) => shot.toBase64()), background });
  return Number(await page.evaluate(`(${COUNT_PIXELS})(${args})`));
}

/**
 * A screenshot of the terminal once it stands still, without the scrollbar
 * (xterm.js shows it while scrolling and fades it out later, which has no
 * event to wait on): shots are taken until two in a row are the same.
 */
async function steadyShot(page: Page): Promise<Uint8Array> {
  // Its fade starts only after a while: hidden outright, it is not the screen's content anyway.
  await page.addStyleTag({ content: ".xterm .scrollbar { visibility: hidden !important; }" });
  let last = await page.locator("#terminal").screenshot();
  for (let tries = 0; tries < 50; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const shot = await page.locator("#terminal").screenshot();
    if (shot.length === last.length && shot.every((byte, i) => byte === last[i])) return shot;
    last = shot;
  }
  throw new Error("the terminal did not stand still for a screenshot");
}

/** The screenshot of terminal row `row` (of the viewport). */
async function rowShot(page: Page, row: number): Promise<Uint8Array> {
  const box = await page.locator(".xterm-rows > div").nth(row).boundingBox();
  assert.ok(box, `row ${row} of the terminal is on the page`);
  return await page.screenshot({ clip: box });
}

Deno.test({
  name: CHROMIUM
    ? "the browser terminal against a MUD: MTTS, CHARSET, colours, UTF-8, EOR prompts, GMCP, MSDP and MSSP"
    : "the browser terminal against a MUD (skipped: chromium is not installed; apt-get install chromium)",
  ignore: !CHROMIUM,
  async fn() {
    await using destination = mud();
    await using proxy = startServer(destination.port);
    await using gateway = await startGateway(proxy.port);
    await withBrowser(async (browser) => {
      const page = await browser.newPage({ viewport: { width: 900, height: 520 } });
      await listenForEvents(page);
      await page.goto(`http://127.0.0.1:${gateway.addr.port}/`);
      await waitForScreen(page, /Red green héllo ✓ 漢字\nHP:100> /);
      await waitForStatus(page, "connected");
      await rememberSecrets(page);
      const heard = destination.heard[0];
      assert.ok(heard);

      // TTYPE three times: the client, the terminal, and MTTS with ANSI, UTF-8, 256
      // colours, PROXY (the gateway) and truecolor: 1 + 4 + 8 + 128 + 256.
      await waitUntil(() => heard.ttypes.length === 3, "three TTYPE answers");
      assert.deepEqual(heard.ttypes, ["SOCKETPROXY", "xterm-256color", "MTTS 397"]);
      await waitUntil(() => heard.charset !== null, "CHARSET answered");
      assert.equal(heard.charset, "UTF-8");
      for (const agreed of ["DO 25", "DO 201", "DO 69", "DO 70", "DO 42", "WILL 24"]) {
        assert.ok(heard.agreed.includes(agreed), `${agreed} in ${heard.agreed}`);
      }
      await waitUntil(() => heard.gmcp.length > 0, "GMCP Core.Hello");
      assert.match(heard.gmcp[0] ?? "", /^Core\.Hello \{"client":"SOCKETPROXY","version":/);

      // The events, as the page's window has them.
      const seen = await eventsOnce(page, "mssp");
      await eventsOnce(page, "msdp");
      const vitals = seen.find((event) => event.name === "gmcp")?.detail;
      assert.deepEqual(vitals, {
        type: "gmcp",
        package: "Char.Vitals",
        text: '{"hp":100,"maxhp":120}',
        data: { hp: 100, maxhp: 120 },
      });
      const all = await eventsOnce(page, "msdp");
      assert.deepEqual(all.find((event) => event.name === "msdp")?.detail.variables, {
        HEALTH: "100",
        ROOM: { NAME: "Hall" },
      });
      assert.deepEqual(all.find((event) => event.name === "mssp")?.detail.variables, {
        NAME: "Test MUD",
        PLAYERS: "3",
      });
      assert.equal(all.find((event) => event.name === "prompt")?.detail.mark, "eor");
      // Line mode shows the prompt beside the input.
      assert.equal(await page.textContent("#prompt"), "HP:100>");

      // Colours: bold red, then green, as xterm.js holds the cells.
      const cells = await page.evaluate(() => {
        // deno-lint-ignore no-explicit-any
        const line = (globalThis as any).socketproxy.terminal.buffer.active.getLine(0);
        return [0, 4].map((x) => {
          const cell = line.getCell(x);
          return [cell.getChars(), cell.getFgColor(), cell.isFgPalette(), cell.isBold() !== 0];
        });
      });
      assert.deepEqual(cells, [["R", 1, true, true], ["g", 2, true, false]]);

      // UTF-8 both ways.
      await page.fill("#input", "say héllo ✓");
      await page.press("#input", "Enter");
      await waitForScreen(page, /You say: héllo ✓\nHP:100> /);
      assert.equal(heard.lines.at(-1), "say héllo ✓");

      // GMCP from the page: Core.Ping, answered by the MUD, back as an event.
      assert.equal(
        // deno-lint-ignore no-explicit-any
        await page.evaluate(() => (globalThis as any).socketproxy.sendGmcp("Core.Ping")),
        true,
      );
      await waitUntil(() => heard.gmcp.includes("Core.Ping"), "the page's Core.Ping");
      await page.waitForFunction(() =>
        // deno-lint-ignore no-explicit-any
        (globalThis as any).seen.some((event: any) => event.detail.package === "Core.Ping")
      );

      // Every glyph whole: a row of underscores has ink in it.
      await page.fill("#input", "underscores");
      await page.press("#input", "Enter");
      const text = await waitForScreen(page, /\n_{40}\nHP:100> $/);
      const row = text.split("\n").indexOf("_".repeat(40));
      const viewportTop = await page.evaluate(() =>
        // deno-lint-ignore no-explicit-any
        (globalThis as any).socketproxy.terminal.buffer.active.viewportY
      );
      const ink = await countPixels(page, [await rowShot(page, row - viewportTop)], "#101010");
      assert.ok(ink > 40 * 3, `the underscores' row shows them: ${ink} pixels of ink`);
    });
  },
});

Deno.test({
  name: CHROMIUM
    ? "the browser terminal keeps its screen across a reload: the same pixels, nothing shown twice"
    : "the browser terminal keeps its screen across a reload (skipped: chromium is not installed)",
  ignore: !CHROMIUM,
  async fn() {
    await using destination = mud();
    await using proxy = startServer(destination.port);
    await using gateway = await startGateway(proxy.port);
    await withBrowser(async (browser) => {
      const page = await browser.newPage({ viewport: { width: 900, height: 520 } });
      await page.goto(`http://127.0.0.1:${gateway.addr.port}/`);
      await waitForScreen(page, /HP:100> /);
      await waitForStatus(page, "connected");
      await rememberSecrets(page);
      await page.fill("#input", "fill");
      await page.press("#input", "Enter");
      const before = await waitForScreen(page, /END OF FILL\nHP:100> $/);
      const shot = await steadyShot(page);

      await page.reload();
      await waitForStatus(page, "connected");
      const after = await waitForScreen(page, /END OF FILL\nHP:100> $/);
      assert.equal(after, before, "the same text, none repeated, none lost");
      const again = await steadyShot(page);
      const differ = await countPixels(page, [shot, again]);
      assert.equal(differ, 0, "the coloured screen looks the same after the reload");

      // Output goes on from where the screen ends.
      await page.fill("#input", "say back");
      await page.press("#input", "Enter");
      const next = await waitForScreen(page, /You say: back\nHP:100> $/);
      assert.equal(next, `${before}say back\nYou say: back\nHP:100> `);
      assert.equal(destination.heard.length, 1, "one session throughout");
    });
  },
});

Deno.test({
  name: CHROMIUM
    ? "an embedding site at ?embedder= gets the events by postMessage and sends GMCP; another origin gets nothing"
    : "an embedding site at ?embedder= (skipped: chromium is not installed)",
  ignore: !CHROMIUM,
  async fn() {
    await using destination = mud();
    await using proxy = startServer(destination.port);
    await using gateway = await startGateway(proxy.port);
    const terminalOrigin = `http://127.0.0.1:${gateway.addr.port}`;
    const { promise: listening, resolve } = Promise.withResolvers<number>();
    await using _site = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: ({ port }) => resolve(port) },
      (request) => {
        const embedder = new URL(request.url).searchParams.get("embedder") ?? "";
        return new Response(
          `<!doctype html><script>
            globalThis.messages = [];
            addEventListener("message", (event) => {
              if (event.origin === ${JSON.stringify(terminalOrigin)}) messages.push(event.data);
            });
          </script>
          <iframe id="game" width="800" height="400"
            src="${terminalOrigin}/?embedder=${encodeURIComponent(embedder)}"></iframe>`,
          { headers: { "content-type": "text/html" } },
        );
      },
    );
    const siteOrigin = `http://127.0.0.1:${await listening}`;
    await withBrowser(async (browser) => {
      const page = await browser.newPage();
      await page.goto(`${siteOrigin}/?embedder=${encodeURIComponent(siteOrigin)}`);
      await page.waitForFunction(
        // deno-lint-ignore no-explicit-any
        () => (globalThis as any).messages.some((m: any) => m.type === "socketproxy:gmcp"),
        undefined,
        { timeout: WAIT_MS },
      );
      // deno-lint-ignore no-explicit-any
      const messages: any[] = await page.evaluate(() => (globalThis as any).messages);
      assert.deepEqual(messages.find((m) => m.type === "socketproxy:gmcp")?.detail.data, {
        hp: 100,
        maxhp: 120,
      });
      assert.ok(messages.some((m) => m.type === "socketproxy:prompt"));
      const frame = page.frames().find((f) => f.url().startsWith(terminalOrigin));
      assert.ok(frame);
      const stored = await frame.evaluate(() => sessionStorage.getItem("socketproxy-session"));
      if (stored) issuedSecrets.add(JSON.parse(stored).secret);
      await page.evaluate((origin) => {
        // deno-lint-ignore no-explicit-any
        const game = (globalThis as any).document.getElementById("game");
        game.contentWindow.postMessage(
          { type: "socketproxy:send-gmcp", package: "Comm.Channel.Say", data: { text: "hi" } },
          origin,
        );
      }, terminalOrigin);
      const heard = destination.heard[0];
      assert.ok(heard);
      await waitUntil(
        () => heard.gmcp.includes('Comm.Channel.Say {"text":"hi"}'),
        "GMCP from the embedder",
      );

      // A frame told another embedder posts nothing here, and takes nothing from here.
      const other = await browser.newPage();
      await other.goto(`${siteOrigin}/?embedder=${encodeURIComponent("http://127.0.0.1:1")}`);
      const otherFrame = other.frames().find((f) => f.url().startsWith(terminalOrigin));
      assert.ok(otherFrame);
      await waitUntil(() => destination.heard.length === 2, "the second session");
      const second = destination.heard[1];
      assert.ok(second);
      await waitUntil(() => second.gmcp.length > 0, "its Core.Hello");
      await otherFrame.waitForFunction(
        // deno-lint-ignore no-explicit-any
        () => (globalThis as any).socketproxy?.session?.current?.ack > 0,
        undefined,
        { timeout: WAIT_MS },
      );
      const otherStored = await otherFrame.evaluate(() =>
        sessionStorage.getItem("socketproxy-session")
      );
      if (otherStored) issuedSecrets.add(JSON.parse(otherStored).secret);
      await other.evaluate((origin) => {
        // deno-lint-ignore no-explicit-any
        const game = (globalThis as any).document.getElementById("game");
        game.contentWindow.postMessage({ type: "socketproxy:send-gmcp", package: "Bad" }, origin);
      }, terminalOrigin);
      // The page's own GMCP after it: had "Bad" been taken, it would have come first.
      await otherFrame.evaluate(() =>
        // deno-lint-ignore no-explicit-any
        (globalThis as any).socketproxy.sendGmcp("Core.Ping")
      );
      await waitUntil(() => second.gmcp.includes("Core.Ping"), "the frame's own Core.Ping");
      assert.ok(!second.gmcp.includes("Bad"), `not taken from another origin: ${second.gmcp}`);
      // deno-lint-ignore no-explicit-any
      assert.deepEqual(await other.evaluate(() => (globalThis as any).messages), []);
    });
  },
});

Deno.test({
  name: CHROMIUM
    ? "a raw CP437 destination chosen with ?to=: no telnet, Enter as CR, its echo shown once"
    : "a raw CP437 destination chosen with ?to= (skipped: chromium is not installed)",
  ignore: !CHROMIUM,
  async fn() {
    await using main = mud();
    await using shell = rawShell();
    await using proxy = startServer(main.port, {
      destinations: [
        { name: "bbs", addr: { hostname: "127.0.0.1", port: shell.port }, sendProxy: null },
      ],
    });
    await using gateway = await startGateway(proxy.port, {
      destinations: new Map([["bbs", { ...RAW_TERMINAL, charset: "cp437" as const }]]),
    });
    await withBrowser(async (browser) => {
      const page = await browser.newPage();
      await page.goto(
        `http://127.0.0.1:${gateway.addr.port}/?to=bbs&theme=light&fontSize=18&font=Liberation+Mono`,
      );
      await waitForScreen(page, /╔═╗ BBS \u00a0√\n\$ $/);
      // The look the address asked for.
      const look = await page.evaluate(() => {
        // deno-lint-ignore no-explicit-any
        const { terminal, settings } = (globalThis as any).socketproxy;
        return [
          terminal.options.fontSize,
          terminal.options.fontFamily.split(",")[0],
          terminal.options.theme.background,
          // deno-lint-ignore no-explicit-any
          (globalThis as any).document.body.className,
          settings.mode,
        ];
      });
      assert.deepEqual(look, [18, '"Liberation Mono"', "#fbfbf8", "theme-light", "raw"]);
      await waitForStatus(page, "connected");
      await rememberSecrets(page);
      assert.equal(await page.isVisible("#input"), false, "character mode: the destination echoes");
      assert.deepEqual(shell.heard, [], "no telnet answers to bytes that look like telnet");
      await page.click("#terminal");
      await page.keyboard.type("dir é");
      await page.keyboard.press("Enter");
      const text = await waitForScreen(page, /\$ dir é\n\$ $/);
      assert.deepEqual(shell.heard, [...encoder.encode("dir "), 0x82, 13], "CP437, Enter as CR");
      assert.equal(text.match(/dir é/g)?.length, 1, "the echo shown once");
      assert.equal(main.heard.length, 0, "the default destination untouched");

      // A name the gateway does not serve: the page says so, and stops.
      const stray = await browser.newPage();
      await stray.goto(`http://127.0.0.1:${gateway.addr.port}/?to=tavern`);
      await waitForStatus(stray, "ended");
      assert.match(await stray.textContent("#detail") ?? "", /no destination named "tavern"/);
    });
  },
});
