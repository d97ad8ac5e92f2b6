/**
 * What the browser tests share: Debian's chromium (never a downloaded
 * browser), launched headless by playwright-core, and reading the page's
 * terminal and status.
 *
 * @module
 */

import { type Browser, chromium, type Page } from "playwright-core";
import { issuedSecrets, WAIT_MS } from "./_helpers.ts";

/** Debian's chromium, or `undefined` where it is not installed. */
export const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});

/** Runs `fn` with a headless chromium, closed after. */
export async function withBrowser(fn: (browser: Browser) => Promise<void>): Promise<void> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM ?? "chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    await fn(browser);
  } finally {
    await browser.close();
  }
}

/** The terminal's text, line by line, read from xterm.js in the page. */
export function screen(page: Page): Promise<string> {
  return page.evaluate(() => {
    // deno-lint-ignore no-explicit-any
    const buffer = (globalThis as any).socketproxy?.terminal.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < (buffer?.length ?? 0); i++) {
      lines.push(buffer.getLine(i)?.translateToString(true) ?? "");
    }
    return lines.join("\n").replace(/\n+$/, "");
  });
}

export async function waitForScreen(page: Page, pattern: RegExp): Promise<string> {
  const deadline = Date.now() + WAIT_MS;
  let text = "";
  // The page has no event to wait on from here: look again until it shows.
  while (Date.now() < deadline) {
    text = await screen(page);
    if (pattern.test(text)) return text;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no ${pattern} on the page's terminal:\n${text}`);
}

export async function waitUntil(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  // What the destination heard has no event: look again until it is there.
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${WAIT_MS} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function waitForStatus(page: Page, status: string): Promise<void> {
  await page.waitForSelector(`body[data-status="${status}"]`, { timeout: WAIT_MS });
}

export async function rememberSecrets(page: Page): Promise<void> {
  const text = await page.evaluate(() => sessionStorage.getItem("socketproxy-session"));
  if (text) issuedSecrets.add(JSON.parse(text).secret);
}
