/**
 * The terminal's screen kept across page reloads, per session, in
 * `sessionStorage`: a reload, or a new tab on the same session, shows the
 * terminal as it was, and output resumes exactly where the screen ends.
 *
 * xterm.js parses what it is given later, in its own time, so the screen
 * it can serialize (with `@xterm/addon-serialize`) lags the output handed
 * over. Two records keep that exact:
 *
 * - `socketproxy-screen:<id>`: the serialized screen at output offset
 *   `at`, taken now and then (a second or two after output, when the text
 *   since grows long, and when the page is hidden or unloads), capped at
 *   {@linkcode ScreenKeeperOptions.maxScreen} by dropping the oldest
 *   scrollback;
 * - `socketproxy-view:<id>`: saved with every piece of output, at the
 *   session's offset: the text written since the screen was taken, and the
 *   page's state at that offset (telnet, a split character, the prompt).
 *
 * Restoring writes the screen, then that text, before any new output, so
 * nothing is shown twice or lost. A record that does not fit storage is
 * dropped, and the next reload shows a blank terminal, as before there was
 * any keeping, while output goes on unharmed.
 *
 * @module
 */

/** What the keeper needs of the terminal: xterm.js's `Terminal`. */
export interface KeptTerminal {
  write(data: string, callback?: () => void): void;
  readonly rows: number;
  readonly buffer: { readonly active: { readonly length: number } };
}

/** What the keeper needs of `@xterm/addon-serialize`'s `SerializeAddon`. */
export interface Serializer {
  serialize(options?: { scrollback?: number }): string;
}

/** Options for {@linkcode ScreenKeeper}. */
export interface ScreenKeeperOptions {
  /** Where records live: the page passes `sessionStorage`. */
  storage: Storage;
  /** The terminal shown. */
  terminal: KeptTerminal;
  /** Its serialize addon, loaded. */
  serializer: Serializer;
  /** Most characters of one saved screen, scrollback dropped oldest first. @default {262144} */
  maxScreen?: number;
  /** Characters of text since the screen was taken at which it is taken again. @default {32768} */
  maxTail?: number;
  /** How long after output the screen is taken, in ms. @default {2000} */
  delay?: number;
}

/** What a reload gets back: the page state saved with the view. */
export interface KeptView {
  /** Whether the screen was restored (written to the terminal). */
  restored: boolean;
  /** The page's state at the session's offset, as saved by {@linkcode ScreenKeeper.written}. */
  state: Record<string, unknown>;
}

const SCREEN_PREFIX = "socketproxy-screen:";
const VIEW_PREFIX = "socketproxy-view:";
/** Records of earlier pages, dropped with other sessions'. */
const OLD_PREFIXES = ["socketproxy-telnet:"];
const MAX_SCREEN = 256 * 1024;
const MAX_TAIL = 32 * 1024;

interface ViewRecord {
  at: number;
  screenAt: number;
  tail: string;
  state: Record<string, unknown>;
}

interface ScreenRecord {
  at: number;
  screen: string;
}

/**
 * Keeps one page's screen for the session it shows.
 *
 * @example
 * ```ts ignore
 * const keeper = new ScreenKeeper({ storage: sessionStorage, terminal, serializer });
 * const kept = keeper.takeUp(session.id, session.ack); // before any output
 * keeper.written(text, offsetAfter, { telnet: telnet.snapshot() });
 * ```
 */
export class ScreenKeeper {
  readonly #options: ScreenKeeperOptions;
  readonly #maxScreen: number;
  readonly #maxTail: number;
  #id: string | null = null;
  /** The session's output offset the terminal has been given text up to. */
  #at = 0;
  /** The offset of the saved screen, which the tail continues. */
  #screenAt = 0;
  /** Text written since the saved screen, each piece with the offset it ends at. */
  #tail: { end: number; text: string }[] = [];
  #tailLength = 0;
  /** The offset xterm.js has parsed up to, or `null` while it is restoring. */
  #parsedAt: number | null = 0;
  #state: Record<string, unknown> = {};
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** @param options The storage, terminal, serializer and bounds. */
  constructor(options: ScreenKeeperOptions) {
    this.#options = options;
    this.#maxScreen = options.maxScreen ?? MAX_SCREEN;
    this.#maxTail = options.maxTail ?? MAX_TAIL;
  }

