/**
 * sluice: HTTP streaming on web standards for Deno, Bun and Cloudflare
 * Workers.
 *
 * @module
 */

export { MapStream, type MapStreamOptions } from "./lib/streams/map.ts";
export { reduce, type ReduceOptions } from "./lib/streams/reduce.ts";
export { ScanStream, type ScanStreamOptions } from "./lib/streams/scan.ts";
// The RPC layer's whole public API (also at "@sluice/streams/rpc").
export * from "./lib/rpc/mod.ts";
