/**
 * The container image, built and run (`deno task e2e`, not `deno task test`):
 * podman builds the Containerfile (`--format docker`, which keeps its
 * HEALTHCHECK) on a Deno image made here, since image registries are out of
 * reach: a root file system holding the running `deno` binary and the
 * libraries it links, imported with podman. `server` and `web` then run in
 * containers, and the host reaches both through the published ports on
 * loopback: a session through the proxy port, a session through the gateway,
 * `status` from a container beside them, and the image's health check.
 * Where podman is missing or cannot run a container, the test is skipped
 * with the reason.
 */

import assert from "node:assert/strict";
import { decoder, TestClient, WAIT_MS, withDeadline } from "../_helpers.ts";
import { ROOT } from "../_packaging.ts";

/** A name of this run's own, so that parallel runs and leftovers never collide. */
const RUN_ID = `socketproxy-e2e-${crypto.randomUUID().slice(0, 8)}`;
const BASE_IMAGE = `localhost/${RUN_ID}-deno:${Deno.version.deno}`;
const IMAGE = `localhost/${RUN_ID}:latest`;

/** Options for sandboxes that refuse podman's default rlimits, or whose cgroups crun refuses. */
const ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"];
const CANDIDATES: { global: string[]; run: string[] }[] = [
  { global: [], run: [] },
  { global: [], run: ULIMITS },
  { global: ["--runtime", "runc"], run: ULIMITS },
];

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, bounded by `timeoutMs`; a missing program is code 127. */
async function run(program: string, args: string[], timeoutMs = 60_000): Promise<Output> {
  try {
    const output = await new Deno.Command(program, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
      signal: AbortSignal.timeout(timeoutMs),
    }).output();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { code: 127, stdout: "", stderr: "" };
    throw error;
  }
}

/** The last line of podman's complaint that says something (it prints systemd noise too). */
function lastError(output: Output): string {
  const lines = output.stderr.split("\n").map((line) => line.trim()).filter((line) => line);
  return lines.findLast((line) => /error/i.test(line)) ?? lines.at(-1) ?? `exit ${output.code}`;
}

