import {
  checkArgument,
  checkFunction,
  checkOneOf,
} from "../../_internal/arguments.ts";
import { callOnError } from "../../_internal/reported.ts";
import { checkMinRate } from "../../http/_min_rate.ts";
import { pathPrefix, requestPath } from "../../http/_url.ts";
import { Code } from "../code.ts";
import {
  checkCompressions,
  type Compression,
} from "../protocol/_compression.ts";
import {
  COMPRESS_MIN_BYTES,
  IDLE_TIMEOUT_MS,
  MAX_MESSAGE_BYTES,
} from "../protocol/_defaults.ts";
import { checkMax, checkMs, checkTimerMs } from "../../_internal/limits.ts";
import type {
  HandlerContext,
  Protocol,
  ServiceImplementation,
} from "./implement_service.ts";
import type { ResolvedServeOptions } from "../protocol/_serve_options.ts";
import type {
  UniversalHandler,
  UniversalRequest,
  UniversalResponse,
} from "../universal.ts";
import { handleGrpc } from "../protocol_grpc/handler.ts";
import { isGrpcContentType } from "../protocol_grpc/content_type.ts";
import { handleGrpcWeb } from "../protocol_grpc_web/handler.ts";
import { isGrpcWebContentType } from "../protocol_grpc_web/content_type.ts";
import {
  handleConnectGet,
  handleConnectStream,
  handleConnectUnary,
} from "../protocol_connect/handler.ts";
import {
  isConnectStreamContentType,
  isConnectUnaryContentType,
  parseContentType,
  parseUnaryContentType,
} from "../protocol_connect/content_type.ts";
import { RpcError } from "../rpc_error.ts";
import { quote } from "../protocol/_quote.ts";
import { parseHeaderValue } from "../../http/_multipart_headers.ts";
import { refuseGrpc } from "./_refuse_grpc.ts";

/** Options for {@linkcode createUniversalHandler} and `createRpcHandler`. */
export interface UniversalHandlerOptions {
  /**
   * The largest message accepted or sent, in bytes (after decompression).
   * Larger requests fail with `ResourceExhausted` before the message is
   * buffered.
   *
   * @default {4194304}
   */
  maxMessageBytes?: number;
  /**
   * Response messages smaller than this are sent uncompressed even when the
   * client accepts compression.
   *
   * @default {1024}
   */
  compressMinBytes?: number;
  /**
   * The message compressions this server decodes in requests and may use on
   * responses, in order of preference; the response's is chosen from the
   * client's accept header by q-value. `[]` turns compression off (a
   * compressed request then fails with `Unimplemented`).
   *
   * @default {["gzip"]}
   */
  acceptCompression?: readonly Compression[];
  /**
   * The path under which methods are served, for mounting in a router:
   * with `"/rpc"`, `/rpc/pkg.Service/Method` serves `pkg.Service/Method`.
   * A request outside the prefix gets a plain 404 (it names no method of
   * this handler; gRPC clients read HTTP 404 as `Unimplemented`). Written
   * plain or percent-encoded (`"/ñ"`, `"/%C3%B1"` or `"/%c3%b1"`), alike, and
   * so is a request's path (its percent-encodings in either case). A path,
   * not a router's pattern: a `*`, `?`, `#` or a leading `//` is a
   * TypeError.
   *
   * @default {"" (methods at the root)}
   */
  requestPathPrefix?: string;
  /**
   * Caps every call's deadline, in milliseconds (calls without a deadline
   * get this one).
   *
   * @default {undefined (no cap)}
   */
  maxTimeoutMs?: number;
  /**
   * The longest wait for the next bytes of a request body, in milliseconds,
   * while the call is ready to read: past it the call fails with
   * `DeadlineExceeded` and its `context.signal` aborts, so a client that
   * sends nothing cannot pin a call. The default, 60 s, is nginx's
   * `grpc_read_timeout`: bidi and client-streaming calls that pause longer
   * between messages by design should raise it, or turn it off with 0
   * (calls are still bounded by their deadline and `maxTimeoutMs`).
   *
   * @default {60000}
   */
  idleTimeoutMs?: number;
  /**
   * The least rate, in bytes per second, at which a request message that
   * has begun must go on arriving, averaged over `minRateWindowMs` of
   * waiting for it: below it the call fails with `DeadlineExceeded`. The
   * idle timeout restarts at every byte, so without it a client sending one
   * byte a minute would hold a call (and its connection) for ever. Only an
   * incomplete message counts: a stream that pauses between messages is
   * bounded by `idleTimeoutMs` alone. `0` turns it off.
   *
   * @default {1024}
   */
  minBytesPerSecond?: number;
  /**
   * The window over which `minBytesPerSecond` is averaged, in milliseconds
   * of waiting for the message's bytes.
   *
   * @default {30000}
   */
  minRateWindowMs?: number;
  /**
   * The protocols to serve; requests of other protocols get 415, except
   * native gRPC, refused as gRPC servers refuse a call (HTTP 200,
   * `grpc-status` 12, UNIMPLEMENTED, in headers only) with a
   * `grpc-message` that says to add `"grpc"` here, which gRPC clients
   * report.
   *
   * @default {["grpc", "grpc-web", "connect"]}
   */
  protocols?: readonly Protocol[];
  /**
   * Called once with the error of a call that failed by the server's
   * fault, and the call's context (`context.method.path` names the method):
   * the handler threw or rejected with anything but an `RpcError` (a
   * `TypeError` of its own, a string, `undefined`; the client gets
   * `Unknown` with its message), a response message its codec cannot
   * encode (`Internal`) or one over `maxMessageBytes`
   * (`ResourceExhausted`). An `RpcError` the handler throws is its answer, and
   * a call that fails by the client's side (cancelled, past its deadline or
   * idle timeout, a malformed or too large request) is no fault: neither is
   * passed. The default logs the error with `console.error`; an `onError`
   * that throws or rejects is logged that way too and the call still ends
   * with the error's status.
   *
   * @example Report handler faults with the method's path
   * ```ts ignore
   * import { createRpcHandler } from "@sluice/streams/rpc";
   *
   * const handler = createRpcHandler(implementation, {
   *   onError: (error, context) =>
   *     console.error(`RPC ${context.method.path} failed:`, error),
   * });
   * ```
   *
   * @default {console.error}
   */
  onError?: (error: unknown, context: HandlerContext) => void;
}

