/**
 * The WebSocket relay: one browser socket, attached to a session through
 * the client library. Output goes to the browser as binary frames, input
 * comes back as binary frames, and JSON text messages say what happened.
 *
 * @module
 */

import { type ClientConnection, ClientSession } from "../client/mod.ts";
import type { HostPort } from "../address.ts";
import type { ServerWebSocket, WebSocketMessage } from "../http/websocket.ts";
import { describeError, type Logger } from "../log.ts";
import type { GatewayMetrics } from "./metrics.ts";
import {
  type ClientAddress,
  type GatewayLimits,
  httpErrorFor,
  inputOf,
  offsetOf,
  secretOf,
} from "./requests.ts";

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
}

/**
 * Runs one WebSocket: the first message (JSON `{"secret","ack","inputAt"?,"input"?}`)
 * attaches, then output goes to the browser as binary frames and binary
 * frames from it are input. Text messages from the gateway are JSON:
 * `{"type":"attached","from","in","state","maxInput","window"}`,
 * `{"type":"in","in"}` (the proxy has the session's input up to `in`),
 * `{"type":"closed","ack","ended"}` (the destination closed and all its
 * output was sent; `ended` when attaching at `ack` acknowledged it all and
 * so ended the session, otherwise the page's own final poll at `ack` does),
 * `{"type":"dropped","ack"}` (the proxy ended the connection while
 * the session was open: the destination closed, or another window took
 * the session over; `ack` is the output sent so far),
 * `{"type":"error","error","message",...}`.
 *
 * On `dropped` the gateway does not ask the proxy which it was: any hello
 * would take the session over, and two windows (or a stale relay) asking
 * would end each other. The page decides whether to attach again.
 *
 * Input is kept (for resending) until the proxy confirms it, which only a
 * reply does: once `maxInput` bytes are unconfirmed the gateway ends its
 * connection gracefully, attaches again and passes the confirmation on. The
 * browser keeps at most `window` bytes unconfirmed; more ends the socket,
 * so no browser makes the gateway hold more than that.
 */
