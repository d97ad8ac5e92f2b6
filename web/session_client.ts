/**
 * The browser side of a gateway session: keeps one socketproxy session
 * alive across page reloads and network trouble, over a WebSocket, a
 * long-poll or plain polls.
 *
 * It remembers the session id, secret, the output offset received (`ack`)
 * and the input not yet confirmed in `sessionStorage`, so a reload resumes
 * the same session with nothing lost or repeated. Output is handed over
 * exactly once, in order, whatever the transport: every chunk carries the
 * offset it starts at, and what was already handed over is skipped.
 *
 * Over a WebSocket (version 2 of the gateway's browser protocol, see
 * docs/gateway.md) the page acknowledges output as it hands it over, so the
 * proxy keeps everything the page may not have, and the gateway says why a
 * connection ends: the destination closed, the session was closed, the
 * server is stopping (the page says so and stops), or another window took
 * the session over (the page stops, status `taken-over`, until
 * {@linkcode BrowserSession.resume}). A socket dropped for any other reason
 * is reconnected, with a backoff.
 *
 * A poll cannot tell a takeover from a closed destination (`"dropped":
 * true`), and only attaching again tells which, taking it over in turn. So
 * the poll transport attaches again once, at once; if it is dropped again
 * within {@linkcode BrowserSessionOptions.contestWindow}, another window
 * wants the session too, and the page stops until resumed.
 *
 * This file runs in the browser (bundled into `web/dist/app.js`) and in
 * Deno's tests: it uses only `fetch`, `WebSocket` and a storage object.
 *
 * @module
 */

import { concatBytes } from "../lib/bytes.ts";

/** How output and input travel. */
export type Transport = "websocket" | "longpoll" | "poll";

/** What the page shows in its status line. */
export type Status = "connecting" | "connected" | "reconnecting" | "ended" | "taken-over";

/** What is kept in storage between page loads. */
interface Stored {
  id: string;
  secret: string;
  /** Output offset handed over so far. */
  ack: number;
  /** Session input offset of the first unconfirmed input byte. */
  inputAt: number;
  /** Unconfirmed input, base64. */
  input: string;
}

/** Options for {@linkcode BrowserSession}. */
export interface BrowserSessionOptions {
  /** The URL API paths resolve against: the page's own, so the page works under any path prefix. */
  base: string | URL;
  /** Where the session is remembered (the page passes `sessionStorage`). */
  storage: Pick<Storage, "getItem" | "setItem" | "removeItem">;
  /** The transport, or `auto`: WebSocket, falling back to long-polling, then polling. */
  transport?: Transport | "auto";
  /** Receives output, exactly once and in order. */
  onOutput(bytes: Uint8Array): void;
  /** Receives status changes, with a few words of detail. */
  onStatus(status: Status, detail: string): void;
  /** How long a long-poll waits for output, in ms. @default {25000} */
  longPollWait?: number;
  /** How often plain polling asks, in ms. @default {1000} */
  pollInterval?: number;
  /** After falling back from WebSocket, how long to poll before trying it again, in ms. @default {60000} */
  webSocketRetry?: number;
  /** Receives problems worth showing that do not end the session (input refused). */
  onNotice?(message: string): void;
  /**
   * Called once {@linkcode BrowserSession.start} has a session, remembered
   * or new, before any of its output is handed over: the page restores what
   * it kept for it there. `ack` is the output offset output resumes at.
   */
  onSession?(id: string, ack: number): void;
  /**
   * The destination a new session is for (`{"to"}` in `POST api/sessions`),
   * one the gateway serves.
   * @default {the gateway's default}
   */
  to?: string;
  /**
   * Polls only: after attaching again by itself because the proxy dropped
   * a poll, how long another drop means another window is using the
   * session (the page then stops), in ms.
   * @default {10000}
   */
  contestWindow?: number;
}

const STORAGE_KEY = "socketproxy-session";
const MAX_BACKOFF_MS = 5000;
/** The gateway's input limit per request until it says otherwise (its default). */
const DEFAULT_MAX_INPUT = 64 * 1024;

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The version of the gateway's WebSocket protocol the page speaks. */
const WEBSOCKET_VERSION = 2;