function defaultOnError(error: unknown, context: HandlerContext): void {
  console.error(`sluice: RPC ${context.method.path} failed:`, error);
}

/**
 * Creates a protocol-neutral handler that serves services over gRPC,
 * gRPC-Web and Connect, chosen by each request's content type. It is what
 * server adapters build on: `createRpcHandler` wraps it for fetch servers,
 * and `serveHttp2` from `@sluice/streams/grpc-node` for `node:http2` (the
 * only one that can send the HTTP trailers native gRPC needs).
 *
 * Unknown methods fail with `Unimplemented` (in the protocol's own format),
 * and unsupported content types get 415 (native gRPC left out of
 * `protocols` gets `Unimplemented`, in headers only). HTTP methods other
 * than POST get 405 (`Allow: POST`, or `POST, GET` for a method Connect GET
 * may call), except GET of a unary method declared
 * `"no-side-effects"` (`option idempotency_level = NO_SIDE_EFFECTS`), which
 * is served as a Connect GET: the message in the query (`encoding=proto` or
 * `json`, `message=`, `base64=1` for URL-safe base64, `compression=`),
 * within `maxMessageBytes`, the response an ordinary Connect unary one.
 *
 * @param services The service implementations to serve.
 * @param options Limits, compression and protocols.
 * @returns The handler.
 *
 * @example Serve a service with node:http2
 * ```ts ignore
 * import { createUniversalHandler } from "@sluice/streams/rpc";
 * import { serveHttp2 } from "@sluice/streams/grpc-node";
 *
 * const server = await serveHttp2(createUniversalHandler([implementation]));
 * ```
 */
