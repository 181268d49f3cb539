// Serves Connect calls: streaming (application/connect+proto|json, status
// in the EndStreamResponse frame), unary (application/proto|json, the
// bare message, errors as JSON with a mapped HTTP status) and unary GET
// (the message in the query, get_request.ts). All run through the shared
// server call (protocol/_server_call.ts).

import { markUnbuffered, mergeUnbuffered } from "../../http/_unbuffered.ts";
import { Code } from "../code.ts";
import { codeToHttpStatus } from "../protocol/_codes.ts";
import { RpcError } from "../rpc_error.ts";
import type { CallStatus, ServerCallInit } from "../protocol/_server_call.ts";
import type { ResolvedServeOptions } from "../protocol/_serve_options.ts";
import {
  type CallParams,
  clampTimeout,
  type ParamHeaders,
  readCallParams,
  startCall,
} from "../protocol/_serve_common.ts";
import {
  acceptHeader,
  negotiateResponseCompression,
  readCompression,
} from "../protocol/_compression.ts";
import { quote } from "../protocol/_quote.ts";
import { wholeBody } from "../protocol/_whole_body.ts";
import type { UniversalRequest, UniversalResponse } from "../universal.ts";
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
import {
  paramCompression,
  paramConnect,
  paramEncoding,
  queryText,
  readGetMessage,
  readQuery,
} from "./get_request.ts";

type Entry = ServerCallInit["entry"];

const streamHeaders: ParamHeaders = {
  parseTimeout,
  timeout: headerTimeout,
  encoding: headerStreamEncoding,
  acceptEncoding: headerStreamAcceptEncoding,
};

const unaryHeaders: ParamHeaders = {
  parseTimeout,
  timeout: headerTimeout,
  encoding: headerUnaryEncoding,
  acceptEncoding: headerUnaryAcceptEncoding,
};

/** Serves a Connect streaming call. */
export async function handleConnectStream(
  request: UniversalRequest,
  entry: Entry | undefined,
  path: string,
  options: ResolvedServeOptions,
): Promise<UniversalResponse> {
  const codec = parseContentType(request.headers.get(headerContentType));
  if (codec === undefined) return { status: 415, headers: new Headers() };
  if (entry !== undefined && entry.method.kind === "unary") {
    return { status: 415, headers: new Headers() };
  }
  // Streamed: not held by a proxy until the call ends.
  const headers = markUnbuffered(
    new Headers({
      [headerContentType]: contentType(codec),
      [headerStreamAcceptEncoding]: acceptHeader(options.acceptCompression),
    }),
  );
  const endOnly = (error: unknown): UniversalResponse => ({
    status: 200,
    headers,
    body: wholeBody(encodeEndStreamFrame({
      error: RpcError.from(error, Code.Internal),
      trailers: new Headers(),
    })),
  });
  if (entry === undefined) {
    await request.body?.cancel().catch(() => {});
    return endOnly(
      new RpcError(Code.Unimplemented, `Cannot find method ${quote(path)}`),
    );
  }
  try {
    const params = readCallParams(request, streamHeaders, options);
    if (params.responseCompression) {
      headers.set(headerStreamEncoding, params.responseCompression);
    }
    const call = startCall(
      request,
      entry,
      "connect",
      codec,
      params,
      options,
      encodeEndStreamFrame,
    );
    await call.head;
    mergeUnbuffered(headers, call.responseHeaders);
    return { status: 200, headers, body: call.body };
  } catch (error) {
    await request.body?.cancel().catch(() => {});
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
    body: wholeBody(
      new TextEncoder().encode(JSON.stringify(errorToJson(error))),
    ),
  };
}

/** Serves a Connect unary call. */
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
  return await serveUnary(
    request,
    entry,
    path,
    codec,
    () => ({ params: readCallParams(request, unaryHeaders, options) }),
    options,
  );
}

/**
 * Serves a Connect GET: a unary call of a `"no-side-effects"` method, its
 * message in the query (get_request.ts). The caller has checked the method.
 */
