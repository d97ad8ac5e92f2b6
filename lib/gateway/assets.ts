/**
 * The browser page the gateway serves, embedded in the program (text
 * imports are part of the module graph, so `deno compile` carries them and
 * serving them needs no file access).
 *
 * @module
 */

import xtermCss from "@xterm/xterm/css/xterm.css" with { type: "text" };
import indexHtml from "../../web/index.html" with { type: "text" };
import appJs from "../../web/dist/app.js" with { type: "text" };
import styleCss from "../../web/style.css" with { type: "text" };
import type { Asset } from "./static.ts";

/** The page's files by the path they are served at. */
export const WEB_ASSETS: Record<string, Asset> = {
  "/": { type: "text/html; charset=utf-8", body: indexHtml },
  "/assets/app.js": { type: "text/javascript; charset=utf-8", body: appJs },
  "/assets/style.css": { type: "text/css; charset=utf-8", body: styleCss },
  "/assets/xterm.css": { type: "text/css; charset=utf-8", body: xtermCss },
};
