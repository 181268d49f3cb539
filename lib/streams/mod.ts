/**
 * Layer 1: generic stream building blocks on WHATWG streams — byte limits,
 * progress, read-ahead, operators and the duplex stream.
 *
 * @module
 */

export {
  ByteLimitStream,
  type ByteLimitStreamOptions,
} from "./byte_limit_stream.ts";
export {
  type ProgressCallback,
  ProgressStream,
  type ProgressStreamOptions,
} from "./progress_stream.ts";
export {
  ReadAheadStream,
  type ReadAheadStreamOptions,
} from "./read_ahead_stream.ts";
export { MapStream, type MapStreamOptions } from "./map.ts";
export { reduce, type ReduceOptions } from "./reduce.ts";
export { ScanStream, type ScanStreamOptions } from "./scan.ts";
export {
  DuplexStream,
  type DuplexStreamOptions,
  type ReadLineOptions,
} from "./duplex_stream.ts";
