import type { MethodDefinition } from "../define_service.ts";
import type { Protocol } from "../server/implement_service.ts";
import type { Compression } from "../../http/compression.ts";
import type { HttpClient } from "../universal.ts";

/** Options for one call. */
export interface CallOptions {
  /** Cancels the call; it fails with `Code.Canceled`. */
  signal?: AbortSignal;
  /**
   * The deadline, in milliseconds from now: sent to the server
   * (`grpc-timeout`, `connect-timeout-ms`) and enforced locally; the call
   * fails with `Code.DeadlineExceeded` when it passes (at once for zero or
   * less). A value that is no finite number is a `RangeError`.
   */
  timeoutMs?: number;
  /**
   * Extra request headers (metadata). Those that describe the body's
   * encoding or length, or the encodings the client reads
   * (`content-encoding`, `accept-encoding`, `connect-content-encoding`,
   * `grpc-encoding`, their accept forms, `content-length`), are the
   * transport's, set from its options, and not sent from here.
   */
  headers?: HeadersInit;
  /**
   * Called once with the response headers, as soon as a response has
   * arrived: before the call's first message, or its error, is delivered
   * (also when the call then fails, but not when no response arrived at
   * all). This is how a unary call shows its headers; streaming calls also
   * have the `headers` promise. What it throws fails the call with
   * `Code.Unknown`.
   *
   * @example Read a unary call's headers and trailers
   * ```ts ignore
   * import {
   *   createClient,
   *   createConnectTransport,
   *   defineService,
   *   Int64Value,
   * } from "@sluice/streams/rpc";
   *
   * const Counter = defineService("example.Counter", {
   *   add: { kind: "unary", input: Int64Value, output: Int64Value },
   * });
   * const client = createClient(Counter, createConnectTransport({
   *   baseUrl: "http://127.0.0.1:9090",
   * }));
   * let requestId: string | null = null;
   * let cost: string | null = null;
   * const total = await client.add(5n, {
   *   onHeader: (headers) => requestId = headers.get("x-request-id"),
   *   onTrailer: (trailers) => cost = trailers.get("x-cost"),
   * });
   * console.log(total, requestId, cost);
   * ```
   */
  onHeader?(headers: Headers): void;
  /**
   * Called once with the trailers when the call ends with a status from the
   * server, OK or an error, before the call's outcome is delivered (for a
   * failed call, the `RpcError`'s `metadata` holds the same trailers). Not
   * called when the call fails without a status from the server
   * (cancelled, deadline passed locally, connection lost). Trailers are
   * gRPC's HTTP trailers, gRPC-Web's trailer frame, Connect's
   * EndStreamResponse metadata or, for Connect unary, the `trailer-`
   * headers without their prefix. What it throws fails the call with
   * `Code.Unknown`.
   */
  onTrailer?(trailers: Headers): void;
}

/**
 * One call in progress at the transport level: a writable for request
 * messages and a readable of response messages, which errors with an
 * `RpcError` if the call fails and closes when it succeeds.
 */
export interface TransportCall<I, O> {
  /** Request messages; close it to end the request stream. */
  readonly requests: WritableStream<I>;
  /** Response messages. */
  readonly responses: ReadableStream<O>;
  /** The response headers (rejects if the call fails before them). */
  readonly headers: Promise<Headers>;
  /** The trailers, once the responses have been read to their end. */
  readonly trailers: Promise<Headers>;
  /**
   * Sends one request message past the per-chunk machinery of `requests`
   * (the fast path of `createClient`; see `FrameEncoderStream.push`), for
   * calls that stream their requests. Only for the holder of `requests`'
   * lock, one message at a time: the next only after the previous returned
   * or its promise settled.
   */
  readonly push?: (message: I) => void | Promise<void>;
  /**
   * Sends the request messages pushed so far without waiting for more (by
   * default the request stream waits a few microtask turns to coalesce a
   * burst): `createClient` calls it when the caller waits for a response.
   */
  readonly flush?: () => void;
  /** Cancels the call. */
  cancel(reason?: unknown): void;
}

/**
 * A protocol and a way to send HTTP requests: what a client needs to make
 * calls. Made by `createConnectTransport`, `createGrpcWebTransport` or
 * `createGrpcTransport`.
 */
export interface Transport {
  /** The protocol spoken. */
  readonly protocol: Protocol;
  /** Starts a call. */
  call<I, O>(
    method: MethodDefinition<I, O>,
    options?: CallOptions,
  ): TransportCall<I, O>;
}

/** Options shared by the transports. */
export interface TransportOptions {
  /**
   * The server's base URL, such as `http://127.0.0.1:9090`: an `http:` or
   * `https:` URL, or in a page one relative to it (a `TypeError` otherwise);
   * any with an `httpClient` of your own.
   */
  baseUrl: string | URL;
  /**
   * The `fetch` that sends requests, for example one bound to a
   * `Deno.HttpClient` for h2c, or a mock in tests: the one option for
   * swapping the HTTP client wherever a fetch is used. A mock may call a
   * handler in the same process (`(input, init) => handler(new
   * Request(input, init))`): a gzip body the runtime's fetch would have
   * decoded is then decoded by the client.
   *
   * @default {globalThis.fetch}
   */
  fetch?: typeof fetch;
  /**
   * An HTTP client that is not fetch, such as the `node:http2` client of
   * `createHttp2Client` from `@sluice/streams/grpc-node` (native gRPC needs
   * its trailers). Give `fetch` or `httpClient`, not both.
   *
   * @default {createFetchClient({ fetch }) (full-duplex fetch)}
   */
  httpClient?: HttpClient;
  /**
   * The message encoding: binary Protobuf or proto3 JSON.
   *
   * @default {"proto"}
   */
  codec?: "proto" | "json";
  /**
   * Compresses request messages of at least `compressMinBytes` bytes with
   * this compression (sent as `grpc-encoding`, `connect-content-encoding` or
   * `content-encoding`).
   *
   * @default {undefined (no compression)}
   */
  sendCompression?: Compression;
  /**
   * The compressions the server may use on responses, in order of
   * preference (sent as `grpc-accept-encoding`, `connect-accept-encoding`
   * or `accept-encoding`); `[]` turns response compression off (sent as
   * `identity` where a server would otherwise answer in the request's
   * compression). Compressed responses are always decompressed within
   * `maxMessageBytes`.
   *
   * @default {["gzip"]}
   */
  acceptCompression?: readonly Compression[];
  /**
   * Request messages smaller than this are sent uncompressed.
   *
   * @default {1024}
   */
  compressMinBytes?: number;
  /**
   * The largest message sent or accepted, in bytes (after decompression).
   *
   * @default {4194304}
   */
  maxMessageBytes?: number;
  /**
   * Headers sent with every call (a call's `headers` win); the encoding
   * and length headers are left out, as from a call's.
   */
  headers?: HeadersInit;
  /**
   * Lets bidi calls run over fetch in a browser, where fetch is half
   * duplex: responses arrive only after the request stream has ended (and
   * Chromium streams a request body only over HTTP/2). Without it such a
   * call fails at once with `Unimplemented`, naming
   * `createWebSocketTransport`, rather than hang. Outside browsers fetch is
   * full duplex and this does nothing.
   *
   * @default {false}
   */
  allowHalfDuplex?: boolean;
}
