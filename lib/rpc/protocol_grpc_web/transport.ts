import { Code } from "../code.ts";
import { startClientCall } from "../protocol/_client_call.ts";
import type { MethodDefinition } from "../define_service.ts";
import { RpcError } from "../rpc_error.ts";
import type {
  CallOptions,
  Transport,
  TransportCall,
  TransportOptions,
} from "../client/transport.ts";
import {
  callHeaders,
  checkTimeout,
  httpStatusError,
  resolveTransportOptions,
} from "../protocol/_transport_options.ts";
import { acceptHeader, readCompression } from "../protocol/_compression.ts";
import { formatTimeout } from "../protocol_grpc/headers.ts";
import { readStatus } from "../protocol_grpc/trailers.ts";
import { contentType, parseContentType } from "./content_type.ts";
import {
  headerAcceptEncoding,
  headerContentType,
  headerEncoding,
  headerTimeout,
  headerXGrpcWeb,
} from "./headers.ts";
import { decodeTrailerBlock, trailerFlag } from "./trailers.ts";

/** Options for {@linkcode createGrpcWebTransport}. */
export type GrpcWebTransportOptions = TransportOptions;

/**
 * A transport for gRPC-Web (`application/grpc-web+proto`; the status comes
 * in a trailer frame at the end of the body), over full-duplex fetch by
 * default, so bidi streams work over HTTP/1.1.
 *
 * @param options The server URL, codec, compression and limits.
 * @returns The transport, for `createClient`.
 *
 * @example Call a gRPC-Web server
 * ```ts ignore
 * import { createClient, createGrpcWebTransport } from "@sluice/streams/rpc";
 *
 * const client = createClient(StreamingCalcService, createGrpcWebTransport({
 *   baseUrl: "http://127.0.0.1:9090",
 * }));
 * ```
 */
export function createGrpcWebTransport(
  options: GrpcWebTransportOptions,
): Transport {
  const resolved = resolveTransportOptions(options);
  return {
    protocol: "grpc-web",
    call<I, O>(
      method: MethodDefinition<I, O>,
      callOptions: CallOptions = {},
    ): TransportCall<I, O> {
      checkTimeout(callOptions);
      const headers = callHeaders(resolved, callOptions);
      headers.set(headerContentType, contentType(resolved.codec));
      headers.set(headerXGrpcWeb, "1");
      if (callOptions.timeoutMs !== undefined) {
        headers.set(headerTimeout, formatTimeout(callOptions.timeoutMs));
      }
      if (resolved.sendCompression) {
        headers.set(headerEncoding, resolved.sendCompression);
      }
      if (resolved.acceptCompression.length > 0) {
        headers.set(
          headerAcceptEncoding,
          acceptHeader(resolved.acceptCompression),
        );
      }
      return startClientCall({
        httpClient: resolved.httpClient,
        url: resolved.baseUrl + method.path,
        method,
        codecName: resolved.codec,
        headers,
        options: callOptions,
        sendCompression: resolved.sendCompression,
        compressMinBytes: resolved.compressMinBytes,
        maxMessageBytes: resolved.maxMessageBytes,
        missingEnd: "its trailer frame",
        onResponse(response) {
          if (response.status !== 200) {
            throw httpStatusError(response.status, response.headers);
          }
          const status = readStatus(response.headers);
          if (status !== null) {
            return {
              compression: null,
              status: { error: status, trailers: response.headers },
            };
          }
          const type = response.headers.get(headerContentType);
          if (parseContentType(type) !== resolved.codec) {
            throw new RpcError(
              Code.Internal,
              `Cannot read response: unexpected content type "${type}"`,
            );
          }
          return {
            compression: readCompression(
              response.headers.get(headerEncoding),
              resolved.acceptCompression,
              headerEncoding,
              Code.Internal,
            ),
          };
        },
        endFlag: trailerFlag,
        decodeEnd(data) {
          const trailers = decodeTrailerBlock(data);
          const status = readStatus(trailers);
          if (status === null) {
            throw new RpcError(
              Code.Internal,
              "Cannot finish call: the trailer frame has no grpc-status",
            );
          }
          return { error: status, trailers };
        },
      });
    },
  };
}
