// Serves Connect calls: streaming (application/connect+proto|json, status
// in the EndStreamResponse frame) and unary (application/proto|json, errors
// as JSON with a mapped HTTP status).

import { Code } from "../code.ts";
import { codeToHttpStatus } from "../protocol/_codes.ts";
import { RpcError } from "../rpc_error.ts";
import { setDeadlineTimer } from "../protocol/_deadline.ts";
import {
  type CallStatus,
  idleError,
  type ServerCallInit,
  startServerCall,
} from "../protocol/_server_call.ts";
import { withIdleTimeout } from "../../_internal/idle_timeout.ts";
import type { ResolvedServeOptions } from "../protocol/_serve_options.ts";
import { emptyBody } from "../protocol/_serve_common.ts";
import {
  acceptHeader,
  compressMessage,
  decompressMessage,
  negotiateResponseCompression,
  readCompression,
} from "../protocol/_compression.ts";
import type { HandlerContext } from "../server/implement_service.ts";
import type { UniversalRequest, UniversalResponse } from "../universal.ts";
import { clampTimeout } from "../protocol_grpc/handler.ts";
import {
  contentType,
  parseContentType,
  parseUnaryContentType,
  unaryContentType,
} from "./content_type.ts";
import {
  headerContentType,
  headerStreamAcceptEncoding,
  headerStreamEncoding,
  headerTimeout,
  headerUnaryAcceptEncoding,
  headerUnaryEncoding,
  parseTimeout,
} from "./headers.ts";
import { encodeEndStreamFrame, errorToJson } from "./end_stream.ts";
import { readAll } from "../protocol/_read_all.ts";

type Entry = ServerCallInit["entry"];

export function handleConnectStream(
  request: UniversalRequest,
  entry: Entry | undefined,
  path: string,
  options: ResolvedServeOptions,
): UniversalResponse {
  const codec = parseContentType(request.headers.get(headerContentType));
  if (codec === undefined) return { status: 415, headers: new Headers() };
  if (entry !== undefined && entry.method.kind === "unary") {
    return { status: 415, headers: new Headers() };
  }
  const headers = new Headers({
    [headerContentType]: contentType(codec),
    [headerStreamAcceptEncoding]: acceptHeader(options.acceptCompression),
  });
  const endOnly = (error: unknown): UniversalResponse => {
    const frame = encodeEndStreamFrame({
      error: RpcError.from(error, Code.Internal),
      trailers: new Headers(),
    });
    return {
      status: 200,
      headers,
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(frame);
          controller.close();
        },
      }),
    };
  };
  if (entry === undefined) {
    return endOnly(
      new RpcError(Code.Unimplemented, `Cannot find method ${path}`),
    );
  }
  try {
    const timeoutMs = parseTimeout(request.headers.get(headerTimeout));
    const inCompression = readCompression(
      request.headers.get(headerStreamEncoding),
      options.acceptCompression,
      headerStreamEncoding,
      Code.Unimplemented,
    );
    const outCompression = negotiateResponseCompression(
      request.headers.get(headerStreamAcceptEncoding),
      inCompression,
      options.acceptCompression,
    );
    if (outCompression) headers.set(headerStreamEncoding, outCompression);
    const call = startServerCall({
      entry,
      protocol: "connect",
      codecName: codec,
      requestHeaders: request.headers,
      requestBody: request.body ?? emptyBody(),
      requestSignal: request.signal,
      requestCompression: inCompression,
      responseCompression: outCompression,
      compressMinBytes: options.compressMinBytes,
      maxMessageBytes: options.maxMessageBytes,
      timeoutMs: clampTimeout(timeoutMs, options.maxTimeoutMs),
      idleTimeoutMs: options.idleTimeoutMs,
      end: encodeEndStreamFrame,
    });
    call.responseHeaders.forEach((value, key) => headers.append(key, value));
    return { status: 200, headers, body: call.body };
  } catch (error) {
    return endOnly(error);
  }
}

function unaryError(status: CallStatus, headers: Headers): UniversalResponse {
  const error = status.error!;
  headers.set(headerContentType, "application/json");
  headers.delete(headerUnaryEncoding);
  status.trailers.forEach((value, key) =>
    headers.append(`trailer-${key}`, value)
  );
  return {
    status: codeToHttpStatus(error.code),
    headers,
    body: new ReadableStream({
      start(controller) {
        controller.enqueue(
          new TextEncoder().encode(JSON.stringify(errorToJson(error))),
        );
        controller.close();
      },
    }),
  };
}

