/**
 * The server side of a WebSocket (RFC 6455) on an upgraded connection,
 * with its limits enforced while frames arrive: a message (all its
 * fragments together) over the size limit ends the socket as soon as a
 * frame header announces it, before its payload is read; a message or
 * frame left unfinished too long, and a close handshake the peer does not
 * answer, end it at the TCP level. `Deno.upgradeWebSocket` checks a
 * message's size only once the whole message is buffered and has neither
 * timeout, which is why this exists (see docs/security.md).
 *
 * No extension is negotiated (no compression), so every reserved bit must
 * be clear. Frames from the client must be masked; frames to it are not.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Duplex } from "node:stream";
import { concatBytes } from "../bytes.ts";

/** The GUID RFC 6455 section 1.3 appends to the key. */
const ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/**
 * The `Sec-WebSocket-Accept` answer to a `Sec-WebSocket-Key`.
 *
 * @param key The client's key, as sent.
 * @returns The base64 SHA-1 of the key and the GUID.
 */
export function acceptKey(key: string): string {
  return createHash("sha1").update(key + ACCEPT_GUID).digest("base64");
}

/** Limits on one WebSocket, all enforced while bytes arrive. */
export interface WebSocketLimits {
  /** Largest message, all its fragments together, in bytes; more is close code 1009. */
  maxMessage: number;
  /**
   * How long a message (or a control frame) may take to arrive once its
   * first byte has, in ms; one left unfinished is closed (1008) and the
   * connection dropped.
   */
  messageTimeout: number;
  /** How long the peer has to answer a close frame, in ms, before the connection is dropped. */
  closeTimeout: number;
}

/** Defaults: see docs/security.md. */
export const WEBSOCKET_LIMITS: WebSocketLimits = {
  maxMessage: 1024 * 1024,
  messageTimeout: 10_000,
  closeTimeout: 5_000,
};

/** Close codes this side sends or reports (RFC 6455 section 7.4.1). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  invalidData: 1007,
  policyViolation: 1008,
  tooBig: 1009,
  internalError: 1011,
  /** Never sent: the peer's close frame had no code. */
  noStatus: 1005,
  /** Never sent: the connection ended without a close frame. */
  abnormal: 1006,
} as const;

/**
 * A frame whose payload is shorter than this is copied behind its header
 * and written once; a longer one is written as header and payload,
 * uncopied (a new buffer per large message costs more than a corked write).
 */
const WRITE_UNCOPIED_FROM = 4 * 1024;

/** How long a connection failed for breaking a limit or the protocol stays open, in ms. */
const FAIL_LINGER_MS = 1000;

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** A frame header, parsed. */
interface FrameHeader {
  fin: boolean;
  opcode: number;
  /** Header bytes, mask key included. */
  headerLength: number;
  payloadLength: number;
  mask: Uint8Array;
}

/** Why a frame header cannot be taken, as a close code and reason. */
class FrameError extends Error {
  constructor(readonly code: number, reason: string) {
    super(reason);
  }
}

// ignoreBOM: a leading U+FEFF is part of a message, not a marker to strip.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/** A message as it arrives: text or bytes. */
export type WebSocketMessage = string | Uint8Array;

/**
 * One server-side WebSocket on an upgraded connection.
 *
 * Set `onmessage` and `onclose` at once: messages are delivered from the
 * first bytes on, and `onclose` is called exactly once, with the code the
 * connection ended with (1006 when it ended without a close frame).
 */
export class ServerWebSocket {
  /** Called with each complete message. */
  onmessage: (message: WebSocketMessage) => void = () => {};
  /** Called once, when the connection is gone. */
  onclose: (code: number, reason: string) => void = () => {};
  /** Called when `onmessage` threw; the socket is then closed with 1011. */
  onerror: (error: unknown) => void = () => {};

