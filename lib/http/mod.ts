/**
 * Layer 2: HTTP flows as fetch handlers and clients — streaming upload,
 * receive and forward, echo and full-duplex exchanges.
 *
 * @module
 */

export type { FetchHandler } from "./fetch_handler.ts";
export { fetchDuplex, type FetchDuplexOptions } from "./fetch_duplex.ts";
export { HttpError } from "./http_error.ts";
export { formatDigestHeader, parseDigestHeader } from "./digest_header.ts";
export { safeFileName } from "./safe_file_name.ts";
export {
  type DigestAlgorithm,
  type Hasher,
  type HasherFactory,
  receiveBody,
  type ReceiveBodyOptions,
  type ReceivedBody,
} from "./receive_body.ts";
export {
  createUploadHandler,
  type MultipartUploadOptions,
  type PartSink,
  type ReceivedField,
  type ReceivedFile,
  type ReceivedForm,
  type UploadContext,
  type UploadHandlerOptions,
} from "./upload_handler.ts";
export { upload, type UploadBody, type UploadOptions } from "./upload.ts";
export { forwardResponse } from "./forward_response.ts";
export type { Compression } from "./compression.ts";
export { createEchoHandler, echo, type EchoOptions } from "./echo.ts";
export {
  createDuplexHandler,
  type DuplexHandler,
  duplexResponse,
  type DuplexResponseOptions,
} from "./duplex_response.ts";
export {
  type DuplexExchange,
  openDuplex,
  type OpenDuplexOptions,
} from "./open_duplex.ts";
export {
  WEBSOCKET_CLOSE_ABORTED,
  WEBSOCKET_CLOSE_TOO_BIG,
  websocketDuplex,
  type WebSocketDuplexOptions,
  type WebSocketLike,
} from "./websocket_duplex.ts";
export {
  SseEncoderStream,
  type SseEncoderStreamOptions,
  type SseEvent,
} from "./sse_encoder_stream.ts";
export {
  SseDecoderStream,
  type SseDecoderStreamOptions,
  type SseMessage,
} from "./sse_decoder_stream.ts";
export {
  createSseHandler,
  type SseHandler,
  type SseRequestInfo,
  sseResponse,
  type SseResponseOptions,
  type SseSource,
} from "./sse_response.ts";
export {
  fetchEventStream,
  type FetchEventStreamOptions,
} from "./fetch_event_stream.ts";
export {
  MultipartDecoder,
  type MultipartDecoderOptions,
  type MultipartEvent,
  type MultipartLimits,
  type MultipartPartInfo,
} from "./multipart_decoder.ts";
export {
  type MultipartPart,
  MultipartStream,
  type MultipartStreamOptions,
} from "./multipart_stream.ts";
export {
  parseMultipart,
  type ParseMultipartOptions,
} from "./parse_multipart.ts";
export {
  type EncodedMultipart,
  encodeMultipart,
  type EncodeMultipartOptions,
  type MultipartField,
  type MultipartValue,
} from "./encode_multipart.ts";
export {
  type CompletedResumableUpload,
  createResumableUploadHandler,
  type ResumableUploadHandlerOptions,
} from "./resumable/resumable_upload_handler.ts";
export type {
  ResumableAppendOptions,
  ResumableStore,
  ResumableUpload,
} from "./resumable/resumable_store.ts";
export {
  resumableUpload,
  type ResumableUploadBody,
  type ResumableUploadOptions,
  type ResumableUploadResult,
} from "./resumable_upload.ts";
export { cors } from "./cors.ts";
