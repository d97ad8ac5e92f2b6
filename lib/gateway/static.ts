/**
 * The static files the gateway serves (the browser page): their shape and
 * their ETags.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** A static file the gateway serves. */
export interface Asset {
  /** Its media type. */
  type: string;
  /** Its content. */
  body: string | Uint8Array<ArrayBuffer>;
}

/** Strong ETags of the assets, from a hash of their content, computed once. */
export function assetTags(assets: Record<string, Asset>): Map<string, string> {
  const tags = new Map<string, string>();
  for (const [path, asset] of Object.entries(assets)) {
    const digest = createHash("sha256").update(asset.body).digest("base64url");
    tags.set(path, `"${digest.slice(0, 16)}"`);
  }
  return tags;
}
