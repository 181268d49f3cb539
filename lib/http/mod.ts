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
  DEFAULT_MAX_BODY_BYTES,
  type Hasher,
  receiveBody,
  type ReceiveBodyOptions,
  type ReceivedBody,
} from "./receive_body.ts";
export { createReceiver, type ReceiverOptions } from "./receiver.ts";
export { upload, type UploadBody, type UploadOptions } from "./upload.ts";
export { forwardResponse } from "./forward_response.ts";
