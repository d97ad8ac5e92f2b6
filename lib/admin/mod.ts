/**
 * The admin part: the management surface of a running server. `api.ts` is
 * the HTTP admin API (status, close, health, metrics) over the proxy's
 * status report; `metrics.ts` formats that report for Prometheus; and
 * `service.ts` runs a proxy server and its admin port together, as
 * `socketproxy server` does.
 *
 * @module
 */

export { type AdminBackend, adminHandler, type AdminOptions, AdminServer } from "./api.ts";
export { formatMetrics, METRICS_CONTENT_TYPE } from "./metrics.ts";
export { Service, type ServiceOptions } from "./service.ts";
