/**
 * The browser terminal: xterm.js in front of a socketproxy session, with
 * telnet spoken properly (telnet.ts) or raw bytes, a line-input mode with
 * history for line-oriented services, and a status line. Bundled into
 * web/dist/app.js by `deno task build`.
 *
 * Before it connects, the page asks the gateway how to speak to its
 * destination (`GET api/terminal?to=`): telnet or raw, the charset, what
 * Enter sends, local echo.
 *
 * Output: session -> telnet (commands answered, events handed to the site,
 * never shown) -> text in the charset -> terminal, whose screen is kept
 * across reloads (screen_keeper.ts). Input: keystrokes (character mode, when
 * the destination echoes) or the line input (line mode, beside the last
 * prompt) -> the charset and telnet escaping -> session.
 *
 * When another window takes the session over, this one stops and says so;
 * a click or a key takes it back here. When the session ends (the
 * destination closed, it was closed, the server stopped), the page says why.
 *
 * @module
 */

/// <reference lib="dom" />

import { FitAddon } from "@xterm/addon-fit";
import { SerializeAddon } from "@xterm/addon-serialize";
import { type ITheme, Terminal } from "@xterm/xterm";
import {
  encodeText,
  type MsdpValue,
  Telnet,
  type TelnetEvent,
  type TelnetState,
} from "./telnet.ts";
import { BrowserSession, type Status } from "./session_client.ts";
import { pageOptions } from "./page_options.ts";
import { PageEvents } from "./page_events.ts";
import { ScreenKeeper } from "./screen_keeper.ts";
import { TextStream } from "./text_stream.ts";
import {
  TELNET_TERMINAL,
  type TerminalSettings,
  terminalSettingsOf,
} from "../lib/gateway/terminal_settings.ts";

const HISTORY_KEY = "socketproxy-history";
const HISTORY_LIMIT = 200;
/** Where pages before the screen keeper kept the telnet state. */
const OLD_TELNET_PREFIX = "socketproxy-telnet:";
/** Most characters of a prompt shown beside the line input. */
const PROMPT_LIMIT = 160;
const MAX_BACKOFF_MS = 5000;
const ENTER = { crlf: "\r\n", lf: "\n", cr: "\r" } as const;
/** Escape sequences and control characters, taken out of a prompt shown as plain text. */
const NOT_TEXT = new RegExp(
  String.raw`\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -~]?|[\x00-\x1f\x7f]`,
  "g",
);

const THEMES: Record<"dark" | "light", ITheme> = {
  dark: { background: "#101010" },
  light: {
    background: "#fbfbf8",
    foreground: "#1f1f1f",
    cursor: "#1f1f1f",
    cursorAccent: "#fbfbf8",
    selectionBackground: "#b4d2f0",
    // The dark theme's yellow and white vanish on a light background.
    yellow: "#8a6d00",
    brightYellow: "#a07f00",
    white: "#6b6b6b",
    brightWhite: "#3c3c3c",
  },
};

function element<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}
const statusBadge = element<HTMLSpanElement>("status");
const detail = element<HTMLSpanElement>("detail");
const lineForm = element<HTMLFormElement>("line");
const lineInput = element<HTMLInputElement>("input");
const promptLabel = element<HTMLSpanElement>("prompt");
const lineMode = element<HTMLInputElement>("line-mode");
const renewButton = element<HTMLButtonElement>("new-session");

const options = pageOptions(location.search);
document.body.classList.toggle("theme-light", options.theme === "light");

const terminal = new Terminal({
  scrollback: 5000,
  cursorBlink: true,
  fontFamily: options.fontFamily,
  fontSize: options.fontSize,
  // At 1.0 a row is the font's em box, which cuts off descenders: underscores vanished.
  lineHeight: 1.2,
  theme: THEMES[options.theme],
});
const fit = new FitAddon();
terminal.loadAddon(fit);
const serializer = new SerializeAddon();
terminal.loadAddon(serializer);
terminal.open(element("terminal"));
fit.fit();