export function createUniversalHandler(
  services: ServiceImplementation | readonly ServiceImplementation[],
  options: UniversalHandlerOptions = {},
): UniversalHandler {
  const list = Array.isArray(services) ? services : [services];
  const entries = new Map<
    string,
    ServiceImplementation["handlers"] extends ReadonlyMap<string, infer E> ? E
      : never
  >();
  for (const service of list as ServiceImplementation[]) {
    if (
      typeof (service?.handlers as Partial<Iterable<unknown>> | undefined)
        ?.[Symbol.iterator] !== "function"
    ) {
      throw new TypeError(
        "Cannot create handler: expected service implementations from implementService",
      );
    }
    for (const [path, entry] of service.handlers) {
      if (entries.has(path)) {
        throw new TypeError(`Cannot serve ${path} twice`);
      }
      entries.set(path, entry);
    }
  }
  const what = "create handler";
  checkFunction(what, "onError", options.onError);
  const onError = options.onError ?? defaultOnError;
  const resolved: ResolvedServeOptions = {
    maxMessageBytes: checkMax(
      what,
      "maxMessageBytes",
      options.maxMessageBytes ?? MAX_MESSAGE_BYTES,
    ),
    compressMinBytes: checkMax(
      what,
      "compressMinBytes",
      options.compressMinBytes ?? COMPRESS_MIN_BYTES,
    ),
    acceptCompression: checkCompressions(what, options.acceptCompression),
    maxTimeoutMs: options.maxTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs ?? IDLE_TIMEOUT_MS,
    minBytesPerSecond: options.minBytesPerSecond ?? 1024,
    minRateWindowMs: options.minRateWindowMs ?? 30_000,
    // Guarded: what it throws or rejects with is logged, never thrown into
    // the call.
    onError: (error, context) => callOnError(onError, error, context),
  };
  checkMinRate(what, resolved.minBytesPerSecond, resolved.minRateWindowMs);
  checkMs(what, "maxTimeoutMs", options.maxTimeoutMs);
  checkTimerMs(what, "idleTimeoutMs", options.idleTimeoutMs);
  const prefix = pathPrefix("create handler", options.requestPathPrefix);
  const all = ["grpc", "grpc-web", "connect"] as const;
  const chosen = options.protocols ?? all;
  checkArgument(
    Array.isArray(chosen),
    what,
    "protocols",
    "an array",
    chosen,
    typeof chosen === "string" ? ` (write ["${chosen}"])` : "",
  );
  const protocols = new Set(
    chosen.map((protocol) => checkOneOf(what, "protocols", protocol, all)),
  );
  const grpcRefused =
    `Cannot serve native gRPC: this handler's protocols are [${
      [...protocols].map((protocol) => `"${protocol}"`).join(", ")
    }]; add "grpc" to createUniversalHandler's protocols to serve it`;
  return async (request): Promise<UniversalResponse> => {
    const fullPath = requestPath(request.url);
    if (!fullPath.startsWith(prefix + "/")) {
      await request.body?.cancel();
      return {
        status: 404,
        headers: new Headers({ "content-type": "text/plain" }),
        body: textBody(`Cannot serve ${quote(fullPath)}: not under ${prefix}/`),
      };
    }
    const path = fullPath.slice(prefix.length);
    const entry = entries.get(path);
    if (request.method !== "POST") {
      // Connect GET, for unary methods without side effects only.
      const getAllowed = protocols.has("connect") &&
        (entry === undefined || allowsGet(entry.method));
      if (request.method === "GET" && getAllowed) {
        return await handleConnectGet(request, entry, path, resolved);
      }
      return notAllowed(
        request,
        path,
        getAllowed && entry !== undefined ? "POST, GET" : "POST",
      );
    }
    const type = request.headers.get("content-type") ?? "";
    if (isGrpcContentType(type) && !protocols.has("grpc")) {
      // As a gRPC server refuses a call, so that gRPC clients say why (a
      // 415's text was read as a frame by grpc-js: RESOURCE_EXHAUSTED).
      return await refuseGrpc(request, grpcRefused);
    }
    // JSON asked of a method whose messages have no JSON codec: a media
    // type this method does not take (it was answered as the server's
    // fault, 500 or INTERNAL, which invites retries). gRPC and gRPC-Web
    // calls are refused in their protocol (serveGrpcCall).
    if (
      entry !== undefined && JSON_TYPE.test(type) &&
      (!entry.method.input.json || !entry.method.output.json) &&
      !isGrpcContentType(type) && !isGrpcWebContentType(type)
    ) {
      await request.body?.cancel();
      const typeName = entry.method.input.json
        ? entry.method.output.typeName
        : entry.method.input.typeName;
      return {
        status: 415,
        headers: new Headers({ "content-type": "text/plain" }),
        body: textBody(
          `Cannot serve content type ${
            quote(type)
          }: ${typeName} has no JSON codec (send the binary proto encoding)`,
        ),
      };
    }
    try {
      if (isGrpcWebContentType(type) && protocols.has("grpc-web")) {
        return await handleGrpcWeb(request, entry, path, resolved);
      }
      if (isGrpcContentType(type) && protocols.has("grpc")) {
        return await handleGrpc(request, entry, path, resolved);
      }
      if (protocols.has("connect")) {
        // Connect's messages are UTF-8 (JSON's) or bytes: a body declared
        // in another charset was decoded as UTF-8, a Latin-1 or UTF-16
        // request answered as if it were (Connect-ES answers 415). Of a
        // method served, in a codec served (others are refused as they
        // were).
        const charset = entry === undefined
          ? undefined
          : otherCharset(type, entry.method.kind === "unary");
        if (charset !== undefined) {
          await request.body?.cancel();
          return {
            status: 415,
            headers: new Headers({ "content-type": "text/plain" }),
            body: textBody(
              `Cannot serve content type ${quote(type)}: charset ${
                quote(charset)
              } is not UTF-8 (send UTF-8, or no charset)`,
            ),
          };
        }
        if (isConnectStreamContentType(type)) {
          return await handleConnectStream(request, entry, path, resolved);
        }
        if (isConnectUnaryContentType(type)) {
          return await handleConnectUnary(request, entry, path, resolved);
        }
      }
    } catch (error) {
      // Handlers report errors in the protocol's format; reaching here is a
      // bug, answered as a plain 500.
      const e = RpcError.from(error, Code.Internal);
      return {
        status: 500,
        headers: new Headers({ "content-type": "text/plain" }),
        body: textBody(`Cannot serve ${path}: ${e.message}`),
      };
    }
    await request.body?.cancel();
    return {
      status: 415,
      headers: new Headers({ "content-type": "text/plain" }),
      body: textBody(`Cannot serve content type ${quote(type)}`),
    };
  };
}

