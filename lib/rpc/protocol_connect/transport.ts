import type { Transport, TransportOptions } from "../client/transport.ts";
import { createTransport } from "../protocol/_transport.ts";
import { decodeEndStream, endStreamFlag } from "./end_stream.ts";
import { headerUnaryEncoding } from "./headers.ts";
import { requestHeader } from "./request_header.ts";
import { readUnaryResponse, validateResponse } from "./validate_response.ts";

/** Options for {@linkcode createConnectTransport}. */
export type ConnectTransportOptions = TransportOptions;

/**
 * A transport for the Connect protocol: streaming calls use
 * `application/connect+proto` (or `+json`) with the EndStreamResponse at the
 * end of the body, unary calls `application/proto` (or `json`) with the
 * bare message as the body. Unary and server-streaming requests are sent
 * whole (with a Content-Length); client-streaming and bidi requests stream
 * over full-duplex fetch, so bidi works over HTTP/1.1.
 *
 * @param options The server URL, codec, compression and limits.
 * @returns The transport, for `createClient`.
 *
 * @example Call a Connect server
 * ```ts ignore
 * import { createClient, createConnectTransport } from "@sluice/streams/rpc";
 *
 * const client = createClient(StreamingCalcService, createConnectTransport({
 *   baseUrl: "http://127.0.0.1:9090",
 * }));
 * ```
 */
export function createConnectTransport(
  options: ConnectTransportOptions,
): Transport {
  return createTransport(
    "connect",
    options,
    (method, resolved, callOptions, headers) => {
      const unary = method.kind === "unary";
      const { codec, acceptCompression } = resolved;
      return {
        headers: requestHeader(
          headers,
          unary,
          codec,
          callOptions.timeoutMs,
          resolved.sendCompression,
          acceptCompression,
        ),
        validateResponse: (response) =>
          validateResponse(response, codec, acceptCompression),
        endFlag: endStreamFlag,
        decodeEnd: decodeEndStream,
        missingEnd: "its EndStreamResponse",
        bare: unary
          ? {
            encodingHeader: headerUnaryEncoding,
            readResponse: (response) =>
              readUnaryResponse(
                response,
                codec,
                acceptCompression,
                resolved.maxMessageBytes,
              ),
          }
          : undefined,
      };
    },
  );
}
