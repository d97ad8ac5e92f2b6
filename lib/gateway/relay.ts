/**
 * The WebSocket relay: one browser socket on one framed (version 2) proxy
 * connection. The browser's first message resumes the session at its
 * `ack`; then `D` frames go to the browser as binary messages, `I` and `E`
 * as JSON, and the browser's input, acknowledgements and close go to the
 * proxy as `D`, `A` and `C`. The relay keeps no output or input of its
 * own: the proxy retains output until the browser acknowledges it, and the
 * browser keeps its input until an `in` message confirms it. See
 * docs/gateway.md for the browser protocol.
 *
 * @module
 */

import { FramedConnection, type FramedEvent, InputOffsetError } from "../client/mod.ts";
import type { HostPort } from "../address.ts";
import type { ServerWebSocket, WebSocketMessage } from "../http/websocket.ts";
import { describeError, type Logger } from "../log.ts";
import type { GatewayMetrics } from "./metrics.ts";
import {
  type ClientAddress,
  type GatewayLimits,
  HttpError,
  httpErrorFor,
  inputOf,
  offsetOf,
  secretOf,
} from "./requests.ts";

/** The versions of the browser protocol this relay speaks. */
export const BROWSER_PROTOCOL_VERSIONS: readonly number[] = [2];

/**
 * Once this much WebSocket output waits to go out, the proxy is not read
 * until it is down to the low water mark: a slow browser slows the proxy,
 * and a fast one gets output in large runs, not a chunk per wait.
 */
const WS_HIGH_WATER = 1024 * 1024;
const WS_LOW_WATER = 256 * 1024;

/** What {@linkcode relay} needs besides the socket. */
export interface RelayContext {
  id: string;
  clientOptions: { proxy: HostPort; timeout: number; tls?: { caCerts?: string[] } };
  limits: GatewayLimits;
  logger: Logger;
  /** Counts the socket while it is open, and a proxy error that ends it. */
  metrics: GatewayMetrics;
  address: ClientAddress;
  /** How long the first message may take, in ms. */
  firstMessageTimeout: number;
  onAuthFailed: () => Promise<void>;
  /** Says a proxy error as the browser gets it (a named node's: `node_unavailable`). */
  explain?: (error: unknown) => unknown;
}

/** What the first message asks for. */
interface FirstMessage {
  secret: string;
  ack: number;
  inputAt: number | undefined;
  input: Uint8Array;
}

/** What the browser is told when the proxy connection ends: `E`'s fields, or `dropped`. */
type EndMessage = Extract<FramedEvent, { type: "end" }> | {
  type: "end";
  reason: "dropped";
  sent: number;
};

/**
 * Where a relay is: waiting for the first message, opening the proxy
 * connection, relaying, waiting for the last acknowledgement after the
 * destination closed, or done.
 */
type Phase = "first" | "attaching" | "attached" | "ending" | "done";

/**
 * Runs one WebSocket until it closes. See {@linkcode WebSocketRelay}.
 *
 * @param socket The upgraded socket.
 * @param context The session id, the proxy, limits, logs and metrics.
 */
export function relay(socket: ServerWebSocket, context: RelayContext): void {
  new WebSocketRelay(socket, context);
}

/** One WebSocket and its framed proxy connection. */
class WebSocketRelay {
  readonly #socket: ServerWebSocket;
  readonly #context: RelayContext;
  #phase: Phase = "first";
  #framed: FramedConnection | null = null;
  /** The output offset the browser has been sent up to. */
  #sent = 0;
  /** The latest input count the browser was told: `attached`'s `in`, then each `in`. */
  #toldIn = 0;
  /** The latest write to the proxy: the connection is closed only after it. */
  #writing: Promise<void> = Promise.resolve();
  /** The first message's deadline, then the wait for the last acknowledgement. */
  #timer: ReturnType<typeof setTimeout>;

