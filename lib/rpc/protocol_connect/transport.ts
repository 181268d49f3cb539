import { Code } from "../code.ts";
import {
  codecFor,
  linkAbort,
  startClientCall,
} from "../protocol/_client_call.ts";
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
  type ResolvedTransportOptions,
  resolveTransportOptions,
} from "../protocol/_transport_options.ts";
import {
  acceptHeader,
  compressMessage,
  decompressMessage,
  readCompression,
} from "../protocol/_compression.ts";
import {
  contentType,
  parseContentType,
  parseUnaryContentType,
  unaryContentType,
} from "./content_type.ts";
import {
  formatTimeout,
  headerContentType,
  headerProtocolVersion,
  headerStreamAcceptEncoding,
  headerStreamEncoding,
  headerTimeout,
  headerUnaryAcceptEncoding,
  headerUnaryEncoding,
} from "./headers.ts";
import { decodeEndStream, endStreamFlag, errorFromJson } from "./end_stream.ts";
import { deferred } from "../../_internal/deferred.ts";
import { readAll } from "../protocol/_read_all.ts";

/** Options for {@linkcode createConnectTransport}. */
export type ConnectTransportOptions = TransportOptions;

/**
 * A transport for the Connect protocol: streaming calls use
 * `application/connect+proto` (or `+json`) with the EndStreamResponse at the
 * end of the body, unary calls `application/proto` (or `json`). Runs over
 * full-duplex fetch by default, so bidi streams work over HTTP/1.1.
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
  const resolved = resolveTransportOptions(options);
  return {
    protocol: "connect",
    call<I, O>(
      method: MethodDefinition<I, O>,
      callOptions: CallOptions = {},
    ): TransportCall<I, O> {
      checkTimeout(callOptions);
      if (method.kind === "unary") {
        return startUnaryCall(resolved, method, callOptions);
      }
      const headers = callHeaders(resolved, callOptions);
      headers.set(headerContentType, contentType(resolved.codec));
      headers.set(headerProtocolVersion, "1");
      if (callOptions.timeoutMs !== undefined) {
        headers.set(headerTimeout, formatTimeout(callOptions.timeoutMs));
      }
      if (resolved.sendCompression) {
        headers.set(headerStreamEncoding, resolved.sendCompression);
      }
      if (resolved.acceptCompression.length > 0) {
        headers.set(
          headerStreamAcceptEncoding,
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
        missingEnd: "its EndStreamResponse",
        onResponse(response) {
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
              response.headers.get(headerStreamEncoding),
              resolved.acceptCompression,
              headerStreamEncoding,
              Code.Internal,
            ),
          };
        },
        endFlag: endStreamFlag,
        decodeEnd: decodeEndStream,
      });
    },
  };
}

function startUnaryCall<I, O>(
  resolved: ResolvedTransportOptions,
  method: MethodDefinition<I, O>,
  callOptions: CallOptions,
): TransportCall<I, O> {
  const inCodec = codecFor(method.input, resolved.codec);
  const outCodec = codecFor(method.output, resolved.codec);
  const abort = new AbortController();
  const unlink = linkAbort(abort, callOptions);
  const headers = callHeaders(resolved, callOptions);
  headers.set(headerContentType, unaryContentType(resolved.codec));
  headers.set(headerProtocolVersion, "1");
  if (callOptions.timeoutMs !== undefined) {
    headers.set(headerTimeout, formatTimeout(callOptions.timeoutMs));
  }
  if (resolved.acceptCompression.length > 0) {
    headers.set(
      headerUnaryAcceptEncoding,
      acceptHeader(resolved.acceptCompression),
    );
  }
  const responseHeaders = deferred<Headers>();
  responseHeaders.promise.catch(() => {});
  const trailers = deferred<Headers>();
  const result = deferred<O>();
  result.promise.catch(() => {});
  const messages: I[] = [];

  const send = async (input: I) => {
    let body = inCodec.encode(input);
    if (
      resolved.sendCompression &&
      body.byteLength >= resolved.compressMinBytes
    ) {
      body = await compressMessage(resolved.sendCompression, body);
      headers.set(headerUnaryEncoding, resolved.sendCompression);
    }
    const bytes = body;
    let response;
    try {
      response = await resolved.httpClient({
        url: resolved.baseUrl + method.path,
        method: "POST",
        headers,
        body: new ReadableStream({
          start(controller) {
            controller.enqueue(bytes);
            controller.close();
          },
        }),
        signal: abort.signal,
      });
    } catch (error) {
      throw new RpcError(
        Code.Unavailable,
        `Cannot send request: ${(error as Error)?.message ?? error}`,
        { cause: error },
      );
    }
    responseHeaders.resolve(response.headers);
    const metadata = new Headers();
    response.headers.forEach((value, key) => {
      if (key.startsWith("trailer-")) metadata.append(key.slice(8), value);
    });
    const compression = readCompression(
      response.headers.get(headerUnaryEncoding),
      resolved.acceptCompression,
      headerUnaryEncoding,
      Code.Internal,
    );
    let data = await readAll(
      response.body,
      resolved.maxMessageBytes,
      "read response",
    );
    if (compression && data.byteLength > 0) {
      data = await decompressMessage(
        compression,
        data,
        resolved.maxMessageBytes,
      );
    }
    if (response.status !== 200) {
      let error: RpcError | undefined;
      if (
        response.headers.get(headerContentType)?.startsWith("application/json")
      ) {
        try {
          error = errorFromJson(
            JSON.parse(new TextDecoder().decode(data)),
            metadata,
          );
        } catch {
          // Not an error object: fall back to the HTTP status below.
        }
      }
      throw error ?? httpStatusError(response.status, response.headers);
    }
    const type = response.headers.get(headerContentType);
    if (parseUnaryContentType(type) !== resolved.codec) {
      throw new RpcError(
        Code.Internal,
        `Cannot read response: unexpected content type "${type}"`,
      );
    }
    trailers.resolve(metadata);
    try {
      return outCodec.decode(data);
    } catch (error) {
      throw new RpcError(
        Code.Internal,
        `Cannot decode ${method.output.typeName}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  };

  const settle = (promise: Promise<O>) => {
    promise.then(result.resolve, (error) => {
      const rpcError = abort.signal.aborted
        ? abort.signal.reason as RpcError
        : RpcError.from(error, Code.Internal);
      responseHeaders.reject(rpcError);
      trailers.resolve(rpcError.metadata);
      result.reject(rpcError);
    }).finally(unlink);
  };
  abort.signal.addEventListener("abort", () => {
    settle(Promise.reject(abort.signal.reason));
  }, { once: true });

  const requests = new WritableStream<I>({
    write(value) {
      if (messages.length > 0) {
        throw new RpcError(
          Code.InvalidArgument,
          `Cannot send: unary method ${method.name} takes exactly one message`,
        );
      }
      messages.push(value);
    },
    close() {
      if (messages.length !== 1) {
        settle(Promise.reject(
          new RpcError(
            Code.InvalidArgument,
            `Cannot send: unary method ${method.name} takes exactly one message`,
          ),
        ));
        return;
      }
      settle(send(messages[0]));
    },
    abort(reason) {
      abort.abort(RpcError.from(reason, Code.Canceled));
    },
  });

  const responses = new ReadableStream<O>({
    async pull(controller) {
      try {
        controller.enqueue(await result.promise);
        controller.close();
      } catch (error) {
        controller.error(error);
      }
    },
    cancel(reason) {
      abort.abort(RpcError.from(reason, Code.Canceled));
    },
  }, { highWaterMark: 0 });

  return {
    requests,
    responses,
    headers: responseHeaders.promise,
    trailers: trailers.promise,
    cancel(reason?: unknown) {
      abort.abort(
        reason instanceof RpcError ? reason : new RpcError(
          Code.Canceled,
          "Cannot finish call: cancelled by the caller",
          { cause: reason },
        ),
      );
    },
  };
}
