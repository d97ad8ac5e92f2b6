/**
 * The demo: a small telnet-speaking destination service built into
 * socketproxy, so that `socketproxy demo` can run it, the proxy in front of
 * it and the web gateway in front of that in one process, with nothing to
 * install and no network:
 *
 *     browser <--> gateway <--> proxy <--> demo service (service.ts)
 *
 * It stands where a telnet server or a MUD stands in real use.
 *
 * @module
 */

export { DemoService, type DemoServiceOptions } from "./service.ts";
