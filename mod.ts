/**
 * sluice: HTTP streaming on web standards for Deno, Bun and Cloudflare
 * Workers.
 *
 * @module
 */

export {
  ByteLimitStream,
  type ByteLimitStreamOptions,
} from "./lib/streams/byte_limit_stream.ts";
export {
  type ProgressCallback,
  ProgressStream,
  type ProgressStreamOptions,
} from "./lib/streams/progress_stream.ts";
export {
  DEFAULT_READ_AHEAD_BYTES,
  ReadAheadStream,
  type ReadAheadStreamOptions,
} from "./lib/streams/read_ahead_stream.ts";
export {
  fetchDuplex,
  type FetchDuplexOptions,
} from "./lib/http/fetch_duplex.ts";
export { HttpError } from "./lib/http/http_error.ts";
export {
  formatDigestHeader,
  parseDigestHeader,
} from "./lib/http/digest_header.ts";
export {
  MAX_FILE_NAME_LENGTH,
  safeFileName,
} from "./lib/http/safe_file_name.ts";
export {
  DEFAULT_MAX_BODY_BYTES,
  type Hasher,
  receiveBody,
  type ReceiveBodyOptions,
  type ReceivedBody,
} from "./lib/http/receive_body.ts";
export { createReceiver, type ReceiverOptions } from "./lib/http/receiver.ts";
export {
  upload,
  type UploadBody,
  type UploadOptions,
} from "./lib/http/upload.ts";
export { forwardResponse } from "./lib/http/forward_response.ts";
export { MapStream, type MapStreamOptions } from "./lib/streams/map.ts";
export { reduce, type ReduceOptions } from "./lib/streams/reduce.ts";
export { ScanStream, type ScanStreamOptions } from "./lib/streams/scan.ts";
// The RPC layer's whole public API (also at "@sluice/streams/rpc").
export * from "./lib/rpc/mod.ts";