  /** Resolves once the connection is gone, with the code it ended with. */
  readonly closed: Promise<{ code: number; reason: string }>;
  #resolveClosed: (how: { code: number; reason: string }) => void = () => {};
  readonly #socket: Duplex;
  readonly #limits: WebSocketLimits;
  #state: "open" | "closing" | "closed" = "open";
  /** Bytes received and not yet parsed. */
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  /** The header of the frame whose payload is awaited. */
  #frame: FrameHeader | null = null;
  /** The fragments of the data message in progress, and its opcode. */
  #fragments: Uint8Array[] = [];
  #fragmentBytes = 0;
  #messageOpcode: number | null = null;
  /** Runs from a message's (or frame's) first byte until it is complete. */
  #messageTimer: ReturnType<typeof setTimeout> | undefined;
  /** Runs from this side's close frame until the connection is gone. */
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #closeCode: number = CloseCode.abnormal;
  #closeReason = "";
  #drainWaiters: (() => void)[] = [];

  /**
   * Takes over an upgraded connection whose 101 answer has been written.
   *
   * @param socket The connection.
   * @param head Bytes that arrived with the upgrade request, after its headers.
   * @param limits Size and time limits.
   */
  constructor(socket: Duplex, head: Uint8Array, limits: WebSocketLimits = WEBSOCKET_LIMITS) {
    this.#socket = socket;
    this.#limits = limits;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    socket.on("data", (chunk: Uint8Array) => this.#receive(chunk));
    socket.on("drain", () => this.#wakeDrainWaiters());
    socket.on("end", () => this.#drop());
    socket.on("error", () => this.#drop());
    socket.on("close", () => this.#closed());
    if (head.length > 0) queueMicrotask(() => this.#receive(head));
  }

  /** Messages can be sent (no close frame either way yet). */
  get open(): boolean {
    return this.#state === "open";
  }

  /** Bytes handed to {@linkcode send} and not yet written to the connection. */
  get bufferedAmount(): number {
    return this.#socket.writableLength;
  }

  /**
   * Sends one message: a string as text, bytes as binary. Ignored once
   * the socket is closing. The bytes are not copied: do not change them.
   *
   * @param message What to send.
   */
  send(message: WebSocketMessage): void {
    if (this.#state !== "open") return;
    if (typeof message === "string") this.#write(OP_TEXT, encoder.encode(message));
    else this.#write(OP_BINARY, message);
  }

  /**
   * Sends `bytes` as one binary message and resolves once the caller may
   * reuse them (a read buffer's view, say): a large message is written
   * behind its frame header without a copy, and the promise settles once
   * the connection has taken it (or has closed); a small one is copied with
   * its header into one buffer, and the promise settles at once. Ignored
   * once the socket is closing. The relay waits for each before it reads
   * the next: `bench websockify`, 4 interleaved pairs, the gateway's CPU
   * per byte of output 0.71 to 0.91 ns against 1.17 to 1.79 with a copy
   * into a new buffer per message.
   *
   * @param bytes The message.
   * @returns Settles when `bytes` may change.
   */
  sendView(bytes: Uint8Array): Promise<void> {
    if (this.#state !== "open") return Promise.resolve();
    if (bytes.length < WRITE_UNCOPIED_FROM) {
      this.#write(OP_BINARY, bytes);
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#write(OP_BINARY, bytes, () => resolve()));
  }

  /**
   * Resolves once at most `lowWater` bytes wait to be written, or the
   * socket is closed: how a sender waits for a slow peer.
   *
   * @param lowWater How much may still wait.
   */
  drained(lowWater = 0): Promise<void> {
    if (this.bufferedAmount <= lowWater || this.#state === "closed") return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.bufferedAmount <= lowWater || this.#state === "closed") resolve();
        else this.#drainWaiters.push(check);
      };
      this.#drainWaiters.push(check);
    });
  }

  /**
   * Starts the close handshake: a close frame goes out, and the peer has
   * the close timeout to answer before the connection is dropped.
   *
   * @param code The close code.
   * @param reason A short reason (at most 123 bytes are sent).
   */
  close(code: number = CloseCode.normal, reason = ""): void {
    if (this.#state !== "open") return;
    this.#sendClose(code, reason);
    this.#state = "closing";
    this.#closeCode = code;
    this.#closeReason = reason;
    this.#closeTimer = setTimeout(() => this.#socket.destroy(), this.#limits.closeTimeout);
  }

  /** Drops the connection at once, without a close handshake. */
  terminate(): void {
    this.#socket.destroy();
  }

  /**
   * Writes one frame; `written`, for a payload written uncopied, is called
   * once the connection has taken it, or with an error once it is
   * destroyed with it still queued.
   */
  #write(opcode: number, payload: Uint8Array, written?: () => void): void {
    const length = payload.length;
    if (length < WRITE_UNCOPIED_FROM) {
      // One buffer, one write: cheaper than two writes (or a corked writev) for little.
      const frame = new Uint8Array(headerLength(length) + length);
      frame.set(payload, putHeader(frame, opcode, length));
      this.#socket.write(frame);
      return;
    }
    const header = new Uint8Array(headerLength(length));
    putHeader(header, opcode, length);
    this.#socket.cork();
    this.#socket.write(header);
    this.#socket.write(payload, written);
    this.#socket.uncork();
  }

  #sendClose(code: number, reason: string): void {
    const text = encoder.encode(reason).subarray(0, 123);
    const payload = new Uint8Array(2 + text.length);
    payload[0] = code >> 8;
    payload[1] = code & 0xff;
    payload.set(text, 2);
    this.#write(OP_CLOSE, payload);
  }

  /**
   * Fails the connection (RFC 6455 section 7.1.7): a close frame saying
   * why, then no more reading, and the connection ends once it is written
   * (or after the close timeout, for a peer that does not read).
   */
  #fail(code: number, reason: string): void {
    if (this.#state === "closed") return;
    if (this.#state === "open") this.#sendClose(code, reason);
    this.#state = "closing";
    this.#closeCode = code;
    this.#closeReason = reason;
    this.#stopReading();
    this.#socket.end();
    clearTimeout(this.#closeTimer);
    // Long enough for the close frame to be read, not for a flood to hold the descriptor.
    const linger = Math.min(this.#limits.closeTimeout, FAIL_LINGER_MS);
    this.#closeTimer = setTimeout(() => this.#socket.destroy(), linger);
  }

  #stopReading(): void {
    this.#socket.pause();
    this.#socket.removeAllListeners("data");
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#frame = null;
    this.#fragments = [];
    this.#fragmentBytes = 0;
    this.#messageOpcode = null;
    clearTimeout(this.#messageTimer);
    this.#messageTimer = undefined;
  }

  /** The peer ended or broke the connection. */
  #drop(): void {
    this.#socket.destroy();
  }

  #closed(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearTimeout(this.#messageTimer);
    clearTimeout(this.#closeTimer);
    this.#pending = [];
    this.#fragments = [];
    this.#wakeDrainWaiters();
    this.#resolveClosed({ code: this.#closeCode, reason: this.#closeReason });
    this.onclose(this.#closeCode, this.#closeReason);
  }

  #wakeDrainWaiters(): void {
    for (const check of this.#drainWaiters.splice(0)) check();
  }

  #receive(chunk: Uint8Array): void {
    if (this.#state === "closed") return;
    // A plain view: a node Buffer's slice() would share memory rather than copy.
    this.#pending.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    this.#pendingBytes += chunk.length;
    try {
      while (this.#parseOne());
    } catch (error) {
      if (error instanceof FrameError) {
        this.#fail(error.code, error.message);
      } else {
        this.#fail(CloseCode.internalError, "internal error");
        this.onerror(error);
      }
      return;
    }
    this.#timeUnfinished();
  }

  /** Keeps the message timer running exactly while a message or frame is unfinished. */
  #timeUnfinished(): void {
    const unfinished = this.#pendingBytes > 0 || this.#frame !== null ||
      this.#messageOpcode !== null;
    if (!unfinished || this.#state === "closed") {
      clearTimeout(this.#messageTimer);
      this.#messageTimer = undefined;
    } else if (this.#messageTimer === undefined) {
      this.#messageTimer = setTimeout(() => {
        this.#messageTimer = undefined;
        this.#fail(CloseCode.policyViolation, "message unfinished for too long");
      }, this.#limits.messageTimeout);
    }
  }

  /** Parses one frame out of the pending bytes; false when more bytes are needed. */
  #parseOne(): boolean {
    if (this.#frame === null) {
      const header = this.#peekHeader();
      if (header === null) return false;
      this.#check(header);
      this.#frame = header;
    }
    const frame = this.#frame;
    if (this.#pendingBytes < frame.headerLength + frame.payloadLength) return false;
    this.#take(frame.headerLength);
    const payload = this.#take(frame.payloadLength);
    unmask(payload, frame.mask);
    this.#frame = null;
    this.#dispatch(frame, payload);
    return this.#state !== "closed" && this.#pendingBytes > 0;
  }

  /** Rejects a frame, from its header alone, that breaks the protocol or the size limit. */
  #check(frame: FrameHeader): void {
    const { opcode } = frame;
    if (opcode >= OP_CLOSE) {
      if (opcode > OP_PONG) throw new FrameError(CloseCode.protocolError, "unknown opcode");
      if (!frame.fin || frame.payloadLength > 125) {
        throw new FrameError(CloseCode.protocolError, "bad control frame");
      }
      return;
    }
    if (opcode !== OP_CONTINUATION && opcode !== OP_TEXT && opcode !== OP_BINARY) {
      throw new FrameError(CloseCode.protocolError, "unknown opcode");
    }
    if (opcode === OP_CONTINUATION && this.#messageOpcode === null) {
      throw new FrameError(CloseCode.protocolError, "continuation without a message");
    }
    if (opcode !== OP_CONTINUATION && this.#messageOpcode !== null) {
      throw new FrameError(CloseCode.protocolError, "new message inside a fragmented one");
    }
    if (this.#fragmentBytes + frame.payloadLength > this.#limits.maxMessage) {
      throw new FrameError(
        CloseCode.tooBig,
        `messages are limited to ${this.#limits.maxMessage} bytes`,
      );
    }
  }

  #dispatch(frame: FrameHeader, payload: Uint8Array): void {
    switch (frame.opcode) {
      case OP_PING:
        if (this.#state === "open") this.#write(OP_PONG, payload);
        return;
      case OP_PONG:
        return;
      case OP_CLOSE:
        return this.#closeReceived(payload);
    }
    if (this.#state !== "open") return;
    if (frame.opcode !== OP_CONTINUATION) this.#messageOpcode = frame.opcode;
    this.#fragments.push(payload);
    this.#fragmentBytes += payload.length;
    if (!frame.fin) return;
    const opcode = this.#messageOpcode;
    const data = concatBytes(this.#fragments);
    this.#fragments = [];
    this.#fragmentBytes = 0;
    this.#messageOpcode = null;
    if (opcode === OP_BINARY) {
      this.onmessage(data);
      return;
    }
    let text: string;
    try {
      text = utf8.decode(data);
    } catch {
      throw new FrameError(CloseCode.invalidData, "text message is not UTF-8");
    }
    this.onmessage(text);
  }

  #closeReceived(payload: Uint8Array): void {
    if (payload.length === 1) throw new FrameError(CloseCode.protocolError, "bad close frame");
    // A close frame without a code reports 1005 (RFC 6455 7.1.5), and is
    // answered by one without a code: 1005 is never sent.
    let code: number = CloseCode.noStatus;
    let reason = "";
    if (payload.length >= 2) {
      code = (payload[0] as number) << 8 | (payload[1] as number);
      if (!validCloseCode(code)) throw new FrameError(CloseCode.protocolError, "bad close code");
      try {
        reason = utf8.decode(payload.subarray(2));
      } catch {
        throw new FrameError(CloseCode.invalidData, "close reason is not UTF-8");
      }
    }
    if (this.#state === "open") {
      // The peer closes first: echo its code, and the handshake is done.
      if (code === CloseCode.noStatus) this.#write(OP_CLOSE, new Uint8Array(0));
      else this.#sendClose(code, "");
      this.#closeCode = code;
      this.#closeReason = reason;
    }
    this.#state = "closing";
    this.#stopReading();
    this.#socket.end();
    clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(() => this.#socket.destroy(), this.#limits.closeTimeout);
  }

  /** The header at the front of the pending bytes, or null while incomplete. */
  #peekHeader(): FrameHeader | null {
    const bytes = this.#peek(14);
    if (bytes.length < 2) return null;
    const b0 = bytes[0] as number;
    const b1 = bytes[1] as number;
    if ((b0 & 0x70) !== 0) throw new FrameError(CloseCode.protocolError, "reserved bits set");
    if ((b1 & 0x80) === 0) throw new FrameError(CloseCode.protocolError, "unmasked frame");
    let length = b1 & 0x7f;
    let at = 2;
    if (length === 126) {
      if (bytes.length < 4) return null;
      length = (bytes[2] as number) << 8 | (bytes[3] as number);
      at = 4;
    } else if (length === 127) {
      if (bytes.length < 10) return null;
      const view = new DataView(bytes.buffer, bytes.byteOffset + 2, 8);
      const high = view.getUint32(0);
      if (high >= 0x200000) throw new FrameError(CloseCode.tooBig, "frame too large");
      length = high * 2 ** 32 + view.getUint32(4);
      at = 10;
    }
    if (bytes.length < at + 4) return null;
    return {
      fin: (b0 & 0x80) !== 0,
      opcode: b0 & 0x0f,
      headerLength: at + 4,
      payloadLength: length,
      mask: bytes.slice(at, at + 4),
    };
  }

  /** Up to `count` pending bytes from the front, without taking them. */
  #peek(count: number): Uint8Array {
    const first = this.#pending[0];
    if (first === undefined) return new Uint8Array(0);
    if (first.length >= count || this.#pending.length === 1) return first.subarray(0, count);
    const out = new Uint8Array(Math.min(count, this.#pendingBytes));
    let at = 0;
    for (const chunk of this.#pending) {
      const part = chunk.subarray(0, out.length - at);
      out.set(part, at);
      at += part.length;
      if (at === out.length) break;
    }
    return out;
  }

  /**
   * Takes `count` bytes from the front of the pending bytes: a view of the
   * received chunk when they lie in one (each chunk is a buffer of its own,
   * never reused), else a new array.
   */
  #take(count: number): Uint8Array {
    const first = this.#pending[0];
    if (first !== undefined && first.length >= count) {
      if (first.length === count) this.#pending.shift();
      else this.#pending[0] = first.subarray(count);
      this.#pendingBytes -= count;
      return first.subarray(0, count);
    }
    const out = new Uint8Array(count);
    let at = 0;
    while (at < count) {
      const chunk = this.#pending[0] as Uint8Array;
      const part = chunk.subarray(0, count - at);
      out.set(part, at);
      at += part.length;
      if (part.length === chunk.length) this.#pending.shift();
      else this.#pending[0] = chunk.subarray(part.length);
    }
    this.#pendingBytes -= count;
    return out;
  }
}

/** The length of an unmasked frame header for a payload of `length` bytes. */
function headerLength(length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10;
}

/** Writes a final, unmasked frame header at the start of `target`; returns its length. */
function putHeader(target: Uint8Array, opcode: number, length: number): number {
  target[0] = 0x80 | opcode;
  if (length < 126) {
    target[1] = length;
    return 2;
  }
  if (length < 65536) {
    target[1] = 126;
    target[2] = length >> 8;
    target[3] = length & 0xff;
    return 4;
  }
  target[1] = 127;
  const view = new DataView(target.buffer, target.byteOffset, 10);
  view.setUint32(2, Math.floor(length / 2 ** 32));
  view.setUint32(6, length >>> 0);
  return 10;
}

/** Undoes the client's masking, in place. */
function unmask(payload: Uint8Array, mask: Uint8Array): void {
  const length = payload.length;
  let i = 0;
  // Byte by byte up to a 4-byte boundary, then four at a time with the mask
  // turned to match; the byte order of the platform is the mask's.
  for (; i < length && (payload.byteOffset + i) % 4 !== 0; i++) {
    payload[i] = (payload[i] as number) ^ (mask[i & 3] as number);
  }
  const words = (length - i) >> 2;
  if (words >= 4) {
    const turned = new Uint8Array(4);
    for (let k = 0; k < 4; k++) turned[k] = mask[(i + k) & 3] as number;
    const word = new Uint32Array(turned.buffer)[0] as number;
    const view = new Uint32Array(payload.buffer, payload.byteOffset + i, words);
    for (let w = 0; w < words; w++) view[w] = (view[w] as number) ^ word;
    i += words << 2;
  }
  for (; i < length; i++) payload[i] = (payload[i] as number) ^ (mask[i & 3] as number);
}

/** Close codes a peer may send (RFC 6455 section 7.4). */
function validCloseCode(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006;
}
