/**
 * Configuration end to end, through `main.ts` with exactly the permissions
 * of `deno task start` (`--allow-env=SOCKETPROXY_*`, which lets socketproxy
 * read its variables but not list the environment): `server --check` and
 * `web --check` print the resolved settings with their sources, secrets
 * masked, or one error line and exit 2; a typo in a variable's name is
 * caught; a server really runs on settings from the environment and a file.
 */

import assert from "node:assert/strict";
import { echoDestination, RUN_PERMISSIONS, runMain } from "./_helpers.ts";
import { taskPermissions } from "./_packaging.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Writes `content` to a temporary file and returns its path. */
function tempFile(content: string, suffix: string): string {
  const path = Deno.makeTempFileSync({ prefix: "socketproxy-configuration-", suffix });
  Deno.writeTextFileSync(path, content);
  return path;
}

Deno.test("the tests run main.ts with exactly the permissions of deno task start", () => {
  assert.deepEqual([...RUN_PERMISSIONS].sort(), taskPermissions("start"));
  assert.ok(RUN_PERMISSIONS.includes("--allow-env=SOCKETPROXY_*"));
});

Deno.test("server --check prints each setting, its value and source, the token masked; exit 0", async () => {
  const token = "c0nfig-check-secret";
  const tokenFile = tempFile(`${token}\n`, ".token");
  const config = tempFile(
    JSON.stringify({ server: { "max-sessions": 50, "allow-host": ["play.example.com"] } }),
    ".json",
  );
  try {
    const { code, stdout, stderr } = await runMain(
      ["server", "--check", `--config=${config}`, "--log-level=debug", "example.com:23"],
      {
        env: {
          SOCKETPROXY_SERVER_BUFFER: "64k",
          SOCKETPROXY_SERVER_ADMIN_TOKEN_FILE: tokenFile,
          SOCKETPROXY_ADMIN_TOKEN: "not-this-one",
        },
      },
    );
    assert.equal(code, 0, stderr);
    assert.equal(stderr, "");
    const lines = stdout.trimEnd().split("\n");
    assert.equal(lines[0], "socketproxy server: the configuration is valid");
    const rows = new Map(
      lines.slice(2).map((line) => {
        const [name = "", value = "", from = ""] = line.split(/\s{2,}/);
        return [name, { value, from }];
      }),
    );
    assert.deepEqual(rows.get("dest"), {
      value: "example.com:23",
      from: "argument DEST_HOST:DEST_PORT",
    });
    assert.deepEqual(rows.get("log-level"), { value: "debug", from: "flag --log-level" });
    assert.deepEqual(rows.get("buffer"), { value: "64k", from: "env SOCKETPROXY_SERVER_BUFFER" });
    assert.deepEqual(rows.get("max-sessions"), {
      value: "50",
      from: `file ${config}: server.max-sessions`,
    });
    assert.deepEqual(rows.get("allow-host"), {
      value: "play.example.com",
      from: `file ${config}: server.allow-host`,
    });
    assert.deepEqual(rows.get("proxy"), { value: "localhost:9009", from: "default" });
    assert.deepEqual(rows.get("admin-token"), {
      value: "********",
      from: "env SOCKETPROXY_SERVER_ADMIN_TOKEN_FILE",
    });
    assert.deepEqual(rows.get("admin-token-file"), {
      value: tokenFile,
      from: "env SOCKETPROXY_SERVER_ADMIN_TOKEN_FILE",
    });
    assert.ok(!stdout.includes(token) && !stdout.includes("not-this-one"), "no token shown");
  } finally {
    Deno.removeSync(tokenFile);
    Deno.removeSync(config);
  }
});

Deno.test("server --check names what a server started so would warn of", async () => {
  const { code, stdout } = await runMain([
    "server",
    "--check",
    "--admin=0.0.0.0:9010",
    "example.com:23",
  ]);
  assert.equal(code, 0);
  assert.match(stdout, /^warning: admin\.no_token admin=0\.0\.0\.0:9010 /m);
});