/** For embedders, tests and the curious: filled in as the page comes up. */
const api: Record<string, unknown> = { terminal, options };
Object.assign(globalThis, { socketproxy: api });

/** Another window took the session over: a click or a key takes it back. */
let takenOver = false;

function showStatus(status: Status, text: string): void {
  takenOver = status === "taken-over";
  if (takenOver) text += "; click or press a key to resume here";
  statusBadge.textContent = status === "taken-over" ? "taken over" : status;
  statusBadge.className = `status ${status}`;
  detail.textContent = text;
  document.body.dataset.status = status;
  if (status === "ended") keeper.forget();
  if (status === "ended" || status === "taken-over") {
    terminal.write(`\r\n\x1b[33m[${text}]\x1b[0m\r\n`);
  }
}

const keeper = new ScreenKeeper({ storage: sessionStorage, terminal, serializer });

/**
 * How to speak to the destination, from the gateway; while the gateway is
 * away, asked again with a growing wait. `null`: it serves no such
 * destination (the page says so and stops).
 */
async function loadSettings(): Promise<TerminalSettings | null> {
  const url = new URL("api/terminal", location.href);
  if (options.to !== undefined) url.searchParams.set("to", options.to);
  let backoff = 0;
  showStatus("connecting", "asking the gateway about the destination");
  while (true) {
    const response = await fetch(url, { cache: "no-store" }).catch(() => null);
    const body = await response?.json().catch(() => ({})) ?? {};
    if (response?.ok) {
      try {
        return terminalSettingsOf(body);
      } catch {
        return { ...TELNET_TERMINAL };
      }
    }
    if (response?.status === 404 && body.error === "unknown_destination") {
      showStatus("ended", String(body.message ?? "the gateway serves no such destination"));
      return null;
    }
    // A gateway from before per-destination settings: telnet, as it always was.
    if (response && response.status < 500) return { ...TELNET_TERMINAL };
    backoff = Math.min(MAX_BACKOFF_MS, backoff === 0 ? 250 : backoff * 2);
    showStatus(
      "reconnecting",
      `the gateway is not answering; trying again in ${Math.round(backoff / 100) / 10} s`,
    );
    await new Promise((resolve) => setTimeout(resolve, backoff));
  }
}

const settings = await loadSettings();
if (settings) start(settings);

