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
  DEFAULT_IDLE_TIMEOUT_MS,
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
export {
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_MAX_READ_BYTES,
  DuplexStream,
  type DuplexStreamOptions,
  type ReadLineOptions,
} from "./lib/streams/duplex_stream.ts";
export {
  type Compression,
  DEFAULT_MAX_DECOMPRESSED_BYTES,
} from "./lib/http/compression.ts";
export {
  DEFAULT_ECHO_READ_AHEAD_BYTES,
  echo,
  type EchoOptions,
} from "./lib/http/echo.ts";
export {
  DEFAULT_DUPLEX_READ_AHEAD_BYTES,
  DEFAULT_DUPLEX_WRITE_HIGH_WATER_MARK,
  type DuplexHandler,
  duplexResponse,
  type DuplexResponseOptions,
} from "./lib/http/duplex_response.ts";
export {
  DEFAULT_OPEN_DUPLEX_WRITE_HIGH_WATER_MARK,
  type DuplexExchange,
  openDuplex,
  type OpenDuplexOptions,
} from "./lib/http/open_duplex.ts";
export {
  DEFAULT_WEBSOCKET_MAX_BUFFERED_BYTES,
  DEFAULT_WEBSOCKET_SEND_HIGH_WATER_MARK,
  DEFAULT_WEBSOCKET_SEND_LOW_WATER_MARK,
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
