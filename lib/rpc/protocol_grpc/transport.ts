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
import { contentType, parseContentType } from "./content_type.ts";
import {
  formatTimeout,
  headerAcceptEncoding,
  headerContentType,
  headerEncoding,
  headerTe,
  headerTimeout,
} from "./headers.ts";
import { readStatus } from "./trailers.ts";
import type { HttpClient } from "../universal.ts";

/** Options for {@linkcode createGrpcTransport}. */
export interface GrpcTransportOptions extends TransportOptions {
  /**
   * An HTTP/2 client that reads trailers, such as `createHttp2Client` from
   * `@sluice/streams/grpc-node` (fetch cannot read trailers).
   */
  httpClient: HttpClient;
}

/**
 * A transport for native gRPC (`application/grpc+proto`, HTTP/2 with the
 * status in trailers). It needs an HTTP client that reads trailers: use
 * `createHttp2Client` from `@sluice/streams/grpc-node`, which works under
 * Deno, Bun and Node.
 *
 * @param options The server URL, the HTTP/2 client, codec and limits.
 * @returns The transport, for `createClient`.
 *
 * @example Call a gRPC server
 * ```ts ignore
 * import { createClient, createGrpcTransport } from "@sluice/streams/rpc";
 * import { createHttp2Client } from "@sluice/streams/grpc-node";
 *
 * const httpClient = createHttp2Client("http://127.0.0.1:9090");
 * const client = createClient(StreamingCalcService, createGrpcTransport({
 *   baseUrl: "http://127.0.0.1:9090",
 *   httpClient,
 * }));
 * ```
 */
export function createGrpcTransport(options: GrpcTransportOptions): Transport {
  const resolved = resolveTransportOptions(options);
  return {
    protocol: "grpc",
    call<I, O>(
      method: MethodDefinition<I, O>,
      callOptions: CallOptions = {},
    ): TransportCall<I, O> {
      checkTimeout(callOptions);
      const headers = callHeaders(resolved, callOptions);
      headers.set(headerContentType, contentType(resolved.codec));
      headers.set(headerTe, "trailers");
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
        missingEnd: "a grpc-status trailer",
        onResponse(response) {
          const status = readStatus(response.headers);
          if (status !== null) {
            // Trailers-Only: the status is in the headers.
            return {
              compression: null,
              status: { error: status, trailers: response.headers },
            };
          }
          if (response.status !== 200) {
            throw httpStatusError(response.status, response.headers);
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
        readTrailers(trailers) {
          const status = readStatus(trailers);
          return status === null ? null : { error: status, trailers };
        },
      });
    },
  };
}