/** One WebSocket, from its open to its close. */
interface SocketLink {
  socket: WebSocket;
  /** The socket opened (a failure to open counts towards falling back). */
  opened: boolean;
  /** The input the first message carried, in bytes. */
  firstInput: number;
  /** The output offset the next binary message starts at, once attached. */
  offset: number | null;
  /** The latest output offset acknowledged on this socket (`ack` of the first message at first). */
  acked: number;
  /** The session input offset this socket has sent up to. */
  sent: number;
  /** An acknowledgement due once the page has taken what arrived. */
  ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** The gateway answered with an error, which has set the backoff already. */
  refused: boolean;
}

/** An answer from the gateway that was not a success. */
class GatewayError extends Error {
  readonly status: number;
  readonly code: string;
  readonly body: Record<string, unknown>;

  constructor(status: number, body: Record<string, unknown>) {
    super(typeof body.message === "string" ? body.message : `HTTP ${status}`);
    this.status = status;
    this.code = typeof body.error === "string" ? body.error : "http";
    this.body = body;
  }
}

/**
 * One session, as the page sees it.
 *
 * @example
 * ```ts ignore
 * const session = new BrowserSession({
 *   base: location.href,
 *   storage: sessionStorage,
 *   onOutput: (bytes) => terminal.write(bytes),
 *   onStatus: (status, detail) => (statusLine.textContent = `${status}: ${detail}`),
 * });
 * await session.start();
 * session.send(new TextEncoder().encode("look\r\n"));
 * ```
 */
export class BrowserSession {
  readonly #options: BrowserSessionOptions;
  #stored: Stored | null = null;
  #queue: Uint8Array = new Uint8Array(0);
  #transport: Transport;
  readonly #auto: boolean;
  #stopped = false;
  #link: SocketLink | null = null;
  #socketFailures = 0;
  #pollFailures = 0;
  /** The gateway's limit on input per request or message. */
  #maxInput = DEFAULT_MAX_INPUT;
  /**
   * The WebSocket window, as the gateway said: how much input may be
   * unconfirmed, and how much output the proxy sends beyond the latest
   * acknowledgement.
   */
  #window = DEFAULT_MAX_INPUT;
  /** When auto fell back from WebSocket (`performance.now()`). */
  #fellBackAt = 0;
  #pollRequest: AbortController | null = null;
  #wake: (() => void) | null = null;
  #backoff = 0;
  #loop: Promise<void> | null = null;
  /** When the page last polled again by itself after a dropped poll (`performance.now()`). */
  #reattachedAt: number | null = null;
  /** The session input offset this page has put on the wire up to, on any transport. */
  #sentTo = 0;
  /**
   * Another window may have sent input since this one last attached: the
   * next attach carries none, so that the server's count, which includes
   * the other window's input, is known before any of this page's is sent.
   */
  #rebase = false;
  /**
   * Polls: the server's input count has been heard since
   * {@linkcode BrowserSession.start}. Until then a poll carries only the
   * input that may have been sent (up to `#sentTo`): another window (a
   * duplicated tab) may have sent input since this page's storage was
   * written, and the server, matching offsets, would take as many of this
   * page's new bytes as sent. (A WebSocket's first message never carries
   * more; the rest follows the attach.)
   */
  #counted = false;

  /** @param options Where the gateway is, storage, transport and callbacks. */
  constructor(options: BrowserSessionOptions) {
    this.#options = options;
    const transport = options.transport ?? "auto";
    this.#auto = transport === "auto";
    this.#transport = transport === "auto" ? "websocket" : transport;
  }

  /** The transport in use now. */
  get transport(): Transport {
    return this.#transport;
  }

  /** The session id and the output offset handed over, or `null` before a session exists. */
  get current(): { id: string; ack: number } | null {
    return this.#stored ? { id: this.#stored.id, ack: this.#stored.ack } : null;
  }

  /** Resumes the remembered session, or creates one, and starts relaying. */
  async start(): Promise<void> {
    this.#stopped = false;
    this.#reattachedAt = null;
    this.#counted = false;
    this.#stored = this.#load();
    if (this.#stored) {
      this.#queue = fromBase64(this.#stored.input);
      // A page before this one may have sent all of it.
      this.#sentTo = this.#stored.inputAt + this.#queue.length;
    } else {
      await this.#create();
    }
    if (this.#stored && !this.#stopped) {
      this.#options.onSession?.(this.#stored.id, this.#stored.ack);
      this.#run();
    }
  }