export function relay(socket: ServerWebSocket, context: RelayContext): void {
  const { id, clientOptions, limits, logger, address } = context;
  const window = 2 * limits.maxInput;
  let session: ClientSession | null = null;
  /** The attached connection, once there is one. */
  let connection: ClientConnection | null = null;
  /** The proxy is confirming the input (see `confirm`). */
  let confirming = false;
  /** The connection this side ended (half-closed) to have its input confirmed. */
  let halfClosed: ClientConnection | null = null;
  /** Input that arrived while confirming, and its size. */
  const held: Uint8Array[] = [];
  let heldBytes = 0;
  let closed = false;
  // A socket that never says what it wants is not held open.
  const firstMessage = setTimeout(() => {
    fail(
      "timeout",
      `No first message within ${context.firstMessageTimeout} ms: send {"secret","ack"} at once`,
    );
  }, context.firstMessageTimeout);
  context.metrics.webSocketOpened();
  socket.onclose = () => {
    context.metrics.webSocketClosed();
    closed = true;
    clearTimeout(firstMessage);
    connection?.close();
  };
  /** Sends a control message, unless the socket is going. */
  function tell(message: Record<string, unknown>): boolean {
    if (!socket.open) return false;
    socket.send(JSON.stringify(message));
    return true;
  }
  function fail(code: string, message: string, extra: Record<string, unknown> = {}): void {
    if (tell({ type: "error", error: code, message, ...extra })) socket.close(4000, code);
  }
  /** The proxy ended the connection of an open session; only a takeover could tell why. */
  function dropped(session: ClientSession): void {
    connection?.close();
    if (tell({ type: "dropped", ack: session.received })) {
      socket.close(4001, "dropped by the proxy");
    }
  }
  socket.onmessage = (message: WebSocketMessage) => {
    if (session === null) {
      clearTimeout(firstMessage);
      void start(message);
      return;
    }
    const bytes = typeof message === "string" ? decodeInputMessage(message) : message;
    if (bytes === null) {
      return fail("bad_request", 'Messages after the first are binary input or {"input"}');
    }
    if (bytes.length > limits.maxInput) {
      return fail("too_large", `Input is limited to ${limits.maxInput} bytes per message`, {
        maxInput: limits.maxInput,
      });
    }
    if (session.unconfirmed + heldBytes + bytes.length > window) {
      return fail(
        "too_much_input",
        `At most ${window} bytes of input may wait for confirmation ({"type":"in"})`,
        { window },
      );
    }
    if (confirming) {
      held.push(bytes);
      heldBytes += bytes.length;
      return;
    }
    session.send(bytes);
    if (session.unconfirmed >= limits.maxInput) void confirm();
  };

  /**
   * Has the proxy confirm the input: once all of it is written, this side
   * of the connection is closed, so the proxy takes it all in, hands on the
   * output it has and ends the connection; the pump then attaches again,
   * and the reply says where the input stands. Input arriving meanwhile is
   * held back until then. A connection the proxy ended before this side
   * did was not ended for this: the pump treats it as dropped.
   */
  async function confirm(): Promise<void> {
    const current = connection;
    if (confirming || current === null || closed) return;
    confirming = true;
    await session?.flush();
    if (current.closed || connection !== current) return;
    halfClosed = current;
    await current.closeWrite();
  }

  function decodeInputMessage(text: string): Uint8Array | null {
    try {
      const message = JSON.parse(text);
      return typeof message?.input === "string" ? Uint8Array.fromBase64(message.input) : null;
    } catch {
      return null;
    }
  }

  async function start(first: WebSocketMessage): Promise<void> {
    let body: Record<string, unknown>;
    try {
      if (typeof first !== "string" || first.length > limits.maxBody) throw new Error();
      body = JSON.parse(first);
      if (typeof body !== "object" || body === null) throw new Error();
    } catch {
      return fail("bad_request", 'The first message must be JSON: {"secret","ack"}');
    }
    try {
      const ack = offsetOf(body, "ack", false);
      const inputAt = offsetOf(body, "inputAt", false);
      session = ClientSession.resume({ id, secret: secretOf(body) }, {
        ...clientOptions,
        ...(ack === undefined ? {} : { ack }),
        ...(inputAt === undefined ? {} : { inputAt }),
      });
      session.send(inputOf(body, limits));
      await pump(session);
    } catch (error) {
      const http = httpErrorFor(error);
      if (http) context.metrics.failed(http);
      if (!http) logger.error("web.error", { path: "ws", error: describeError(error), ...address });
      if (http?.status === 401) await context.onAuthFailed();
      fail(
        http?.code ?? "internal",
        http?.message ?? "The gateway failed; see its log",
        http?.extra,
      );
    } finally {
      connection?.close();
    }
  }

  /** Attaches in streaming mode; false when the browser left meanwhile. */
  async function attach(session: ClientSession): Promise<boolean> {
    connection = await session.connect("streaming");
    if (closed) connection.close();
    return !closed;
  }

  /** Waits while the browser is slow to take output, reading nothing from the proxy. */
  async function drain(): Promise<void> {
    if (socket.bufferedAmount > WS_HIGH_WATER) await socket.drained(WS_LOW_WATER);
  }

  async function pump(session: ClientSession): Promise<void> {
    if (!await attach(session)) return;
    tell({
      type: "attached",
      from: session.received,
      in: session.inputConfirmed,
      state: connection?.reply.state,
      maxInput: limits.maxInput,
      window,
    });
    while (connection !== null) {
      for (let chunk = await connection.read(); chunk !== null; chunk = await connection.read()) {
        if (!socket.open) return;
        socket.send(chunk);
        await drain();
      }
      if (closed) return;
      const ended = connection;
      if (confirming && halfClosed === ended) {
        if (!await attach(session)) return;
        // All input written before the half-close was taken in before a
        // detach for it; some missing means the proxy ended the connection
        // for another reason (a takeover), and this attach took it back.
        if (session.unconfirmed > 0 && connection.reply.state === "open") {
          return dropped(session);
        }
        confirming = false;
        halfClosed = null;
        tell({ type: "in", in: session.inputConfirmed });
        for (const bytes of held.splice(0)) session.send(bytes);
        heldBytes = 0;
        if (session.unconfirmed >= limits.maxInput) void confirm();
        continue;
      }
      // The proxy ended a connection of a session that was open: the
      // destination closed since, or a newer client took over.
      if (ended.reply.state === "open") return dropped(session);
      // The destination closed and all its output was sent. Unless the
      // attach itself acknowledged it all (at the browser's own ack),
      // nothing here did: the browser's final poll ends the session, once it
      // has the bytes (or the idle timeout does).
      if (tell({ type: "closed", ack: session.received, ended: session.ended })) {
        socket.close(1000, "destination closed");
      }
      return;
    }
  }
}
