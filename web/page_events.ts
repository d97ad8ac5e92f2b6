/**
 * The page's events for the site around it: GMCP, MSDP and MSSP messages
 * and prompt marks from the telnet engine, dispatched as `window`
 * `CustomEvent`s (`socketproxy:gmcp`, ...) and, when the page is framed by
 * the origin given in `?embedder=`, posted to that parent as
 * `{ type, detail }`. Messages the embedder posts back
 * (`socketproxy:send-gmcp`, `socketproxy:send-msdp`) are taken only from
 * that parent and that origin. See docs/gateway.md for the shapes.
 *
 * @module
 */

/// <reference lib="dom" />

import { type MsdpValue, pageEventName, type TelnetEvent } from "./telnet.ts";

/** The types of the messages an embedder may post to the page. */
export const EMBEDDER_MESSAGES = {
  sendGmcp: "socketproxy:send-gmcp",
  sendMsdp: "socketproxy:send-msdp",
} as const;

/** What the page does with an embedder's messages. */
export interface EmbedderHandlers {
  /** Sends GMCP; returns whether it went out (GMCP is on). */
  sendGmcp(name: string, data?: unknown): boolean;
  /** Sends MSDP; returns whether it went out (MSDP is on). */
  sendMsdp(variable: string, value: MsdpValue): boolean;
}

/**
 * Hands telnet events to the page and to its embedder.
 *
 * @example
 * ```ts ignore
 * const events = new PageEvents(window, "https://play.example.org");
 * events.listen({ sendGmcp, sendMsdp });
 * for (const event of received.events) events.dispatch(event);
 * ```
 */
export class PageEvents {
  readonly #window: Window;
  readonly #embedder: string | undefined;

  /**
   * @param window The page's window.
   * @param embedder The origin events are posted to, or `undefined` for none.
   */
  constructor(window: Window, embedder: string | undefined) {
    this.#window = window;
    this.#embedder = embedder;
  }

  /** The parent frame events are posted to, if the page is framed and has an embedder. */
  get #parent(): Window | null {
    const parent = this.#window.parent;
    return this.#embedder !== undefined && parent && parent !== this.#window ? parent : null;
  }

  /**
   * Dispatches one engine event, if it is one for the page (not `option`
   * nor `charset`).
   *
   * @param event An event from `Telnet.receive`.
   */
  dispatch(event: TelnetEvent): void {
    const name = pageEventName(event);
    if (name === undefined) return;
    this.#window.dispatchEvent(new CustomEvent(name, { detail: event }));
    const parent = this.#parent;
    if (parent && this.#embedder) {
      try {
        parent.postMessage({ type: name, detail: event }, this.#embedder);
      } catch {
        // Not cloneable: cannot happen for engine events, which are plain data.
      }
    }
  }

  /**
   * Takes the embedder's messages: `{ type: "socketproxy:send-gmcp",
   * package, data? }` and `{ type: "socketproxy:send-msdp", variable,
   * value }`, from the parent frame at the embedder's origin only.
   *
   * @param handlers What to do with them.
   */
  listen(handlers: EmbedderHandlers): void {
    if (this.#embedder === undefined) return;
    this.#window.addEventListener("message", (event: MessageEvent) => {
      if (event.origin !== this.#embedder || event.source !== this.#parent) return;
      const message = event.data as Record<string, unknown> | null;
      if (typeof message !== "object" || message === null) return;
      try {
        if (message.type === EMBEDDER_MESSAGES.sendGmcp && typeof message.package === "string") {
          handlers.sendGmcp(message.package, message.data);
        } else if (
          message.type === EMBEDDER_MESSAGES.sendMsdp && typeof message.variable === "string"
        ) {
          handlers.sendMsdp(message.variable, message.value as MsdpValue);
        }
      } catch (error) {
        console.warn("socketproxy: ignored a message from the embedder:", error);
      }
    });
  }
}
