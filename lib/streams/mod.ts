/**
 * Layer 1: generic stream building blocks on WHATWG streams — byte limits,
 * progress, read-ahead, operators and the duplex stream.
 *
 * @module
 */

export { MapStream, type MapStreamOptions } from "./map.ts";
export { reduce, type ReduceOptions } from "./reduce.ts";
export { ScanStream, type ScanStreamOptions } from "./scan.ts";
