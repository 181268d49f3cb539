/**
 * Layer 2: HTTP flows as fetch handlers and clients — streaming upload,
 * receive and forward.
 *
 * @module
 */

export { fetchDuplex, type FetchDuplexOptions } from "./fetch_duplex.ts";
export { HttpError } from "./http_error.ts";
export { formatDigestHeader, parseDigestHeader } from "./digest_header.ts";
export { MAX_FILE_NAME_LENGTH, safeFileName } from "./safe_file_name.ts";
export {
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_BODY_BYTES,
  type Hasher,
  receiveBody,
  type ReceiveBodyOptions,
  type ReceivedBody,
} from "./receive_body.ts";
export { createReceiver, type ReceiverOptions } from "./receiver.ts";
export { upload, type UploadBody, type UploadOptions } from "./upload.ts";
export { forwardResponse } from "./forward_response.ts";
export {
  type Compression,
  DEFAULT_MAX_DECOMPRESSED_BYTES,
} from "./compression.ts";
export {
  DEFAULT_ECHO_READ_AHEAD_BYTES,
  echo,
  type EchoOptions,
} from "./echo.ts";
export {
  DEFAULT_DUPLEX_READ_AHEAD_BYTES,
  DEFAULT_DUPLEX_WRITE_HIGH_WATER_MARK,
  type DuplexHandler,
  duplexResponse,
  type DuplexResponseOptions,
} from "./duplex_response.ts";
export {
  DEFAULT_OPEN_DUPLEX_WRITE_HIGH_WATER_MARK,
  type DuplexExchange,
  openDuplex,
  type OpenDuplexOptions,
} from "./open_duplex.ts";
export {
  DEFAULT_WEBSOCKET_MAX_BUFFERED_BYTES,
  DEFAULT_WEBSOCKET_SEND_HIGH_WATER_MARK,
  DEFAULT_WEBSOCKET_SEND_LOW_WATER_MARK,
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
