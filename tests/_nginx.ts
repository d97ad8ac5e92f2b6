/**
 * Debian's nginx running nginx.conf.example in front of one gateway or
 * several, for the tests that go through it (tests/nginx_test.ts,
 * tests/browser_test.ts, the cluster tests).
 */

import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;
/** The nginx binary, when installed. */
export const NGINX = ["/usr/sbin/nginx", "/usr/bin/nginx"].find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});

/** A free loopback port: nginx cannot be told to pick one. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** Options of {@linkcode startNginx}. */
export interface NginxOptions {
  /** nginx's `worker_connections`. @default {256} */
  workerConnections?: number;
  /**
   * Stop with SIGTERM (at once) rather than SIGQUIT (graceful, which may
   * wait out a proxy timeout on a connection a killed gateway left behind).
   * @default {false}
   */
  fastStop?: boolean;
}

/** nginx with nginx.conf.example, its upstream the gateway (or each gateway) on `gatewayPorts`. */
export async function startNginx(
  gatewayPorts: number | readonly number[],
  options: NginxOptions = {},
): Promise<AsyncDisposable & { base: string; log: () => string }> {
  const dir = await Deno.makeTempDir({ prefix: "socketproxy-nginx-" });
  await Deno.chmod(dir, 0o777); // workers may run as nobody
  const port = freePort();
  const upstream = (typeof gatewayPorts === "number" ? [gatewayPorts] : gatewayPorts)
    .map((gateway) => `server 127.0.0.1:${gateway};`).join("\n    ");
  const site = (await Deno.readTextFile(`${ROOT}nginx.conf.example`))
    .replace("listen 80;", `listen 127.0.0.1:${port};`)
    .replace("server 127.0.0.1:8080;", upstream);
  assert.ok(site.includes(`127.0.0.1:${port}`) && site.includes(upstream));
  await Deno.writeTextFile(`${dir}/site.conf`, site);
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `worker_processes 1;
error_log ${dir}/error.log info;
pid ${dir}/nginx.pid;
events { worker_connections ${options.workerConnections ?? 256}; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/site.conf;
}
`,
  );
  const child = new Deno.Command(NGINX ?? "nginx", {
    args: ["-p", dir, "-c", `${dir}/nginx.conf`, "-g", "daemon off;"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const log = () => {
    try {
      return Deno.readTextFileSync(`${dir}/error.log`);
    } catch {
      return "";
    }
  };
  // Ready once it accepts connections: a bounded wait, there is no event to wait on.
  for (let attempt = 0;; attempt++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      if (attempt > 200) {
        child.kill("SIGKILL");
        await child.status;
        throw new Error(`nginx did not start:\n${log()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  return {
    base: `http://127.0.0.1:${port}/terminal/`,
    log,
    async [Symbol.asyncDispose]() {
      child.kill(options.fastStop ? "SIGTERM" : "SIGQUIT");
      await child.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}
