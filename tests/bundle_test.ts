/**
 * The page's script is committed as built (web/dist/app.js), so that the
 * gateway and `deno compile` embed it without a build step: it must match
 * what `deno task build` makes from the sources now.
 */

import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("web/dist/app.js is what deno task build makes from web/*.ts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "socketproxy-bundle-" });
  try {
    const args = (denoJson.tasks.build as string).split(" ").slice(1)
      .map((arg) => (arg === "web/dist/app.js" ? `${dir}/app.js` : arg));
    const output = await new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
    const fresh = await Deno.readTextFile(`${dir}/app.js`);
    const committed = await Deno.readTextFile(`${ROOT}web/dist/app.js`);
    assert.ok(fresh === committed, "web/dist/app.js is stale: run deno task build");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