Deno.test("an invalid configuration under --check is one error line and exit 2", async (t) => {
  const broken = tempFile('{"server": {"buffer": "1k",}}', ".json");
  const unknownKey = tempFile('{"web": {"lisen": ":8081"}}', ".json");
  try {
    const cases: [string, string[], Record<string, string>, RegExp][] = [
      [
        "a bad value from a variable",
        ["server", "--check", "a:1"],
        { SOCKETPROXY_SERVER_IDLE_TIMEOUT: "soon" },
        /^socketproxy server: SOCKETPROXY_SERVER_IDLE_TIMEOUT: cannot parse duration "soon"/,
      ],
      [
        "a typo in a variable's name, caught without listing the environment",
        ["server", "--check", "a:1"],
        { SOCKETPROXY_SERVER_MAX_SESSION: "5" },
        /^socketproxy server: unknown variable "SOCKETPROXY_SERVER_MAX_SESSION": socketproxy server has no such setting \(did you mean "SOCKETPROXY_SERVER_MAX_SESSIONS"\?\)$/,
      ],
      [
        "a file that is not JSON",
        ["server", "--check", `--config=${broken}`, "a:1"],
        {},
        new RegExp(`^socketproxy server: ${broken}: not valid JSON: `),
      ],
      [
        "an unknown key in the file",
        ["web", "--check"],
        { SOCKETPROXY_CONFIG: unknownKey },
        new RegExp(
          `^socketproxy web: ${unknownKey}: web: unknown setting "lisen" \\(did you mean "listen"\\?\\)$`,
        ),
      ],
      [
        "a bad web value",
        ["web", "--check", "--metrics=nope"],
        {},
        /^socketproxy web: --metrics: missing port in "nope"/,
      ],
      [
        "a TLS file that is not there",
        ["web", "--check", "--tls-cert=/nonexistent/cert.pem", "--tls-key=/nonexistent/key.pem"],
        {},
        /^socketproxy web: --tls-cert: cannot read "\/nonexistent\/cert\.pem": no such file$/,
      ],
    ];
    for (const [name, args, env, expected] of cases) {
      await t.step(name, async () => {
        const { code, stdout, stderr } = await runMain(args, { env });
        assert.equal(code, 2, stderr);
        assert.equal(stdout, "");
        assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
        assert.match(stderr.trimEnd(), expected);
      });
    }
  } finally {
    Deno.removeSync(broken);
    Deno.removeSync(unknownKey);
  }
});

Deno.test("web --check prints the gateway's resolved settings; exit 0", async () => {
  const { code, stdout, stderr } = await runMain(["web", "--check", "--no-tls"], {
    env: { SOCKETPROXY_WEB_PROXY: "127.0.0.1:7000", SOCKETPROXY_WEB_TLS: "true" },
  });
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^socketproxy web: the configuration is valid$/m);
  assert.match(stdout, /^proxy +127\.0\.0\.1:7000 +env SOCKETPROXY_WEB_PROXY$/m);
  assert.match(stdout, /^tls +false +flag --tls$/m);
  assert.match(stdout, /^listen +localhost:8080 +default$/m);
});

Deno.test("status reads its admin address from its own variable, and names it in errors", async () => {
  const { code, stderr } = await runMain(["status"], {
    env: { SOCKETPROXY_STATUS_ADMIN: "127.0.0.1:6000" },
  });
  assert.equal(code, 2, stderr);
  assert.match(
    stderr,
    /^socketproxy status: SOCKETPROXY_STATUS_ADMIN: port 6000 is one that fetch refuses/,
  );
});

Deno.test("a server runs on settings from the environment and a --config file", async () => {
  await using destination = echoDestination();
  const config = tempFile(
    JSON.stringify({ server: { dest: `127.0.0.1:${destination.port}`, buffer: "64k" } }),
    ".json",
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_PERMISSIONS, MAIN, "server"],
    env: {
      SOCKETPROXY_CONFIG: config,
      SOCKETPROXY_SERVER_PROXY: "127.0.0.1:0",
      SOCKETPROXY_SERVER_ADMIN: "off",
      SOCKETPROXY_SERVER_LOG_FORMAT: "json",
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const deadline = AbortSignal.timeout(10_000);
    while (!text.includes('"server.listening"') && !deadline.aborted) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const line = text.split("\n").find((candidate) => candidate.includes('"server.listening"'));
    assert.ok(line, text);
    const fields = JSON.parse(line);
    assert.equal(fields.destination, `127.0.0.1:${destination.port}`);
    assert.equal(fields.buffer, 65536);
    assert.equal(fields.admin, "off");
    assert.match(fields.proxy, /^127\.0\.0\.1:\d+$/);
    child.kill("SIGTERM");
    await reader.cancel();
    assert.equal((await child.status).code, 0);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
    Deno.removeSync(config);
  }
});