/** Everything that needs the destination's settings: the engine, the session, the input. */
function start(settings: TerminalSettings): void {
  const telnet = settings.mode === "telnet"
    ? new Telnet({
      size: { columns: terminal.cols, rows: terminal.rows },
      charset: settings.charset,
      // Every player comes through the gateway: MTTS's PROXY bit.
      mtts: { proxy: true },
    })
    : null;
  const freshTelnet = telnet?.snapshot();
  const text = new TextStream(settings.charset);
  const events = new PageEvents(window, options.embedder);
  /** The session whose screen this page shows. */
  let shownSession: string | null = null;
  /** The text of the line the cursor is on, for the prompt label. */
  let lineSoFar = "";
  let prompt = "";

  const session = new BrowserSession({
    base: location.href,
    storage: sessionStorage,
    transport: options.transport,
    ...(options.to === undefined ? {} : { to: options.to }),
    onOutput,
    onStatus: showStatus,
    onNotice(message) {
      terminal.write(`\r\n\x1b[33m[${message}]\x1b[0m\r\n`);
    },
    onSession: takeUp,
  });
  Object.assign(api, { session, telnet, settings, sendGmcp, sendMsdp });

  function onOutput(bytes: Uint8Array): void {
    let display = bytes;
    let found: TelnetEvent[] = [];
    if (telnet) {
      const received = telnet.receive(bytes);
      if (received.reply.length > 0) session.send(received.reply);
      display = received.display;
      found = received.events;
      text.charset = telnet.charset; // CHARSET may have agreed on another
    }
    // Decoded piece by piece, so that each prompt mark falls where it was sent.
    let shown = "";
    let from = 0;
    for (const event of found) {
      if (event.type !== "prompt") continue;
      shown += follow(text.decode(display.subarray(from, event.at)));
      from = event.at;
      prompt = lineSoFar.replace(NOT_TEXT, "").trim().slice(-PROMPT_LIMIT);
    }
    shown += follow(text.decode(display.subarray(from)));
    promptLabel.textContent = prompt;
    keeper.written(shown, session.current?.ack ?? 0, {
      telnet: telnet?.snapshot() ?? null,
      carry: text.carry,
      prompt,
    });
    for (const event of found) events.dispatch(event);
    followEcho();
  }

  /** Keeps the text of the current line, for the prompt; returns `piece`. */
  function follow(piece: string): string {
    const cut = Math.max(piece.lastIndexOf("\n"), piece.lastIndexOf("\r"));
    lineSoFar = (cut < 0 ? lineSoFar + piece : piece.slice(cut + 1)).slice(-4 * PROMPT_LIMIT);
    return piece;
  }

  /**
   * Takes up the session just started, before its output: its screen and
   * state as saved before a reload (or a fresh state for a new session).
   * The server then hears the window's size again, which may have changed
   * while the page was away. The same session resumed after a takeover
   * keeps what the page shows.
   */
  function takeUp(id: string, ack: number): void {
    if (id === shownSession) return;
    shownSession = id;
    terminal.reset();
    if (telnet && freshTelnet) telnet.restore(freshTelnet);
    text.carry = [];
    lineSoFar = "";
    prompt = "";
    const kept = keeper.takeUp(id, ack)?.state ?? oldTelnetState(id);
    if (kept) {
      try {
        if (telnet && kept.telnet) telnet.restore(kept.telnet as TelnetState);
      } catch {
        // Not a snapshot: telnet starts afresh.
      }
      if (Array.isArray(kept.carry)) text.carry = kept.carry.filter(Number.isInteger);
      if (typeof kept.prompt === "string") prompt = kept.prompt.slice(0, PROMPT_LIMIT);
    }
    text.charset = telnet?.charset ?? settings.charset;
    promptLabel.textContent = prompt;
    followEcho();
    const naws = telnet?.resize(terminal.cols, terminal.rows);
    if (naws && naws.length > 0) session.send(naws);
  }

  /** The telnet state a page before the screen keeper saved, if any. */
  function oldTelnetState(id: string): Record<string, unknown> | null {
    try {
      const saved = sessionStorage.getItem(OLD_TELNET_PREFIX + id);
      sessionStorage.removeItem(OLD_TELNET_PREFIX + id);
      return saved ? { telnet: JSON.parse(saved) } : null;
    } catch {
      return null;
    }
  }

  /** Sends GMCP to the destination; false while GMCP is off (or in raw mode). */
  function sendGmcp(name: string, data?: unknown): boolean {
    const bytes = telnet?.sendGmcp(name, data) ?? new Uint8Array(0);
    if (bytes.length > 0) session.send(bytes);
    return bytes.length > 0;
  }

  /** Sends MSDP to the destination; false while MSDP is off (or in raw mode). */
  function sendMsdp(variable: string, value: MsdpValue): boolean {
    const bytes = telnet?.sendMsdp(variable, value) ?? new Uint8Array(0);
    if (bytes.length > 0) session.send(bytes);
    return bytes.length > 0;
  }
  events.listen({ sendGmcp, sendMsdp });

  /** Whether the page shows what is sent: the settings say, and a telnet server's ECHO. */
  function echoesLocally(): boolean {
    return settings.localEcho && !(telnet?.remoteEcho ?? false);
  }

  // Line mode: on while the page echoes (most line-oriented services), off
  // once the destination echoes, unless the user chose.
  let lineModeChosen = false;
  function followEcho(): void {
    if (!lineModeChosen) setLineMode(echoesLocally());
  }

  function setLineMode(on: boolean): void {
    if (lineMode.checked === on && lineForm.hidden === !on) return;
    lineMode.checked = on;
    lineForm.hidden = !on;
    document.body.classList.toggle("line-mode", on);
    if (on) lineInput.focus();
    else terminal.focus();
  }

  /** Keys or a line, Enter as the destination wants it, in its charset, telnet-escaped. */
  function encodeKeys(keys: string): Uint8Array {
    const ending = settings.lineEnding;
    if (!telnet) return encodeText(keys.replace(/\r(?!\n)/g, ENTER[ending]), settings.charset);
    // Telnet sends CR as CR LF or CR NUL; LF alone passes as it is.
    const typed = ending === "lf" ? keys.replace(/\r(?!\n)/g, "\n") : keys;
    return telnet.encodeInput(telnet.encode(typed), ending !== "cr");
  }

  /** Resumes the session in this window, if another one took it; returns whether it did. */
  function resumeHere(): boolean {
    if (!takenOver) return false;
    takenOver = false;
    session.resume().then(() => {
      // This window's size, which the other one may have changed.
      const naws = telnet?.resize(terminal.cols, terminal.rows);
      if (naws && naws.length > 0) session.send(naws);
    }, (error) => showStatus("ended", String(error?.message ?? error)));
    return true;
  }

  for (const target of [element("terminal"), statusBadge, detail]) {
    target.addEventListener("click", resumeHere);
  }

  lineMode.addEventListener("change", () => {
    lineModeChosen = true;
    setLineMode(lineMode.checked);
  });

  // Character mode: every keystroke goes out as typed.
  terminal.onData((keys) => {
    if (resumeHere()) return; // the key resumes; it is not input
    if (lineMode.checked) {
      lineInput.focus();
      if (keys.length === 1 && keys >= " ") lineInput.value += keys;
      return;
    }
    session.send(encodeKeys(keys));
  });

  // Ctrl+C copies when there is a selection; otherwise it is the interrupt key.
  terminal.attachCustomKeyEventHandler((event) => {
    if (event.type === "keydown" && event.ctrlKey && event.key === "c" && terminal.hasSelection()) {
      navigator.clipboard?.writeText(terminal.getSelection()).catch(() => {});
      return false;
    }
    return true;
  });

  // Line mode, with history.
  const history: string[] = JSON.parse(sessionStorage.getItem(HISTORY_KEY) ?? "[]");
  let historyAt = history.length;
  lineForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const line = lineInput.value;
    lineInput.value = "";
    if (line && history.at(-1) !== line) {
      history.push(line);
      history.splice(0, history.length - HISTORY_LIMIT);
      sessionStorage.setItem(HISTORY_KEY, JSON.stringify(history));
    }
    historyAt = history.length;
    // The destination does not echo: show what was sent, dimmed.
    if (echoesLocally()) {
      keeper.written(`\x1b[2m${line}\x1b[0m\r\n`, session.current?.ack ?? 0, {
        telnet: telnet?.snapshot() ?? null,
        carry: text.carry,
        prompt,
      });
    }
    session.send(encodeKeys(line + "\r"));
  });
  lineInput.addEventListener("keydown", (event) => {
    if (resumeHere()) {
      event.preventDefault();
      return;
    }
    if (event.key !== "ArrowUp" && event.key !== "ArrowDown") return;
    event.preventDefault();
    historyAt = Math.max(
      0,
      Math.min(history.length, historyAt + (event.key === "ArrowUp" ? -1 : 1)),
    );
    lineInput.value = history[historyAt] ?? "";
  });

  // Resizing: the terminal fills the window, and a telnet server hears the new size (NAWS).
  terminal.onResize(({ cols, rows }) => {
    const naws = telnet?.resize(cols, rows);
    if (naws && naws.length > 0) session.send(naws);
  });
  new ResizeObserver(() => fit.fit()).observe(element("terminal"));

  // The screen as it is when the page goes away, for the next one.
  addEventListener("pagehide", () => keeper.snapshot());
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") keeper.snapshot();
  });

  renewButton.addEventListener("click", async () => {
    keeper.forget();
    shownSession = null;
    terminal.reset();
    lineModeChosen = false;
    await session.renew();
    terminal.focus();
  });

  followEcho();
  session.start().catch((error) => showStatus("ended", String(error?.message ?? error)));
}
