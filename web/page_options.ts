/**
 * What the page's address asks for: the destination (`?to=`), the font,
 * its size and the theme, the transport, and the origin of an embedding
 * site (`?embedder=`). Every value is checked and bounded; one that is not
 * valid is ignored (the default applies), so a made-up link can do no more
 * than the page's own controls.
 *
 * Pure code, no DOM: the page and the tests import it.
 *
 * @module
 */

/** The page's look and wiring, as its query parameters set them. */
export interface PageOptions {
  /** The destination name to ask the gateway for, or `undefined` for its default. */
  to: string | undefined;
  /** The CSS font list for the terminal, with CJK-capable fallbacks. */
  fontFamily: string;
  /** The font size in CSS pixels, from 8 to 40. */
  fontSize: number;
  /** The colour theme. */
  theme: "dark" | "light";
  /** The transport forced, or `auto`. */
  transport: "websocket" | "longpoll" | "poll" | "auto";
  /**
   * The origin of the site that frames the page: events are posted to it,
   * and GMCP it posts is sent. `undefined`: nothing is posted.
   */
  embedder: string | undefined;
}

/**
 * The fonts after the one asked for: common monospace fonts, then ones with
 * CJK glyphs (a CJK character takes two cells, and the browser falls back
 * to these for it), then the generic family.
 */
export const FALLBACK_FONTS =
  'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, ' +
  '"Noto Sans Mono CJK SC", "Noto Sans Mono CJK JP", "Noto Sans CJK SC", ' +
  '"Source Han Mono", "WenQuanYi Zen Hei Mono", "MS Gothic", monospace';

/** The default font size, in CSS pixels. */
export const DEFAULT_FONT_SIZE = 14;
const MIN_FONT_SIZE = 8;
const MAX_FONT_SIZE = 40;
/** A font family name as `?font=` takes it: no quotes, commas or markup. */
const FONT_NAME = /^[A-Za-z0-9 _.-]{1,64}$/;
/** As the server's destination names (see the protocol). */
const DESTINATION_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * Reads the page's options from its query string.
 *
 * @param search `location.search`, or any query string.
 * @returns The options, with defaults for what is missing or not valid.
 *
 * @example
 * ```ts
 * import { pageOptions } from "./page_options.ts";
 *
 * const options = pageOptions("?to=mud&fontSize=18&theme=light&embedder=https://play.example.org");
 * console.assert(options.to === "mud" && options.fontSize === 18 && options.theme === "light");
 * console.assert(options.embedder === "https://play.example.org");
 * console.assert(pageOptions("?fontSize=1e9&embedder=*").fontSize === 40);
 * ```
 */
export function pageOptions(search: string): PageOptions {
  const query = new URLSearchParams(search);
  const to = query.get("to") ?? "";
  const font = query.get("font")?.trim() ?? "";
  const theme = query.get("theme");
  const transport = query.get("transport") ?? "";
  return {
    to: DESTINATION_NAME.test(to) ? to : undefined,
    fontFamily: FONT_NAME.test(font) ? `"${font}", ${FALLBACK_FONTS}` : FALLBACK_FONTS,
    fontSize: fontSizeOf(query.get("fontSize")),
    theme: theme === "light" ? "light" : "dark",
    transport: transport === "websocket" || transport === "longpoll" || transport === "poll"
      ? transport
      : "auto",
    embedder: originOf(query.get("embedder")),
  };
}

/** A font size within bounds; the default for what is not a number. */
function fontSizeOf(text: string | null): number {
  const size = Number(text ?? NaN);
  if (text === null || text.trim() === "" || !Number.isFinite(size)) return DEFAULT_FONT_SIZE;
  return Math.min(MAX_FONT_SIZE, Math.max(MIN_FONT_SIZE, Math.round(size)));
}

/** An `http:` or `https:` origin exactly (`https://host[:port]`), or `undefined`. */
function originOf(text: string | null): string | undefined {
  if (!text) return undefined;
  try {
    const url = new URL(text);
    if (url.protocol !== "https:" && url.protocol !== "http:") return undefined;
    return url.origin === text.replace(/\/$/, "") ? url.origin : undefined;
  } catch {
    return undefined;
  }
}
