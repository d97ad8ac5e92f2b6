/**
 * `sessionStorage` for tests of the page's session client run in Deno:
 * a map, whose stored sessions' secrets are added to the ones the tests
 * check never leak.
 *
 * @module
 */

import { issuedSecrets } from "./_helpers.ts";

/** sessionStorage for tests. */
export class MemoryStorage {
  readonly items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
    const secret = JSON.parse(value).secret;
    if (typeof secret === "string") issuedSecrets.add(secret);
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
}
