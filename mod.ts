/**
 * sluice: HTTP streaming on web standards for Deno, Bun and Cloudflare
 * Workers.
 *
 * The streams, HTTP and RPC layers in one import. One name differs from
 * the layers' own entry points: `cors` here is RPC's (what a page on
 * another origin needs allowed to call RPC handlers); the HTTP flows' is
 * `cors` from `@sluice/streams/http`.
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
  ReadAheadStream,
  type ReadAheadStreamOptions,
} from "./lib/streams/read_ahead_stream.ts";
export { MapStream, type MapStreamOptions } from "./lib/streams/map.ts";
export { reduce, type ReduceOptions } from "./lib/streams/reduce.ts";
export { ScanStream, type ScanStreamOptions } from "./lib/streams/scan.ts";
export {
  DuplexStream,
  type DuplexStreamOptions,
  type ReadLineOptions,
} from "./lib/streams/duplex_stream.ts";
export type { FetchHandler } from "./lib/http/fetch_handler.ts";
export {
  fetchDuplex,
  type FetchDuplexOptions,
} from "./lib/http/fetch_duplex.ts";
export { HttpError } from "./lib/http/http_error.ts";
export {
  formatDigestHeader,
  parseDigestHeader,
} from "./lib/http/digest_header.ts";
export { safeFileName } from "./lib/http/safe_file_name.ts";
export {
  type DigestAlgorithm,
  type Hasher,
  type HasherFactory,
  receiveBody,
  type ReceiveBodyOptions,
  type ReceivedBody,
} from "./lib/http/receive_body.ts";
export {
  createUploadHandler,
  type MultipartUploadOptions,
  type PartSink,
  type ReceivedField,
  type ReceivedFile,
  type ReceivedForm,
  type UploadContext,
  type UploadHandlerOptions,
} from "./lib/http/upload_handler.ts";
export {
  upload,
  type UploadBody,
  type UploadOptions,
} from "./lib/http/upload.ts";
export {
  type CompletedResumableUpload,
  createResumableUploadHandler,
  type ResumableUploadHandlerOptions,
} from "./lib/http/resumable/resumable_upload_handler.ts";
export type {
  ResumableAppendOptions,
  ResumableStore,
  ResumableUpload,
} from "./lib/http/resumable/resumable_store.ts";
export {
  resumableUpload,
  type ResumableUploadBody,
  type ResumableUploadOptions,
  type ResumableUploadResult,
} from "./lib/http/resumable_upload.ts";
export { forwardResponse } from "./lib/http/forward_response.ts";
export type { Compression } from "./lib/http/compression.ts";
export { createEchoHandler, echo, type EchoOptions } from "./lib/http/echo.ts";
export {
  createDuplexHandler,
  type DuplexHandler,
  duplexResponse,
  type DuplexResponseOptions,
} from "./lib/http/duplex_response.ts";
export {
  type DuplexExchange,
  openDuplex,
  type OpenDuplexOptions,
} from "./lib/http/open_duplex.ts";
export {
  WEBSOCKET_CLOSE_ABORTED,
  WEBSOCKET_CLOSE_TOO_BIG,
  websocketDuplex,
  type WebSocketDuplexOptions,
  type WebSocketLike,
} from "./lib/http/websocket_duplex.ts";
export {
  SseEncoderStream,
  type SseEncoderStreamOptions,
  type SseEvent,
} from "./lib/http/sse_encoder_stream.ts";
export {
  SseDecoderStream,
  type SseDecoderStreamOptions,
  type SseMessage,
} from "./lib/http/sse_decoder_stream.ts";
export {
  createSseHandler,
  type SseHandler,
  type SseRequestInfo,
  sseResponse,
  type SseResponseOptions,
  type SseSource,
} from "./lib/http/sse_response.ts";
export {
  fetchEventStream,
  type FetchEventStreamOptions,
} from "./lib/http/fetch_event_stream.ts";
export {
  MultipartDecoder,
  type MultipartDecoderOptions,
  type MultipartEvent,
  type MultipartLimits,
  type MultipartPartInfo,
} from "./lib/http/multipart_decoder.ts";
export {
  type MultipartPart,
  MultipartStream,
  type MultipartStreamOptions,
} from "./lib/http/multipart_stream.ts";
export {
  parseMultipart,
  type ParseMultipartOptions,
} from "./lib/http/parse_multipart.ts";
export {
  type EncodedMultipart,
  encodeMultipart,
  type EncodeMultipartOptions,
  type MultipartField,
  type MultipartValue,
} from "./lib/http/encode_multipart.ts";
// The RPC layer's whole public API (also at "@sluice/streams/rpc").
export * from "./lib/rpc/mod.ts";