export async function handleConnectUnary(
  request: UniversalRequest,
  entry: Entry | undefined,
  path: string,
  options: ResolvedServeOptions,
): Promise<UniversalResponse> {
  const codec = parseUnaryContentType(request.headers.get(headerContentType));
  if (codec === undefined) return { status: 415, headers: new Headers() };
  if (entry !== undefined && entry.method.kind !== "unary") {
    return { status: 415, headers: new Headers() };
  }
  const headers = new Headers({
    [headerUnaryAcceptEncoding]: acceptHeader(options.acceptCompression),
  });
  const trailers = new Headers();
  if (entry === undefined) {
    return unaryError({
      error: new RpcError(Code.Unimplemented, `Cannot find method ${path}`),
      trailers,
    }, headers);
  }
  const abort = new AbortController();
  let clearTimer = () => {};
  const onRequestAbort = () =>
    abort.abort(
      new RpcError(Code.Canceled, "Cannot finish call: the client cancelled"),
    );
  try {
    const timeoutMs = clampTimeout(
      parseTimeout(request.headers.get(headerTimeout)),
      options.maxTimeoutMs,
    );
    const inCompression = readCompression(
      request.headers.get(headerUnaryEncoding),
      options.acceptCompression,
      headerUnaryEncoding,
      Code.Unimplemented,
    );
    const outCompression = negotiateResponseCompression(
      request.headers.get(headerUnaryAcceptEncoding),
      inCompression,
      options.acceptCompression,
    );
    if (timeoutMs !== undefined) {
      clearTimer = setDeadlineTimer(
        timeoutMs,
        () =>
          abort.abort(
            new RpcError(
              Code.DeadlineExceeded,
              `Cannot finish call: deadline of ${timeoutMs} ms exceeded`,
            ),
          ),
      );
    }
    request.signal?.addEventListener("abort", onRequestAbort, { once: true });
    const { method, handler } = entry;
    const inCodec = codec === "json" ? method.input.json : method.input.proto;
    const outCodec = codec === "json"
      ? method.output.json
      : method.output.proto;
    if (!inCodec || !outCodec) {
      return { status: 415, headers: new Headers() };
    }
    const context: HandlerContext = {
      method,
      protocol: "connect",
      signal: abort.signal,
      deadline: timeoutMs === undefined ? undefined : Date.now() + timeoutMs,
      requestHeaders: request.headers,
      responseHeaders: new Headers(),
      responseTrailers: trailers,
    };
    const run = async () => {
      let bytes = await readAll(
        withIdleTimeout(
          request.body ?? emptyBody(),
          options.idleTimeoutMs,
          () => idleError(options.idleTimeoutMs!),
        ),
        options.maxMessageBytes,
        "read request",
      );
      if (inCompression !== null && bytes.byteLength > 0) {
        bytes = await decompressMessage(
          inCompression,
          bytes,
          options.maxMessageBytes,
        );
      }
      let input: unknown;
      try {
        input = inCodec.decode(bytes);
      } catch (error) {
        throw new RpcError(
          Code.InvalidArgument,
          `Cannot decode ${method.input.typeName}: ${(error as Error).message}`,
          { cause: error },
        );
      }
      return outCodec.encode(await handler(input, context));
    };
    let output = await new Promise<Uint8Array>((resolve, reject) => {
      abort.signal.addEventListener("abort", () => reject(abort.signal.reason));
      run().then(resolve, reject);
    });
    if (output.byteLength > options.maxMessageBytes) {
      throw new RpcError(
        Code.ResourceExhausted,
        `Cannot send response: size ${output.byteLength} exceeds maxMessageBytes ${options.maxMessageBytes}`,
      );
    }
    if (outCompression && output.byteLength >= options.compressMinBytes) {
      output = await compressMessage(outCompression, output);
      headers.set(headerUnaryEncoding, outCompression);
    }
    headers.set(headerContentType, unaryContentType(codec));
    context.responseHeaders.forEach((value, key) => headers.append(key, value));
    trailers.forEach((value, key) => headers.append(`trailer-${key}`, value));
    const body = output;
    return {
      status: 200,
      headers,
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(body);
          controller.close();
        },
      }),
    };
  } catch (error) {
    return unaryError({ error: RpcError.from(error), trailers }, headers);
  } finally {
    clearTimer();
    request.signal?.removeEventListener("abort", onRequestAbort);
  }
}
