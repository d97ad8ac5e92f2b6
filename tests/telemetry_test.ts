/**
 * OpenTelemetry: a `main.ts server` run with `OTEL_DENO=true` exports a span
 * per session, with its lifecycle as events, to an OTLP/HTTP receiver (here
 * a local one that takes JSON), and never a secret; without it, nothing.
 */

import assert from "node:assert/strict";
import {
  assertNoSecrets,
  decoder,
  echoDestination,
  issuedSecrets,
  RUN_PERMISSIONS,
  TestClient,
  WAIT_MS,
  withDeadline,
} from "./_helpers.ts";
import { Wakeup } from "../lib/_io.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

interface OtlpSpan {
  name: string;
  attributes?: { key: string; value: { stringValue?: string } }[];
  events?: { name: string }[];
}

/** A local OTLP/HTTP receiver that keeps every JSON body it is sent. */
class OtlpReceiver implements AsyncDisposable {
  readonly bodies: string[] = [];
  readonly arrived = new Wakeup();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (request) => {
        this.bodies.push(await request.text());
        this.arrived.wake();
        return Response.json({});
      },
    );
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** The spans received so far. */
  spans(): OtlpSpan[] {
    return this.bodies.flatMap((body) => {
      const parsed = JSON.parse(body);
      return (parsed.resourceSpans ?? []).flatMap((resource: { scopeSpans?: unknown[] }) =>
        (resource.scopeSpans ?? []).flatMap((scope) =>
          (scope as { spans?: OtlpSpan[] }).spans ?? []
        )
      );
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#server.shutdown();
  }
}

/** Starts `main.ts server` with `env`, and resolves its proxy port. */
function startServerProcess(destinationPort: number, env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...RUN_PERMISSIONS,
      MAIN,
      "server",
      "--proxy=127.0.0.1:0",
      "--admin=off",
      `127.0.0.1:${destinationPort}`,
    ],
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const port = (async () => {
    let partial = "";
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      partial += text;
      const match = /server\.listening.*\bproxy[=":]+\S+?:(\d+)/.exec(partial);
      if (match) {
        lines.push(partial);
        return Number(match[1]);
      }
    }
    throw new Error(`the server did not start: ${partial}`);
  })();
  return { child, port, lines };
}

Deno.test("with OTEL_DENO=true, each session is a span with its lifecycle as events, and no secret", async () => {
  await using receiver = new OtlpReceiver();
  await using destination = echoDestination();
  const server = startServerProcess(destination.port, {
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_BSP_SCHEDULE_DELAY: "100",
    OTEL_SERVICE_NAME: "socketproxy-test",
  });
  try {
    const port = await withDeadline(server.port, WAIT_MS, "the server");
    using client = await TestClient.connect(port);
    const reply = await client.hello("NEW");
    issuedSecrets.add(reply.secret);
    client.close();
    {
      using poll = await TestClient.connect(port);
      await poll.hello(`RESUME ${reply.id} ${reply.secret} 0`);
    }
    {
      using closer = await TestClient.connect(port);
      await closer.write(`CLOSE ${reply.id} ${reply.secret}\n`);
      assert.equal(await closer.readLine(), `BYE ${reply.id}`);
    }
    const found = await withDeadline(
      (async () => {
        for (let round = 0; round < 1000; round++) {
          const span = receiver.spans().find((span) => span.name === "socketproxy.session");
          if (span) return span;
          await receiver.arrived.wait();
        }
        throw new Error("no session span");
      })(),
      WAIT_MS,
      "the session's span",
    );
    const attributes = new Map(
      (found.attributes ?? []).map(({ key, value }) => [key, value.stringValue]),
    );
    assert.equal(attributes.get("socketproxy.session.id"), reply.id);
    assert.equal(attributes.get("socketproxy.destination"), "default");
    assert.equal(attributes.get("server.address"), `127.0.0.1:${destination.port}`);
    assert.match(attributes.get("client.address") ?? "", /^127\.0\.0\.1:\d+$/);
    assert.match(attributes.get("socketproxy.session.end_reason") ?? "", /^closed by client/);
    const events = (found.events ?? []).map((event) => event.name);
    assert.deepEqual(
      events.filter((name) => name === "session.attached" || name === "session.detached"),
      ["session.attached", "session.detached", "session.attached", "session.detached"],
    );
    assertNoSecrets(receiver.bodies, "the exported telemetry");
  } finally {
    server.child.kill("SIGTERM");
    await server.child.status;
    await server.child.stderr.cancel().catch(() => {});
    await server.port.catch(() => {});
  }
});

Deno.test("without OTEL_DENO the server exports nothing", async () => {
  await using receiver = new OtlpReceiver();
  await using destination = echoDestination();
  const server = startServerProcess(destination.port, {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
  });
  try {
    const port = await withDeadline(server.port, WAIT_MS, "the server");
    using client = await TestClient.connect(port);
    const reply = await client.hello("NEW");
    issuedSecrets.add(reply.secret);
    await client.write(`ping`);
    assert.equal(decoder.decode(await client.readExactly(4)), "ping");
  } finally {
    server.child.kill("SIGTERM");
    const status = await server.child.status;
    assert.equal(status.code, 0);
    await server.child.stderr.cancel().catch(() => {});
    await server.port.catch(() => {});
  }
  assert.equal(receiver.bodies.length, 0);
});