  /**
   * Starts keeping session `id`, whose output resumes at `ack`: writes its
   * saved screen to the terminal (which the caller has cleared), if it goes
   * with `ack`, and drops every other session's records.
   *
   * @param id The session.
   * @param ack The output offset it resumes at.
   * @returns The saved page state, or `null` when there is none for `ack`.
   */
  takeUp(id: string, ack: number): KeptView | null {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#dropOthers(id);
    this.#id = id;
    this.#at = ack;
    this.#screenAt = ack;
    this.#tail = [];
    this.#tailLength = 0;
    this.#state = {};
    const view = this.#read<ViewRecord>(VIEW_PREFIX, isViewRecord);
    const screen = this.#read<ScreenRecord>(SCREEN_PREFIX, isScreenRecord);
    if (!view || view.at !== ack) {
      this.#parsedAt = ack;
      this.#forget();
      return null;
    }
    this.#state = view.state;
    if (!screen || screen.at !== view.screenAt || view.screenAt > ack) {
      // The state goes with the offset; only the picture is lost.
      this.#parsedAt = ack;
      return { restored: false, state: view.state };
    }
    this.#parsedAt = null;
    this.#screenAt = screen.at;
    this.#options.terminal.write(screen.screen, () => {
      this.#parsedAt ??= screen.at;
    });
    if (view.tail.length > 0) this.#writeTail(view.tail, ack);
    else this.#options.terminal.write("", () => (this.#parsedAt = ack));
    return { restored: true, state: view.state };
  }

  /**
   * Writes output text to the terminal and saves the view: `text` ends at
   * output offset `end`, and `state` is the page's state there.
   *
   * @param text The text for the terminal (possibly empty).
   * @param end The session's output offset after it.
   * @param state The page's state at `end` (JSON-safe).
   */
  written(text: string, end: number, state: Record<string, unknown>): void {
    this.#at = end;
    this.#state = state;
    if (text.length > 0) this.#writeTail(text, end);
    this.#saveView();
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.snapshot();
    }, this.#options.delay ?? 2000);
  }

  /**
   * Saves the screen as xterm.js has parsed it, with its offset, and the
   * view that continues it. Call it when the page is hidden or unloads.
   */
  snapshot(): void {
    const at = this.#parsedAt;
    if (this.#id === null || at === null) return;
    const screen = this.#serialize();
    if (screen === null || !this.#set(SCREEN_PREFIX, { at, screen })) {
      this.#forget();
      return;
    }
    this.#screenAt = at;
    while (this.#tail.length > 0 && (this.#tail[0]?.end ?? Infinity) <= at) {
      this.#tailLength -= this.#tail.shift()?.text.length ?? 0;
    }
    this.#saveView();
  }

  /** Drops the session's records (it ended); the page shows it still, but a reload will not. */
  forget(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#forget();
    this.#id = null;
  }

  #writeTail(text: string, end: number): void {
    this.#tail.push({ end, text });
    this.#tailLength += text.length;
    this.#options.terminal.write(text, () => {
      if (this.#parsedAt === null || this.#parsedAt < end) this.#parsedAt = end;
      // Taken here, where what is parsed is known exactly, so the text kept stays short.
      if (this.#tailLength > this.#maxTail) this.snapshot();
    });
  }

  #saveView(): void {
    if (this.#id === null) return;
    const view: ViewRecord = {
      at: this.#at,
      screenAt: this.#screenAt,
      tail: this.#tail.map((piece) => piece.text).join(""),
      state: this.#state,
    };
    // Text too long to keep (a flood xterm.js has not parsed yet): a reload shows it blank.
    if (this.#tailLength > this.#maxScreen || !this.#set(VIEW_PREFIX, view)) this.#forget();
  }

  /** The screen serialized within the cap, the oldest scrollback dropped; `null` if even none fits. */
  #serialize(): string | null {
    const { terminal, serializer } = this.#options;
    let scrollback = Math.max(0, terminal.buffer.active.length - terminal.rows);
    // Each try shrinks the scrollback in proportion: a few tries at most.
    for (let tries = 0; tries < 8; tries++) {
      const screen = serializer.serialize({ scrollback });
      if (screen.length <= this.#maxScreen) return screen;
      if (scrollback === 0) return null;
      scrollback = Math.floor(scrollback * (this.#maxScreen / screen.length) * 0.9);
    }
    return null;
  }

  #read<T>(prefix: string, check: (value: unknown) => value is T): T | null {
    try {
      const text = this.#options.storage.getItem(prefix + this.#id);
      const value: unknown = text ? JSON.parse(text) : null;
      return check(value) ? value : null;
    } catch {
      return null;
    }
  }

  #set(prefix: string, value: unknown): boolean {
    try {
      this.#options.storage.setItem(prefix + this.#id, JSON.stringify(value));
      return true;
    } catch {
      return false; // over the storage quota
    }
  }

  #forget(): void {
    if (this.#id === null) return;
    this.#options.storage.removeItem(SCREEN_PREFIX + this.#id);
    this.#options.storage.removeItem(VIEW_PREFIX + this.#id);
  }

  #dropOthers(id: string): void {
    const { storage } = this.#options;
    for (let i = storage.length - 1; i >= 0; i--) {
      const key = storage.key(i);
      if (key === null) continue;
      const prefix = [SCREEN_PREFIX, VIEW_PREFIX, ...OLD_PREFIXES].find((p) => key.startsWith(p));
      if (prefix && key !== prefix + id) storage.removeItem(key);
    }
  }
}

function isViewRecord(value: unknown): value is ViewRecord {
  const view = value as ViewRecord;
  return typeof value === "object" && value !== null && Number.isSafeInteger(view.at) &&
    Number.isSafeInteger(view.screenAt) && typeof view.tail === "string" &&
    typeof view.state === "object" && view.state !== null;
}

function isScreenRecord(value: unknown): value is ScreenRecord {
  const screen = value as ScreenRecord;
  return typeof value === "object" && value !== null && Number.isSafeInteger(screen.at) &&
    typeof screen.screen === "string";
}