/**
 * The `charset` parameter of a Connect content type of a codec served
 * (proto or json), of the method's kind (unary or streaming: another is
 * refused as it was), when it names another charset than UTF-8 (`utf-8` or
 * `utf8`, any case, quoted or not), else undefined.
 */
function otherCharset(type: string, unary: boolean): string | undefined {
  // Most types have no parameters: no parse on each call for them.
  if (!type.includes(";")) return undefined;
  const codec = unary ? parseUnaryContentType(type) : parseContentType(type);
  if (codec === undefined) return undefined;
  const charset = parseHeaderValue(type).params.get("charset");
  return charset === undefined || /^utf-?8$/i.test(charset)
    ? undefined
    : charset;
}

/** A JSON codec's content type, of any protocol (`application/connect+json`, ...). */
const JSON_TYPE = /^application\/(?:[a-z-]+\+)?json\s*(?:;|$)/i;

/** Whether a method may be called with Connect GET. */
function allowsGet(method: { kind: string; idempotency?: string }): boolean {
  return method.kind === "unary" && method.idempotency === "no-side-effects";
}

/**
 * 405 for a method other than POST (or GET where it is not allowed), with
 * the methods the path takes in `Allow` (RFC 9110 section 15.5.6).
 */
async function notAllowed(
  request: UniversalRequest,
  path: string,
  allow: string,
): Promise<UniversalResponse> {
  await request.body?.cancel();
  return {
    status: 405,
    headers: new Headers({ allow, "content-type": "text/plain" }),
    body: textBody(
      `Cannot serve ${quote(path)}: method ${quote(request.method)} is not ${
        allow.replace(", ", " or ")
      }`,
    ),
  };
}

function textBody(text: string): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(text));
      controller.close();
    },
  });
}
