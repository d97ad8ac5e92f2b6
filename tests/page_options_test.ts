/**
 * The page's query parameters: the destination, font, size, theme,
 * transport and embedder, each checked and bounded (web/page_options.ts).
 */

import assert from "node:assert/strict";
import { DEFAULT_FONT_SIZE, FALLBACK_FONTS, pageOptions } from "../web/page_options.ts";

Deno.test("no parameters: the gateway's default destination, the default look, no embedder", () => {
  assert.deepEqual(pageOptions(""), {
    to: undefined,
    fontFamily: FALLBACK_FONTS,
    fontSize: DEFAULT_FONT_SIZE,
    theme: "dark",
    transport: "auto",
    embedder: undefined,
  });
  assert.match(FALLBACK_FONTS, /CJK/, "a CJK-capable fallback");
  assert.match(FALLBACK_FONTS, /monospace$/);
});

Deno.test("valid parameters are taken", () => {
  assert.deepEqual(
    pageOptions(
      "?to=bbs.old&font=Fira+Code&fontSize=18&theme=light&transport=poll&embedder=https%3A%2F%2Fplay.example.org%3A8443",
    ),
    {
      to: "bbs.old",
      fontFamily: `"Fira Code", ${FALLBACK_FONTS}`,
      fontSize: 18,
      theme: "light",
      transport: "poll",
      embedder: "https://play.example.org:8443",
    },
  );
  assert.equal(pageOptions("?embedder=http://127.0.0.1:8080/").embedder, "http://127.0.0.1:8080");
});

Deno.test("values that are not valid are ignored, sizes clamped", () => {
  const bad = pageOptions(
    "?to=a%20b&font=x%22%2C%20evil&theme=neon&transport=carrier-pigeon&fontSize=abc",
  );
  assert.equal(bad.to, undefined);
  assert.equal(bad.fontFamily, FALLBACK_FONTS);
  assert.equal(bad.theme, "dark");
  assert.equal(bad.transport, "auto");
  assert.equal(bad.fontSize, DEFAULT_FONT_SIZE);
  assert.equal(pageOptions("?fontSize=2").fontSize, 8);
  assert.equal(pageOptions("?fontSize=400").fontSize, 40);
  assert.equal(pageOptions("?fontSize=15.6").fontSize, 16);
  assert.equal(pageOptions(`?to=${"x".repeat(65)}`).to, undefined);
  for (
    const embedder of ["*", "null", "javascript:alert(1)", "https://a.example/path", "file:///x"]
  ) {
    assert.equal(pageOptions(`?embedder=${encodeURIComponent(embedder)}`).embedder, undefined);
  }
});
