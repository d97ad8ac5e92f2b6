/**
 * Sessions as OpenTelemetry spans, for when Deno exports telemetry
 * (`OTEL_DENO=true`; see docs/server.md): one span per session, from its
 * creation to its end, with an event for each attach, detach, takeover
 * and the destination closing. Deno's own instrumentation covers HTTP;
 * the TCP sessions are this file's. With telemetry off, Deno's tracer
 * refuses spans, and every call here does nothing.
 *
 * @module
 */

import { VERSION } from "./version.ts";

/** Attribute values, as OpenTelemetry takes them. */
export type TraceAttributes = Record<string, string | number | boolean>;

/** One session's span. */
export interface SessionTrace {
  /** Records that something happened to the session. */
  event(name: string, attributes?: TraceAttributes): void;
  /** Ends the span, saying why the session ended. */
  end(reason: string): void;
}

/** What this file uses of an OpenTelemetry span. */
interface Span {
  addEvent(name: string, attributes?: TraceAttributes): void;
  setAttribute(key: string, value: string | number | boolean): void;
  end(): void;
}

/** What this file uses of an OpenTelemetry tracer. */
interface Tracer {
  startSpan(name: string, options?: { attributes?: TraceAttributes; kind?: number }): Span;
}

/** OpenTelemetry's `SpanKind.SERVER`. */
const SPAN_KIND_SERVER = 1;

const OFF: SessionTrace = { event() {}, end() {} };

/** The tracer, once known; `null` while telemetry is off. */
let tracer: Tracer | null | undefined;

/** Deno's tracer, or `null` when it refuses spans (telemetry is off). */
function findTracer(): Tracer | null {
  try {
    const found: Tracer = Deno.telemetry.tracerProvider.getTracer("socketproxy", VERSION);
    // Never ended, so never exported: it only tells whether spans can be made.
    found.startSpan("socketproxy.probe");
    return found;
  } catch {
    return null;
  }
}

/**
 * Starts a session's span (`socketproxy.session`).
 *
 * @param attributes Its attributes: the session id, the destination, the client's address.
 * @returns The span, or one that does nothing when telemetry is off.
 *
 * @example
 * ```ts
 * import { startSessionTrace } from "./telemetry.ts";
 *
 * const trace = startSessionTrace({ "socketproxy.session.id": "abc" });
 * trace.event("session.attached", { mode: "acknowledged" });
 * trace.end("closed by client");
 * ```
 */
export function startSessionTrace(attributes: TraceAttributes): SessionTrace {
  tracer ??= findTracer();
  if (tracer === null) return OFF;
  const span = tracer.startSpan("socketproxy.session", { attributes, kind: SPAN_KIND_SERVER });
  return {
    event: (name, eventAttributes) => span.addEvent(name, eventAttributes),
    end: (reason) => {
      span.setAttribute("socketproxy.session.end_reason", reason);
      span.end();
    },
  };
}
