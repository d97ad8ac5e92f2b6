/**
 * The browser page: shows the session's output and sends typed lines.
 * Bundled into web/dist/app.js by `deno task build`.
 *
 * @module
 */

/// <reference lib="dom" />

import { BrowserSession, type Transport } from "./session_client.ts";

const output = document.getElementById("output") as HTMLPreElement;
const status = document.getElementById("status") as HTMLSpanElement;
const detail = document.getElementById("detail") as HTMLSpanElement;
const form = document.getElementById("line") as HTMLFormElement;
const input = document.getElementById("input") as HTMLInputElement;
const renew = document.getElementById("new-session") as HTMLButtonElement;

const requested = new URLSearchParams(location.search).get("transport");
const transport = ["websocket", "longpoll", "poll"].includes(requested ?? "")
  ? requested as Transport
  : "auto";
const decoder = new TextDecoder();
const encoder = new TextEncoder();

const session = new BrowserSession({
  base: location.href,
  storage: sessionStorage,
  transport,
  onOutput(bytes) {
    output.append(decoder.decode(bytes, { stream: true }));
    output.parentElement?.scrollTo(0, output.scrollHeight);
  },
  onStatus(state, text) {
    status.textContent = state;
    status.className = `status ${state}`;
    detail.textContent = text;
  },
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  session.send(encoder.encode(input.value + "\r\n"));
  input.value = "";
});

renew.addEventListener("click", async () => {
  output.textContent = "";
  await session.renew();
});

session.start().catch((error) => {
  status.textContent = "ended";
  status.className = "status ended";
  detail.textContent = String(error?.message ?? error);
});
