/**
 * The container image's health probe: exits 0 when any of the given URLs
 * answers `GET` with a 2xx status within 3 seconds, 1 otherwise. With no
 * arguments it tries the gateway's `/health` (`web`, port 8080) and the
 * admin API's `/health` (`server`, port 9010) on loopback, so one
 * `HEALTHCHECK` serves a container running either command. The
 * `Containerfile` runs it with `--allow-net=127.0.0.1` and nothing else.
 *
 * @module
 */

/** What the probe asks when given no URLs: the default ports of `web` and of `server --admin`. */
export const DEFAULT_HEALTH_URLS: readonly string[] = [
  "http://127.0.0.1:8080/health",
  "http://127.0.0.1:9010/health",
];

/**
 * Whether any of `urls` answers with a 2xx status.
 *
 * @param urls The URLs to try, in order.
 * @param timeoutMs How long to wait for each, in milliseconds.
 * @returns `true` at the first 2xx answer, `false` when none gives one.
 */
export async function probe(urls: readonly string[], timeoutMs = 3000): Promise<boolean> {
  for (const url of urls) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      await response.body?.cancel();
      if (response.ok) return true;
    } catch {
      // Refused, timed out or not HTTP: this one is not the healthy server; try the next.
    }
  }
  return false;
}

if (import.meta.main) {
  Deno.exit(await probe(Deno.args.length > 0 ? Deno.args : DEFAULT_HEALTH_URLS) ? 0 : 1);
}
