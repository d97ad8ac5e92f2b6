/**
 * The version of socketproxy, read from `deno.json`.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };

/** The version string, such as `0.1.0`. */
export const VERSION: string = denoJson.version;