export async function handleConnectGet(
  request: UniversalRequest,
  entry: Entry | undefined,
  path: string,
  options: ResolvedServeOptions,
): Promise<UniversalResponse> {
  await request.body?.cancel().catch(() => {});
  const query = readQuery(request.url);
  let encoding: string | undefined;
  try {
    encoding = queryText(query.get(paramEncoding), paramEncoding);
  } catch {
    // A malformed encoding is answered below, as an unknown one.
    encoding = query.get(paramEncoding);
  }
  if (encoding !== "proto" && encoding !== "json") {
    return {
      status: 415,
      headers: new Headers({ "content-type": "text/plain" }),
      body: wholeBody(new TextEncoder().encode(
        encoding === undefined
          ? `Cannot serve Connect GET: no ${paramEncoding} query parameter (proto or json)`
          : `Cannot serve Connect GET: ${paramEncoding} ${
            quote(encoding)
          } is not proto or json`,
      )),
    };
  }
  const response = await serveUnary(
    request,
    entry,
    path,
    encoding,
    () => {
      const version = queryText(query.get(paramConnect), paramConnect);
      if (version !== undefined && version !== "v1") {
        throw new RpcError(
          Code.InvalidArgument,
          `Cannot read GET request: ${paramConnect} is ${
            quote(version)
          }, not v1`,
        );
      }
      const requestCompression = readCompression(
        queryText(query.get(paramCompression), paramCompression) ?? null,
        options.acceptCompression,
        `${paramCompression} query parameter`,
        Code.Unimplemented,
      );
      const data = readGetMessage(
        query,
        options.maxMessageBytes,
        requestCompression !== null,
      );
      return {
        params: {
          timeoutMs: clampTimeout(
            parseTimeout(request.headers.get(headerTimeout)),
            options.maxTimeoutMs,
          ),
          requestCompression,
          responseCompression: negotiateResponseCompression(
            request.headers.get(headerUnaryAcceptEncoding),
            null,
            options.acceptCompression,
          ),
        },
        body: wholeBody(data),
      };
    },
    options,
  );
  // The response may be cached: it depends on the accepted compressions.
  if (options.acceptCompression.length > 0) {
    response.headers.append("vary", headerUnaryAcceptEncoding);
  }
  return response;
}

/**
 * Runs a unary call and answers with its message, or its error as JSON
 * with the mapped HTTP status. `prepare` reads the call's parameters (and,
 * for GET, its message); what it throws is answered as the call's error.
 */
async function serveUnary(
  request: UniversalRequest,
  entry: Entry | undefined,
  path: string,
  codec: "proto" | "json",
  prepare: () => { params: CallParams; body?: ReadableStream<Uint8Array> },
  options: ResolvedServeOptions,
): Promise<UniversalResponse> {
  const headers = new Headers({
    [headerUnaryAcceptEncoding]: acceptHeader(options.acceptCompression),
  });
  if (entry === undefined) {
    await request.body?.cancel().catch(() => {});
    // 404, as a router answers a path it does not serve (connect-go,
    // connect-node; the Connect conformance suite): clients read it as
    // Unimplemented, and the body says so too.
    return {
      ...unaryError({
        error: new RpcError(
          Code.Unimplemented,
          `Cannot find method ${quote(path)}`,
        ),
        trailers: new Headers(),
      }, headers),
      status: 404,
    };
  }
  let status: CallStatus;
  let message;
  let responseHeaders = new Headers();
  try {
    const { params, body } = prepare();
    const call = startCall(
      body === undefined ? request : {
        method: request.method,
        url: request.url,
        headers: request.headers,
        body,
        signal: request.signal,
      },
      entry,
      "connect",
      codec,
      params,
      options,
      () => undefined,
      true,
    );
    status = await call.status;
    message = await call.message;
    responseHeaders = call.responseHeaders;
    if (message !== undefined && (message.flags & 1) !== 0) {
      headers.set(headerUnaryEncoding, params.responseCompression!);
    }
  } catch (error) {
    await request.body?.cancel().catch(() => {});
    status = {
      error: RpcError.from(error, Code.Internal),
      trailers: new Headers(),
    };
  }
  responseHeaders.forEach((value, key) => headers.append(key, value));
  if (status.error || message === undefined) {
    return unaryError({
      error: status.error ??
        new RpcError(Code.Internal, "Cannot send response: no message"),
      trailers: status.trailers,
    }, headers);
  }
  headers.set(headerContentType, unaryContentType(codec));
  status.trailers.forEach((value, key) =>
    headers.append(`trailer-${key}`, value)
  );
  return { status: 200, headers, body: wholeBody(message.data) };
}
