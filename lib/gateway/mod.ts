/**
 * The web gateway: HTTP and WebSocket in front of a socketproxy server,
 * and the browser terminal's files. A browser's request becomes a client
 * session of the proxy (through `../client/`); the proxy's output goes back
 * as JSON polls or WebSocket messages. Its own figures (metrics.ts) are
 * served for Prometheus on a port apart (metrics_server.ts).
 *
 * @module
 */

export { gatewayHandler, type GatewayOptions, WebGateway } from "./gateway.ts";
export { GATEWAY_LIMITS, type GatewayLimits } from "./requests.ts";
export { GatewayMetrics, ROUTE_LABELS, type RouteLabel, routeLabel } from "./metrics.ts";
export { metricsHandler, MetricsServer, type MetricsServerOptions } from "./metrics_server.ts";
export type { Asset } from "./static.ts";
export { WEB_ASSETS } from "./assets.ts";
export {
  type LineEnding,
  type NamedTerminalSettings,
  parseTerminalSettings,
  RAW_TERMINAL,
  TELNET_TERMINAL,
  type TerminalMode,
  type TerminalSettings,
  terminalSettingsOf,
} from "./terminal_settings.ts";
