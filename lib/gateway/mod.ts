/**
 * The web gateway: HTTP and WebSocket in front of a socketproxy server,
 * and the browser terminal's files. A browser's request becomes a client
 * session of the proxy (through `../client/`); the proxy's output goes back
 * as JSON polls or WebSocket messages.
 *
 * @module
 */

export { gatewayHandler, type GatewayOptions, WebGateway } from "./gateway.ts";
export { GATEWAY_LIMITS, type GatewayLimits } from "./requests.ts";
export type { Asset } from "./static.ts";
export { WEB_ASSETS } from "./assets.ts";