/** Lays out a root file system with this Deno and what it links, and imports it as an image. */
async function makeBaseImage(podman: string[]): Promise<Output> {
  const dir = await Deno.makeTempDir({ prefix: "socketproxy-e2e-rootfs-" });
  try {
    const rootfs = `${dir}/rootfs`;
    const deno = await Deno.realPath(Deno.execPath());
    const ldd = await run("ldd", [deno]);
    const files = [deno, ...ldd.stdout.matchAll(/(\/\S+) \(0x/g).map((match) => match[1] ?? "")];
    for (const file of files) {
      const target = file === deno ? `${rootfs}/usr/bin/deno` : `${rootfs}${file}`;
      await Deno.mkdir(target.replace(/\/[^/]*$/, ""), { recursive: true });
      await Deno.copyFile(await Deno.realPath(file), target);
    }
    await Deno.chmod(`${rootfs}/usr/bin/deno`, 0o755);
    // The official image's user (uid 1993) and its DENO_DIR, writable to that user.
    await Deno.mkdir(`${rootfs}/etc/ssl/certs`, { recursive: true });
    await Deno.writeTextFile(
      `${rootfs}/etc/passwd`,
      "root:x:0:0:root:/root:/bin/sh\ndeno:x:1993:1993::/home/deno:/bin/sh\n",
    );
    await Deno.writeTextFile(`${rootfs}/etc/group`, "root:x:0:\ndeno:x:1993:\n");
    for (const writable of ["deno-dir", "tmp"]) {
      await Deno.mkdir(`${rootfs}/${writable}`);
      await Deno.chmod(`${rootfs}/${writable}`, 0o1777);
    }
    const changes = ["--change", "ENV DENO_DIR=/deno-dir/", "--change", 'ENTRYPOINT ["deno"]'];
    // This machine may reach the npm registry only through a proxy whose CA it trusts:
    // the image trusts what the host trusts (the official image needs no such thing).
    const bundle = Deno.env.get("SSL_CERT_FILE") ?? "/etc/ssl/certs/ca-certificates.crt";
    if (await Deno.stat(bundle).then(() => true, () => false)) {
      await Deno.copyFile(bundle, `${rootfs}/etc/ssl/certs/ca-certificates.crt`);
      changes.push("--change", "ENV DENO_CERT=/etc/ssl/certs/ca-certificates.crt");
    }
    const tar = await run("tar", ["-C", rootfs, "-cf", `${dir}/rootfs.tar`, "."]);
    if (tar.code !== 0) return tar;
    return await run("podman", [...podman, "import", ...changes, `${dir}/rootfs.tar`, BASE_IMAGE]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Builds the image and returns the podman options that run it here, or why it cannot. */
async function prepare(): Promise<
  { skip: string } | { error: string } | { global: string[]; run: string[] }
> {
  const version = await run("podman", ["--version"]);
  if (version.code === 127) {
    return { skip: "podman is not installed (Debian: apt-get install podman)" };
  }
  const base = await makeBaseImage([]);
  if (base.code !== 0) return { skip: `podman cannot import an image: ${lastError(base)}` };
  let refusal = "";
  let options: { global: string[]; run: string[] } | undefined;
  for (const candidate of CANDIDATES) {
    const probe = await run("podman", [
      ...candidate.global,
      "run",
      "--rm",
      ...candidate.run,
      BASE_IMAGE,
      "--version",
    ]);
    if (probe.code === 0 && probe.stdout.startsWith("deno ")) {
      options = candidate;
      break;
    }
    refusal ||= lastError(probe);
  }
  if (!options) return { skip: `podman cannot run a container on this machine: ${refusal}` };
  const build = await run("podman", [
    ...options.global,
    "build",
    "--format",
    "docker",
    "--pull=never",
    ...options.run,
    "--build-arg",
    `DENO_IMAGE=${BASE_IMAGE}`,
    "-t",
    IMAGE,
    "-f",
    `${ROOT}Containerfile`,
    ROOT,
  ], 300_000);
  if (build.code === 0) return options;
  const output = build.stdout + build.stderr;
  if (
    /error sending request|dns error|failed to lookup|Connection refused|timed out/i.test(output)
  ) {
    return {
      skip: "the image's build cannot fetch its npm dependencies from inside podman: " +
        lastError(build),
    };
  }
  return { error: `podman build failed:\n${output}` };
}

/** Removes this run's containers and images; quietly, since some may not exist. */
async function cleanUp(podman: string[], containers: string[]): Promise<void> {
  for (const container of containers) await run("podman", [...podman, "rm", "-f", container]);
  await run("podman", [...podman, "rmi", "-f", IMAGE, BASE_IMAGE]);
}

/** A container run in the foreground (`podman run --rm`), its stderr read line by line. */
class Container implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly log: string[] = [];
  #lines: AsyncIterator<string>;
  #pending = "";

  constructor(readonly name: string, readonly podman: string[], args: string[]) {
    this.child = new Deno.Command("podman", {
      args: [...podman, "run", "--rm", "--name", name, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#lines = this.child.stderr.pipeThrough(new TextDecoderStream())[Symbol.asyncIterator]();
    this.child.stdout.cancel();
  }

  /** Resolves with the first log line that includes `text`; fails after WAIT_MS or at exit. */
  async waitFor(text: string): Promise<string> {
    const found = this.log.find((line) => line.includes(text));
    if (found) return found;
    return await withDeadline(
      (async () => {
        while (true) {
          const next = await this.#lines.next();
          if (next.done) throw new Error(`${this.name} exited:\n${this.log.join("\n")}`);
          const parts = (this.#pending + next.value).split("\n");
          this.#pending = parts.pop() ?? "";
          this.log.push(...parts);
          const line = parts.find((part) => part.includes(text));
          if (line) return line;
        }
      })(),
      WAIT_MS * 3,
      `"${text}" from ${this.name}`,
    );
  }

  /** Stops the container (SIGTERM) and returns its exit status. */
  async stop(): Promise<number> {
    await run("podman", [...this.podman, "stop", "-t", "10", this.name]);
    const { code } = await withDeadline(this.child.status, WAIT_MS * 3, `${this.name} to stop`);
    while (!(await this.#lines.next()).done);
    return code;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await run("podman", [...this.podman, "rm", "-f", this.name]);
    await this.child.status;
    await this.child.stderr.cancel().catch(() => {});
  }
}

/** The host address podman published a container port on, such as `127.0.0.1:41234`. */
async function publishedAt(podman: string[], container: string, port: number): Promise<string> {
  const output = await run("podman", [...podman, "port", container, `${port}/tcp`]);
  const address = /127\.0\.0\.1:\d+/.exec(output.stdout)?.[0];
  assert.ok(address, `port ${port} of ${container}: ${output.stdout}${output.stderr}`);
  return address;
}

/** One HTTP request for the admin API, sent as a session's input: a line-oriented destination. */
const HEALTH_REQUEST = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

const prepared = await prepare();
const skipReason = "skip" in prepared ? prepared.skip : null;
if (skipReason) console.error(`container_test: skipped: ${skipReason}`);

Deno.test({
  name: skipReason
    ? `the container image serves server and web, reached from the host (skipped: ${skipReason})`
    : "the container image serves server and web, reached from the host",
  ignore: skipReason !== null,
  sanitizeResources: false, // the containers' log streams end with the podman processes
  async fn(t) {
    if ("error" in prepared) throw new Error(prepared.error);
    if ("skip" in prepared) return;
    const podman = prepared.global;
    const server = `${RUN_ID}-server`;
    const web = `${RUN_ID}-web`;
    try {
      await t.step("the image keeps its user, ports, health check and entry point", async () => {
        const output = await run("podman", [...podman, "image", "inspect", IMAGE]);
        assert.equal(output.code, 0, output.stderr);
        const [image] = JSON.parse(output.stdout);
        assert.equal(image.Config.User, "deno");
        assert.deepEqual(Object.keys(image.Config.ExposedPorts).sort(), [
          "8080/tcp",
          "9009/tcp",
          "9010/tcp",
        ]);
        const containerfile = await Deno.readTextFile(`${ROOT}Containerfile`);
        const healthCmd = /^\s+CMD (\[.*\])$/m.exec(containerfile)?.[1] ?? "[]";
        assert.deepEqual(image.Healthcheck?.Test, ["CMD", ...JSON.parse(healthCmd)]);
        assert.equal(image.Config.Entrypoint.at(-1), "/app/main.ts");
      });

      // The server's destination is its own admin API (an HTTP server, so a session's input
      // gets an answer), on the container's loopback; the gateway shares its network.
      await using serverContainer = new Container(server, podman, [
        ...prepared.run,
        "-p",
        "127.0.0.1::9009",
        "-p",
        "127.0.0.1::8080",
        IMAGE,
        "server",
        "--proxy=0.0.0.0:9009",
        "127.0.0.1:9010",
      ]);
      await serverContainer.waitFor("server.listening");

      await t.step("a session through the proxy port, from the host", async () => {
        const [, port] = (await publishedAt(podman, server, 9009)).split(":");
        using client = await TestClient.connect(Number(port));
        await client.hello("NEW");
        await client.write(HEALTH_REQUEST);
        assert.match(await client.readLine(), /^HTTP\/1\.1 200 /);
      });

      await using webContainer = new Container(web, podman, [
        ...prepared.run,
        `--network=container:${server}`,
        IMAGE,
        "web",
        "--listen=0.0.0.0:8080",
        "--proxy=127.0.0.1:9009",
      ]);
      await webContainer.waitFor("web.listening");

      await t.step("the gateway's /health and a session through it, from the host", async () => {
        const gateway = `http://${await publishedAt(podman, server, 8080)}`;
        const health = await fetch(`${gateway}/health`);
        assert.equal(health.status, 200);
        assert.deepEqual(await health.json(), { status: "ok" });
        const created = await fetch(`${gateway}/api/sessions`, { method: "POST" });
        assert.equal(created.status, 201);
        const { id, secret } = await created.json();
        let output = "";
        let ack = 0;
        let input: string | undefined = btoa(HEALTH_REQUEST);
        for (let polls = 0; polls < 20 && !output.includes("\r\n\r\n"); polls++) {
          const response: Response = await fetch(`${gateway}/api/sessions/${id}/poll`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ secret, ack, wait: 5000, ...(input ? { input } : {}) }),
          });
          assert.equal(response.status, 200);
          const poll = await response.json();
          input = undefined;
          ack = poll.ack;
          output += decoder.decode(Uint8Array.from(atob(poll.data), (c) => c.charCodeAt(0)));
          if (poll.state === "closed") break;
        }
        assert.match(output, /^HTTP\/1\.1 200 /);
      });

      await t.step("status, from a container beside the server", async () => {
        const status = await run("podman", [
          ...podman,
          "run",
          "--rm",
          ...prepared.run,
          `--network=container:${server}`,
          IMAGE,
          "status",
        ]);
        assert.equal(status.code, 0, status.stderr);
        assert.match(status.stdout, /open of 10000/);
      });

      await t.step("the image's health check passes in both containers", async () => {
        for (const container of [server, web]) {
          const check = await run("podman", [...podman, "healthcheck", "run", container]);
          assert.equal(check.code, 0, `${container}: ${check.stdout}${check.stderr}`);
        }
      });

      await t.step("both stop cleanly on podman stop (SIGTERM)", async () => {
        assert.equal(await webContainer.stop(), 0, webContainer.log.join("\n"));
        assert.equal(await serverContainer.stop(), 0, serverContainer.log.join("\n"));
      });
    } finally {
      await cleanUp(podman, [web, server]);
    }
  },
});

if (skipReason) {
  // Nothing ran; the base image may still have been imported.
  await run("podman", ["rmi", "-f", BASE_IMAGE]);
}
