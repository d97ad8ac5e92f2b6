/**
 * The browser terminal: xterm.js in front of a socketproxy session, with
 * telnet spoken properly (lib/telnet.ts), a line-input mode with history
 * for line-oriented services, and a status line. Bundled into
 * web/dist/app.js by `deno task build`.
 *
 * Output: session -> telnet (commands answered, never shown) -> terminal.
 * Input: terminal keystrokes (character mode, when the server echoes) or
 * the line input (line mode) -> telnet escaping -> session.
 *
 * When another window takes the session over, this one stops and says so;
 * a click or a key takes it back here. When the session ends (the
 * destination closed, it was closed, the server stopped), the page says why.
 *
 * @module
 */

/// <reference lib="dom" />

import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import { Telnet } from "./telnet.ts";
import { BrowserSession, type Status, type Transport } from "./session_client.ts";

/** The telnet state is kept per session: a new session starts with a fresh engine. */
const TELNET_KEY_PREFIX = "socketproxy-telnet:";
const HISTORY_KEY = "socketproxy-history";
const HISTORY_LIMIT = 200;

function element<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}
const statusBadge = element<HTMLSpanElement>("status");
const detail = element<HTMLSpanElement>("detail");
const lineForm = element<HTMLFormElement>("line");
const lineInput = element<HTMLInputElement>("input");
const lineMode = element<HTMLInputElement>("line-mode");
const renewButton = element<HTMLButtonElement>("new-session");

const encoder = new TextEncoder();

const terminal = new Terminal({
  scrollback: 5000,
  cursorBlink: true,
  fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
  fontSize: 14,
  theme: { background: "#101010" },
});
const fit = new FitAddon();
terminal.loadAddon(fit);
terminal.open(element("terminal"));
fit.fit();

const telnet = new Telnet({ size: { columns: terminal.cols, rows: terminal.rows } });
const FRESH_TELNET = telnet.snapshot();

const requested = new URLSearchParams(location.search).get("transport");
const transport = ["websocket", "longpoll", "poll"].includes(requested ?? "")
  ? requested as Transport
  : "auto";

const session = new BrowserSession({
  base: location.href,
  storage: sessionStorage,
  transport,
  onOutput(bytes) {
    const { display, reply } = telnet.receive(bytes);
    if (display.length > 0) terminal.write(display);
    if (reply.length > 0) session.send(reply);
    // Saved with the offset it goes with: a reload resumes the parser too.
    const key = telnetKey();
    if (key) sessionStorage.setItem(key, JSON.stringify(telnet.snapshot()));
    followEcho();
  },
  onStatus: showStatus,
  onNotice(message) {
    terminal.write(`\r\n\x1b[33m[${message}]\x1b[0m\r\n`);
  },
});

function telnetKey(): string | null {
  const id = session.current?.id;
  return id ? TELNET_KEY_PREFIX + id : null;
}

/**
 * Takes up the telnet state of the session just started: its own, saved
 * before a reload, or a fresh one for a new session. Other sessions' states
 * are dropped. The server then hears the window's size again, which may
 * have changed while the page was away.
 */
function takeUpTelnet(): void {
  const key = telnetKey();
  for (let i = sessionStorage.length - 1; i >= 0; i--) {
    const other = sessionStorage.key(i);
    if (other?.startsWith("socketproxy-telnet") && other !== key) sessionStorage.removeItem(other);
  }
  telnet.restore(FRESH_TELNET);
  try {
    const saved = key ? sessionStorage.getItem(key) : null;
    if (saved) telnet.restore(JSON.parse(saved));
  } catch {
    if (key) sessionStorage.removeItem(key);
  }
  followEcho();
  const naws = telnet.resize(terminal.cols, terminal.rows);
  if (naws.length > 0) session.send(naws);
}

/** Another window took the session over: a click or a key takes it back. */
let takenOver = false;

function showStatus(status: Status, text: string): void {
  takenOver = status === "taken-over";
  if (takenOver) text += "; click or press a key to resume here";
  statusBadge.textContent = status === "taken-over" ? "taken over" : status;
  statusBadge.className = `status ${status}`;
  detail.textContent = text;
  document.body.dataset.status = status;
  if (status === "ended") {
    const key = telnetKey();
    if (key) sessionStorage.removeItem(key);
  }
  if (status === "ended" || status === "taken-over") {
    terminal.write(`\r\n\x1b[33m[${text}]\x1b[0m\r\n`);
  }
}

// Line mode: on for services that do not echo (most line-oriented ones),
// off once the server echoes, unless the user chose.
let lineModeChosen = false;
function followEcho(): void {
  if (lineModeChosen) return;
  setLineMode(!telnet.remoteEcho);
}

function setLineMode(on: boolean): void {
  lineMode.checked = on;
  lineForm.hidden = !on;
  document.body.classList.toggle("line-mode", on);
  if (on) lineInput.focus();
  else terminal.focus();
}

/** Resumes the session in this window, if another one took it; returns whether it did. */
function resumeHere(): boolean {
  if (!takenOver) return false;
  takenOver = false;
  session.resume().then(() => {
    // This window's size, which the other one may have changed.
    const naws = telnet.resize(terminal.cols, terminal.rows);
    if (naws.length > 0) session.send(naws);
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

function send(bytes: Uint8Array): void {
  session.send(telnet.encodeInput(bytes));
}

// Character mode: every keystroke goes out as typed.
terminal.onData((text) => {
  if (resumeHere()) return; // the key resumes; it is not input
  if (lineMode.checked) {
    lineInput.focus();
    if (text.length === 1 && text >= " ") lineInput.value += text;
    return;
  }
  send(encoder.encode(text));
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
  // The service does not echo in line mode: show what was sent, dimmed.
  terminal.write(`\x1b[2m${line}\x1b[0m\r\n`);
  send(encoder.encode(line + "\r"));
});
lineInput.addEventListener("keydown", (event) => {
  if (resumeHere()) {
    event.preventDefault();
    return;
  }
  if (event.key !== "ArrowUp" && event.key !== "ArrowDown") return;
  event.preventDefault();
  historyAt = Math.max(0, Math.min(history.length, historyAt + (event.key === "ArrowUp" ? -1 : 1)));
  lineInput.value = history[historyAt] ?? "";
});

// Resizing: the terminal fills the window, and the server hears the new size (NAWS).
terminal.onResize(({ cols, rows }) => {
  const naws = telnet.resize(cols, rows);
  if (naws.length > 0) session.send(naws);
});
new ResizeObserver(() => fit.fit()).observe(element("terminal"));

renewButton.addEventListener("click", async () => {
  terminal.reset();
  lineModeChosen = false;
  await session.renew();
  takeUpTelnet();
  terminal.focus();
});

followEcho();
session.start().then(takeUpTelnet, (error) => showStatus("ended", String(error?.message ?? error)));
// For tests and the curious: which transport and session this page uses.
Object.assign(globalThis, { socketproxy: { session, telnet, terminal } });