  /**
   * Sends input. It is kept (in storage too) until the server confirms it,
   * so a reload or a dropped connection never loses or repeats it.
   *
   * @param bytes The input.
   */
  send(bytes: Uint8Array): void {
    if (!this.#stored || bytes.length === 0) return;
    this.#queue = concatBytes([this.#queue, bytes]);
    this.#save();
    if (this.#link) {
      this.#sendOnSocket(this.#link);
    } else if (this.#transport !== "websocket") {
      // A poll with the input now; the gateway ends the older, waiting one.
      this.#pollRequest?.abort();
      this.#wake?.();
    }
  }

  /**
   * Attaches again after the page stopped because another window is using
   * the session: this window takes it over, and keeps it.
   */
  async resume(): Promise<void> {
    if (!this.#stopped) return;
    await this.#loop;
    this.#rebase = true;
    await this.start();
  }

  /** Ends the current session on the server and starts a new one. */
  async renew(): Promise<void> {
    const old = this.#stored;
    this.stop();
    await this.#loop;
    this.#options.storage.removeItem(STORAGE_KEY);
    this.#stored = null;
    this.#queue = new Uint8Array(0);
    if (old) {
      await fetch(this.#url(`api/sessions/${old.id}`), {
        method: "DELETE",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ secret: old.secret }),
      }).then((response) => response.body?.cancel()).catch(() => {});
    }
    await this.start();
  }

  /** Stops relaying; the session stays alive on the server. */
  stop(): void {
    this.#stopped = true;
    if (this.#link) {
      // What the page has taken is acknowledged, so that the proxy need not keep it.
      this.#acknowledge(this.#link);
      this.#link.socket.close(1000, "page stopped");
    }
    this.#link = null;
    this.#pollRequest?.abort();
    this.#wake?.();
  }

  /** Waits until relaying has stopped (after {@linkcode BrowserSession.stop} or the session ended). */
  async stopped(): Promise<void> {
    await this.#loop;
  }

  #url(path: string, scheme?: "ws"): URL {
    const url = new URL(path, this.#options.base);
    if (scheme) url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url;
  }

  #load(): Stored | null {
    try {
      const text = this.#options.storage.getItem(STORAGE_KEY);
      const stored = text ? JSON.parse(text) : null;
      if (
        stored && typeof stored.id === "string" && typeof stored.secret === "string" &&
        Number.isSafeInteger(stored.ack) && Number.isSafeInteger(stored.inputAt) &&
        typeof stored.input === "string"
      ) {
        return stored;
      }
    } catch {
      // Unreadable: start afresh.
    }
    return null;
  }

  #save(): void {
    if (!this.#stored) return;
    this.#stored.input = toBase64(this.#queue);
    this.#options.storage.setItem(STORAGE_KEY, JSON.stringify(this.#stored));
  }

  /** Creates a session; while the gateway or the proxy is unavailable, tries again. */
  async #create(): Promise<void> {
    this.#options.onStatus("connecting", "opening a session");
    while (!this.#stopped) {
      const to = this.#options.to;
      const request: RequestInit = to === undefined ? { method: "POST" } : {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ to }),
      };
      const response = await fetch(this.#url("api/sessions"), request).catch(() => null);
      if (response?.ok) {
        const body = await response.json();
        this.#stored = { id: body.id, secret: body.secret, ack: 0, inputAt: 0, input: "" };
        this.#queue = new Uint8Array(0);
        this.#sentTo = 0;
        this.#rebase = false;
        this.#counted = true; // a new session: no other window has it
        this.#backoff = 0;
        this.#save();
        return;
      }
      const body = await response?.json().catch(() => ({})) ?? {};
      // 502 and 503: the proxy is away, unreachable or full; all may pass.
      if (response && response.status < 500) throw new GatewayError(response.status, body);
      this.#failed();
      this.#options.onStatus(
        "reconnecting",
        `no session yet (${
          response ? new GatewayError(response.status, body).message : "no answer"
        }); trying again in ${Math.round(this.#backoff / 100) / 10} s`,
      );
      await this.#sleep(this.#backoff);
    }
  }

  /** Hands over output that starts at `offset`, skipping what was handed over already. */
  #deliver(offset: number, bytes: Uint8Array): void {
    const stored = this.#stored;
    if (!stored) return;
    const skip = stored.ack - offset;
    if (skip < 0) throw new Error(`Output from ${offset} would leave a hole after ${stored.ack}`);
    if (skip >= bytes.length) return;
    stored.ack = offset + bytes.length;
    this.#save();
    this.#options.onOutput(skip > 0 ? bytes.subarray(skip) : bytes);
  }

  /**
   * Drops input the server confirms having received up to input offset
   * `received`. Input this page has not sent yet cannot be among it: a
   * count beyond what was sent includes another window's input, and the
   * rest of the queue then starts at `received`.
   */
  #confirm(received: number): void {
    const stored = this.#stored;
    if (!stored || received <= stored.inputAt) return;
    const sent = Math.max(this.#sentTo, stored.inputAt);
    const drop = Math.min(Math.min(received, sent) - stored.inputAt, this.#queue.length);
    this.#queue = this.#queue.slice(drop);
    stored.inputAt = received;
    this.#sentTo = Math.max(sent, received);
    this.#save();
  }

  #ended(status: "ended" | "taken-over", detail: string): void {
    if (status === "ended") this.#options.storage.removeItem(STORAGE_KEY);
    this.#options.onStatus(status, detail);
    this.stop();
  }

  /**
   * The proxy ended a poll while the session was open: the destination
   * closed, or another window took over. Polls again at once, unless this
   * is the second drop soon after doing so: then another window is using
   * the session, and this one stops.
   */
  #dropped(): void {
    const now = performance.now();
    const last = this.#reattachedAt;
    if (last !== null && now - last < (this.#options.contestWindow ?? 10_000)) {
      this.#reattachedAt = null;
      this.#ended("taken-over", "another window is using this session");
      return;
    }
    this.#reattachedAt = now;
    this.#backoff = 0;
    this.#rebase = true;
  }

  /** Drops input the gateway refused for good (too large for it), saying so. */
  #refused(count: number, why: string): void {
    this.#queue = this.#queue.slice(count);
    this.#save();
    this.#options.onNotice?.(`${count} bytes of input were refused: ${why}`);
  }

  #run(): void {
    this.#loop = (async () => {
      while (!this.#stopped) {
        if (this.#transport === "websocket") await this.#webSocket();
        else await this.#poll();
        if (this.#stopped) break;
        await this.#chooseTransport();
        if (this.#backoff > 0) {
          this.#options.onStatus(
            "reconnecting",
            `trying again in ${Math.round(this.#backoff / 100) / 10} s`,
          );
          await this.#sleep(this.#backoff);
        }
      }
    })();
  }

  /**
   * Auto: falls back from WebSocket only when the gateway answers plain
   * requests but WebSockets do not get through (a proxy in between), never
   * because the gateway is away for a while; and tries WebSocket again
   * after a while of polling.
   */
  async #chooseTransport(): Promise<void> {
    if (!this.#auto) return;
    if (this.#transport === "websocket") {
      if (this.#socketFailures >= 2 && await this.#apiAnswers()) {
        this.#transport = "longpoll";
        this.#fellBackAt = performance.now();
        this.#socketFailures = 0;
        this.#backoff = 0;
      }
    } else if (
      performance.now() - this.#fellBackAt >= (this.#options.webSocketRetry ?? 60_000)
    ) {
      this.#transport = "websocket";
      this.#pollFailures = 0;
    }
  }

  /** Whether the gateway's API answers a plain request (`HEAD api/sessions`: 405). */
  async #apiAnswers(): Promise<boolean> {
    const response = await fetch(this.#url("api/sessions"), { method: "HEAD" }).catch(() => null);
    await response?.body?.cancel();
    return response?.status === 405;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = () => {
        this.#wake = null;
        done();
      };
    });
  }

  #failed(): void {
    this.#backoff = Math.min(MAX_BACKOFF_MS, this.#backoff === 0 ? 250 : this.#backoff * 2);
  }

  /**
   * Handles an error answer common to all transports; `input` is how much
   * input the failed request carried.
   */
  #handle(error: GatewayError, input: number): void {
    switch (error.code) {
      case "auth":
        this.#ended("ended", "the session no longer exists");
        return;
      case "gap": {
        const lowest = Number(error.body.lowest);
        if (this.#stored && lowest > this.#stored.ack) {
          this.#options.onStatus(
            "reconnecting",
            `${lowest - this.#stored.ack} bytes of output were lost`,
          );
          this.#stored.ack = lowest;
          this.#save();
        }
        return;
      }
      case "too_large": {
        // The gateway's limit is lower than thought: send smaller pieces, at once.
        const limit = Number(error.body.maxInput);
        if (Number.isSafeInteger(limit) && limit > 0 && limit < this.#maxInput) {
          this.#maxInput = limit;
        } else if (input > 0) {
          this.#refused(input, error.message);
        } else {
          this.#failed();
        }
        return;
      }
      default:
        this.#failed();
    }
  }

  #webSocket(): Promise<void> {
    const stored = this.#stored;
    if (!stored) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#options.onStatus(this.#backoff > 0 ? "reconnecting" : "connecting", "WebSocket");
    const socket = new WebSocket(this.#url(`api/sessions/${stored.id}/ws`, "ws"));
    socket.binaryType = "arraybuffer";
    const link: SocketLink = {
      socket,
      opened: false,
      firstInput: 0,
      offset: null,
      acked: stored.ack,
      sent: stored.inputAt,
      ackTimer: undefined,
      refused: false,
    };
    this.#link = link;
    socket.onopen = () => this.#hello(link, stored);
    socket.onmessage = (event) => {
      if (typeof event.data === "string") this.#onSocketMessage(link, JSON.parse(event.data));
      else this.#onSocketOutput(link, new Uint8Array(event.data as ArrayBuffer));
    };
    socket.onclose = () => {
      clearTimeout(link.ackTimer);
      if (this.#link === link) this.#link = null;
      if (!link.opened) this.#socketFailures++;
      // Never attached (the gateway is away, or refused): wait longer each time, as
      // when the proxy is away; after a working connection, start short again.
      const unanswered = link.offset === null && !link.refused;
      if (!this.#stopped && (this.#backoff === 0 || unanswered)) this.#failed();
      resolve();
    };
    return promise;
  }

  /** The first message: where the page is, with input from where the session's stands. */
  #hello(link: SocketLink, stored: Stored): void {
    link.opened = true;
    // Only input that may have been sent goes with the offset: what never went out follows
    // the attach, after the server's count, which may include another window's input.
    const mayBeSent = Math.max(0, this.#sentTo - stored.inputAt);
    link.firstInput = this.#rebase
      ? 0
      : Math.min(this.#queue.length, mayBeSent, this.#maxInput, this.#window);
    link.sent = stored.inputAt + link.firstInput;
    this.#sentTo = Math.max(this.#sentTo, link.sent);
    link.socket.send(JSON.stringify({
      v: WEBSOCKET_VERSION,
      secret: stored.secret,
      ack: stored.ack,
      inputAt: stored.inputAt,
      input: toBase64(this.#queue.subarray(0, link.firstInput)),
    }));
  }

  /**
   * Output: handed over, then acknowledged, at once when half a window is
   * unacknowledged and otherwise once the page has taken what arrived, so
   * that the proxy releases it promptly and never waits on the page.
   */
  #onSocketOutput(link: SocketLink, bytes: Uint8Array): void {
    if (link.offset === null) return;
    this.#deliver(link.offset, bytes);
    link.offset += bytes.length;
    if (link.offset - link.acked >= this.#window / 2) this.#acknowledge(link);
    else link.ackTimer ??= setTimeout(() => this.#acknowledge(link), 0);
  }

  /** Acknowledges all the output this socket has handed over. */
  #acknowledge(link: SocketLink): void {
    clearTimeout(link.ackTimer);
    link.ackTimer = undefined;
    const offset = link.offset;
    if (offset === null || offset <= link.acked || link.socket.readyState !== WebSocket.OPEN) {
      return;
    }
    link.acked = offset;
    link.socket.send(JSON.stringify({ type: "ack", ack: offset }));
  }

  #onSocketMessage(link: SocketLink, message: Record<string, unknown>): void {
    switch (message.type) {
      case "attached":
        link.offset = link.acked = Number(message.from);
        this.#rebase = false;
        this.#counted = true;
        if (Number.isSafeInteger(message.maxInput)) this.#maxInput = Number(message.maxInput);
        if (Number.isSafeInteger(message.window)) this.#window = Number(message.window);
        this.#confirm(Number(message.in));
        this.#backoff = 0;
        this.#socketFailures = 0;
        this.#options.onStatus("connected", "WebSocket");
        this.#sendOnSocket(link);
        return;
      case "in":
        this.#confirm(Number(message.in));
        this.#sendOnSocket(link);
        return;
      case "end":
        return this.#socketEnded(link, String(message.reason));
      case "error":
        link.refused = true;
        this.#handle(new GatewayError(0, message), link.offset === null ? link.firstInput : 0);
    }
  }

  /**
   * The gateway says why the socket ends. After `dropped` or
   * `protocol-error` the session is still there: the close reconnects.
   */
  #socketEnded(link: SocketLink, reason: string): void {
    switch (reason) {
      case "destination-closed":
        // All its output is here: acknowledging it ends the session.
        this.#acknowledge(link);
        return this.#ended("ended", "the destination closed the session");
      case "closed":
        return this.#ended("ended", "the session was closed");
      case "server-stopping":
        return this.#ended("ended", "server stopped: sessions did not survive");
      case "taken-over":
        return this.#ended("taken-over", "taken over by another window");
    }
  }

  /** Sends queued input on the attached WebSocket, in pieces, within the window. */
  #sendOnSocket(link: SocketLink): void {
    const stored = this.#stored;
    if (!stored || link.offset === null || link.socket.readyState !== WebSocket.OPEN) return;
    const end = stored.inputAt + this.#queue.length;
    let sent = Math.max(link.sent, stored.inputAt);
    while (sent < end) {
      const room = this.#window - (sent - stored.inputAt);
      const size = Math.min(this.#maxInput, room, end - sent);
      if (size <= 0) break; // the gateway's {"type":"in"} makes room
      const from = sent - stored.inputAt;
      link.socket.send(this.#queue.slice(from, from + size));
      sent += size;
    }
    link.sent = sent;
    this.#sentTo = Math.max(this.#sentTo, sent);
  }

  async #poll(): Promise<void> {
    const stored = this.#stored;
    if (!stored) return;
    const long = this.#transport === "longpoll";
    const queued = this.#queue.length;
    // Before the server's count is known, only input that may have been sent (see #counted).
    const mayBeSent = this.#counted ? queued : Math.max(0, this.#sentTo - stored.inputAt);
    const input = this.#rebase ? 0 : Math.min(queued, mayBeSent, this.#maxInput);
    // Input left for the next request: do not wait for output first.
    const wait = long && input === queued ? this.#options.longPollWait ?? 25_000 : 0;
    const request = new AbortController();
    this.#pollRequest = request;
    const ack = stored.ack;
    this.#sentTo = Math.max(this.#sentTo, stored.inputAt + input);
    // A long-poll that never answers is broken by something in between: give up on it.
    const deadline = setTimeout(() => request.abort("deadline"), wait + 10_000);
    try {
      const response = await fetch(this.#url(`api/sessions/${stored.id}/poll`), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          secret: stored.secret,
          ack,
          inputAt: stored.inputAt,
          input: toBase64(this.#queue.subarray(0, input)),
          wait,
        }),
        signal: request.signal,
      });
      const body = await response.json();
      if (!response.ok) {
        this.#handle(new GatewayError(response.status, body), input);
        return;
      }
      this.#backoff = 0;
      this.#pollFailures = 0;
      this.#rebase = false;
      this.#counted = true;
      this.#deliver(ack, fromBase64(body.data));
      this.#confirm(body.in);
      if (body.state === "closed" && body.ack === ack) {
        // Nothing left: this poll acknowledged the end, and the server forgot the session.
        this.#ended("ended", "the destination closed the session");
        return;
      }
      if (body.dropped === true) {
        this.#dropped();
        return;
      }
      this.#options.onStatus("connected", long ? "long-polling" : "polling");
    } catch {
      if (this.#stopped) return;
      // send() cuts a waiting poll short to send its input at once: not a failure.
      const forInput = request.signal.aborted && request.signal.reason !== "deadline" &&
        this.#queue.length > queued;
      if (!forInput) {
        this.#pollFailures++;
        // Long-polls cut off by something in between (no answer in time): plain polls get through.
        const cutOff = request.signal.reason === "deadline";
        if (this.#auto && long && cutOff && this.#pollFailures >= 2) this.#transport = "poll";
        this.#failed();
      }
    } finally {
      clearTimeout(deadline);
      if (this.#pollRequest === request) this.#pollRequest = null;
    }
    if (!long && !this.#stopped && this.#queue.length === 0) {
      await this.#sleep(this.#options.pollInterval ?? 1000);
    }
  }
}
