import type { Transport, TransportOptions } from "../client/transport.ts";
import { createTransport } from "../protocol/_transport.ts";
import { checkMax } from "../../_internal/limits.ts";
import { decodeEndStream, endStreamFlag } from "./end_stream.ts";
import { getRequestUrl } from "./get_request.ts";
import {
  headerContentType,
  headerProtocolVersion,
  headerUnaryEncoding,
} from "./headers.ts";
import { requestHeader } from "./request_header.ts";
import { readUnaryResponse, validateResponse } from "./validate_response.ts";

/** Options for {@linkcode createConnectTransport}. */
export interface ConnectTransportOptions extends TransportOptions {
  /**
   * Calls unary methods declared `"no-side-effects"` (in a `.proto` file,
   * `option idempotency_level = NO_SIDE_EFFECTS`) with HTTP GET, the
   * message in the query, as the Connect protocol allows: such responses
   * can be cached by browsers, proxies and CDNs. Other calls, and calls
   * whose URL would be longer than `maxGetUrlBytes`, use POST.
   *
   * @default {false}
   */
  useHttpGet?: boolean;
  /**
   * The longest URL of a GET call (`useHttpGet`), in bytes; a call whose
   * message makes the URL longer is sent with POST instead. The default
   * fits the request-line limits of common servers and proxies (nginx's
   * 8 KiB header buffers, Node's 16 KiB headers).
   *
   * @default {8192}
   */
  maxGetUrlBytes?: number;
}

/**
 * A transport for the Connect protocol: streaming calls use
 * `application/connect+proto` (or `+json`) with the EndStreamResponse at the
 * end of the body, unary calls `application/proto` (or `json`) with the
 * bare message as the body, or, with `useHttpGet`, an HTTP GET for methods
 * without side effects. Unary and server-streaming requests are sent
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
 *
 * @example Read with cacheable GET requests
 * ```ts
 * import {
 *   createClient,
 *   createConnectTransport,
 *   defineService,
 *   Int64Value,
 * } from "@sluice/streams/rpc";
 *
 * const Counter = defineService("example.Counter", {
 *   current: {
 *     kind: "unary",
 *     input: Int64Value,
 *     output: Int64Value,
 *     idempotency: "no-side-effects",
 *   },
 * });
 * const client = createClient(Counter, createConnectTransport({
 *   baseUrl: "http://127.0.0.1:9090",
 *   useHttpGet: true,
 * }));
 * // Sent as GET /example.Counter/current?connect=v1&encoding=proto&base64=1&message=CAc
 * const call = client.current(7n);
 * call.catch(() => {}); // no server in this example
 * ```
 */
export function createConnectTransport(
  options: ConnectTransportOptions,
): Transport {
  const { useHttpGet = false, maxGetUrlBytes: maxUrl, ...rest } = options;
  const maxGetUrlBytes = checkMax(
    "create transport",
    "maxGetUrlBytes",
    maxUrl ?? 8192,
  );
  return createTransport(
    "connect",
    rest,
    (method, resolved, callOptions, headers) => {
      const unary = method.kind === "unary";
      const { codec, acceptCompression } = resolved;
      const get = useHttpGet && unary &&
        method.idempotency === "no-side-effects";
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
            toGet: get
              ? (data, compressed) => {
                const url = getRequestUrl(
                  resolved.baseUrl + method.path,
                  codec,
                  data,
                  compressed ? resolved.sendCompression : null,
                );
                if (url.length > maxGetUrlBytes) return undefined;
                // The query names the encoding, compression and version.
                const getHeaders = new Headers(headers);
                getHeaders.delete(headerContentType);
                getHeaders.delete(headerProtocolVersion);
                getHeaders.delete(headerUnaryEncoding);
                return { url, headers: getHeaders };
              }
              : undefined,
          }
          : undefined,
      };
    },
  );
}
