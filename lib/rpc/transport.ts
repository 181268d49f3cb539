import type { MethodDefinition } from "./define_service.ts";
import type { Protocol } from "./implement_service.ts";

/** Options for one call. */
export interface CallOptions {
  /** Cancels the call; it fails with `Code.Canceled`. */
  signal?: AbortSignal;
  /**
   * The deadline, in milliseconds from now: sent to the server
   * (`grpc-timeout`, `connect-timeout-ms`) and enforced locally; the call
   * fails with `Code.DeadlineExceeded` when it passes.
   */
  timeoutMs?: number;
  /** Extra request headers (metadata). */
  headers?: HeadersInit;
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
  /** The server's base URL, such as `http://127.0.0.1:9090`. */
  baseUrl: string | URL;
  /**
   * How HTTP requests are sent.
   *
   * @default {createFetchClient() (full-duplex fetch)}
   */
  httpClient?: import("./universal.ts").HttpClient;
  /**
   * The message encoding: binary Protobuf or proto3 JSON.
   *
   * @default {"proto"}
   */
  codec?: "proto" | "json";
  /**
   * Compresses request messages of at least `compressMinBytes` with gzip.
   *
   * @default {undefined (no compression)}
   */
  sendCompression?: "gzip";
  /**
   * Accepts gzip-compressed responses (always decompressed within
   * `maxMessageBytes`).
   *
   * @default {true}
   */
  acceptCompression?: boolean;
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
  /** Headers sent with every call. */
  headers?: HeadersInit;
}