  constructor(socket: ServerWebSocket, context: RelayContext) {
    this.#socket = socket;
    this.#context = context;
    // A socket that never says what it wants is not held open.
    this.#timer = setTimeout(() => {
      this.#fail(
        "timeout",
        `No first message within ${context.firstMessageTimeout} ms: send {"v":2,"secret","ack"} at once`,
      );
    }, context.firstMessageTimeout);
    context.metrics.webSocketOpened();
    socket.onmessage = (message) => this.#receive(message);
    socket.onclose = () => {
      context.metrics.webSocketClosed();
      this.#finish();
    };
  }

  #receive(message: WebSocketMessage): void {
    try {
      switch (this.#phase) {
        case "first":
          clearTimeout(this.#timer);
          this.#phase = "attaching";
          void this.#run(message);
          return;
        case "attaching":
          throw new HttpError(400, "bad_request", 'Send nothing more before {"type":"attached"}');
        case "attached":
        case "ending":
          return this.#take(message);
      }
    } catch (error) {
      void this.#failWith(error);
    }
  }

  /** Attaches, then relays the proxy's frames until the connection ends. */
  async #run(first: WebSocketMessage): Promise<void> {
    try {
      const framed = await this.#attach(this.#firstMessage(first));
      if (framed) await this.#pump(framed);
    } catch (error) {
      await this.#failWith(error);
    }
  }

  /** Opens the framed connection at the browser's `ack` and forwards the first input. */
  async #attach(hello: FirstMessage): Promise<FramedConnection | null> {
    const { id, clientOptions, limits } = this.#context;
    const framed = await FramedConnection.open(clientOptions, {
      verb: "RESUME",
      id,
      secret: hello.secret,
      ack: hello.ack,
    });
    this.#framed = framed;
    if (this.#done) {
      framed.close();
      return null;
    }
    const { reply } = framed;
    if (hello.inputAt !== undefined && hello.inputAt > reply.in) {
      throw new InputOffsetError(
        `the session has ${reply.in} bytes of input, not ${hello.inputAt}`,
        reply.in,
      );
    }
    this.#sent = reply.from;
    this.#toldIn = reply.in;
    this.#phase = "attached";
    const { from, state, window } = reply;
    this.#tell({
      type: "attached",
      v: 2,
      from,
      in: reply.in,
      state,
      window,
      maxInput: limits.maxInput,
    });
    // What the proxy already has of the input is not sent again.
    this.#input(hello.input.subarray(hello.inputAt === undefined ? 0 : reply.in - hello.inputAt));
    return framed;
  }

  /** Relays the proxy's frames to the browser: output as binary messages, `I` and `E` as JSON. */
  async #pump(framed: FramedConnection): Promise<void> {
    // Output is a view of the connection's read buffer, written uncopied
    // when large: each is written before the next read (sendView).
    const uncopied = { copy: false };
    for (
      let event = await framed.next(uncopied);
      !this.#done;
      event = await framed.next(uncopied)
    ) {
      if (event === null) return this.#end({ type: "end", reason: "dropped", sent: this.#sent });
      if (event.type === "end") return this.#end(event);
      if (event.type === "input") {
        this.#toldIn = Math.max(this.#toldIn, event.count);
        this.#tell({ type: "in", in: event.count });
        continue;
      }
      // Sent once queued: the browser may acknowledge it as its write ends.
      this.#sent = event.offset + event.bytes.length;
      // The view is the connection's read buffer: it must be written before the next read.
      await this.#socket.sendView(event.bytes);
      if (this.#socket.bufferedAmount > WS_HIGH_WATER) await this.#socket.drained(WS_LOW_WATER);
    }
  }

  /** Reads the first message: `{"v":2,"secret","ack","inputAt"?,"input"?}`. */
  #firstMessage(first: WebSocketMessage): FirstMessage {
    const { limits } = this.#context;
    let body: Record<string, unknown>;
    try {
      if (typeof first !== "string" || first.length > limits.maxBody) throw new Error();
      body = JSON.parse(first);
      if (typeof body !== "object" || body === null || Array.isArray(body)) throw new Error();
    } catch {
      throw new HttpError(
        400,
        "bad_request",
        'The first message must be JSON: {"v":2,"secret","ack"}',
      );
    }
    if (!BROWSER_PROTOCOL_VERSIONS.includes(body.v as number)) {
      throw new HttpError(
        400,
        "unsupported_version",
        `This gateway speaks version 2 of the WebSocket protocol only: the first message must say "v":2`,
        { versions: BROWSER_PROTOCOL_VERSIONS },
      );
    }
    return {
      secret: secretOf(body),
      ack: offsetOf(body, "ack", true) ?? 0,
      inputAt: offsetOf(body, "inputAt", false),
      input: inputOf(body, limits),
    };
  }

  /** A message from the attached browser: input, an acknowledgement, or a close. */
  #take(message: WebSocketMessage): void {
    if (typeof message !== "string") return this.#input(message);
    let body: Record<string, unknown> | null = null;
    try {
      body = JSON.parse(message);
    } catch {
      // Not JSON: refused below.
    }
    if (body?.type === "ack") return this.#acknowledge(offsetOf(body, "ack", true) ?? 0);
    if (body?.type === "close") {
      this.#writing = this.#framed?.closeSession() ?? this.#writing;
      return;
    }
    if (typeof body?.input === "string" && body.type === undefined) {
      return this.#input(inputOf(body, this.#context.limits));
    }
    throw new HttpError(
      400,
      "bad_request",
      'Messages after the first are binary input, {"input"}, {"type":"ack","ack"} or {"type":"close"}',
    );
  }

  /** Input to the proxy, within the window beyond the latest count the browser was told. */
  #input(bytes: Uint8Array): void {
    const framed = this.#framed;
    // Once the destination has closed, the proxy drops input anyway.
    if (framed === null || this.#phase !== "attached" || bytes.length === 0) return;
    const { maxInput } = this.#context.limits;
    if (bytes.length > maxInput) {
      throw new HttpError(413, "too_large", `Input is limited to ${maxInput} bytes per message`, {
        maxInput,
      });
    }
    const window = framed.reply.window;
    if (framed.inputSent + bytes.length - this.#toldIn > window) {
      throw new HttpError(
        400,
        "too_much_input",
        `At most ${window} bytes of input may wait for confirmation ({"type":"in"})`,
        { window },
      );
    }
    this.#writing = framed.sendInput(bytes);
  }

  /** The browser has the output up to `offset`: the proxy may release it. */
  #acknowledge(offset: number): void {
    const framed = this.#framed;
    if (framed === null) return;
    if (offset > this.#sent) {
      throw new HttpError(409, "ack", `Only ${this.#sent} bytes of output were sent`, {
        sent: this.#sent,
      });
    }
    this.#writing = framed.acknowledge(offset);
    if (this.#phase === "ending" && offset >= this.#sent) this.#finish(1000, "destination-closed");
  }

  /**
   * The proxy's `E`, or the connection's end without one (`dropped`). After
   * `destination-closed` the proxy reads on for the browser's last
   * acknowledgement, which ends the session: the socket stays open for it,
   * as long as the proxy would wait for a hello.
   */
  #end(end: EndMessage): void {
    this.#tell(end);
    const framed = this.#framed;
    if (end.reason !== "destination-closed" || (framed?.acknowledged ?? 0) >= end.sent) {
      return this.#finish(1000, end.reason);
    }
    this.#phase = "ending";
    this.#timer = setTimeout(
      () => this.#finish(1000, end.reason),
      this.#context.clientOptions.timeout,
    );
  }

  /** Answers an error as `{"type":"error",...}`, as the same error of a poll is answered. */
  async #failWith(failure: unknown): Promise<void> {
    const { logger, address, metrics, explain } = this.#context;
    const error = explain ? explain(failure) : failure;
    const http = httpErrorFor(error);
    if (!http) {
      logger.error("web.error", { path: "ws", error: describeError(error), ...address });
      return this.#fail("internal", "The gateway failed; see its log");
    }
    metrics.failed(http);
    if (http.status >= 500) {
      logger.warn("web.proxy_error", {
        path: "/api/sessions/{id}/ws",
        error: http.code,
        detail: describeError(error),
        ...address,
      });
    }
    if (http.status === 401) await this.#context.onAuthFailed();
    this.#fail(http.code, http.message, http.extra);
  }

  #fail(code: string, message: string, extra: Record<string, unknown> = {}): void {
    this.#tell({ type: "error", error: code, message, ...extra });
    this.#finish(4000, code);
  }

  /** Whether the relay has ended (a getter, so that a check after an await is not narrowed away). */
  get #done(): boolean {
    return this.#phase === "done";
  }

  /** Sends a control message, unless the socket is going. */
  #tell(message: Record<string, unknown>): void {
    if (!this.#done && this.#socket.open) this.#socket.send(JSON.stringify(message));
  }

  /** Ends the relay: the socket (with `code`, if still open) and, once its writes are out, the proxy connection. */
  #finish(code?: number, reason = ""): void {
    if (this.#phase === "done") return;
    this.#phase = "done";
    clearTimeout(this.#timer);
    if (code !== undefined) this.#socket.close(code, reason);
    const framed = this.#framed;
    if (framed) void this.#writing.then(() => framed.close());
  }
}
