/**
 * An HTTP request as the RPC layer sees it, independent of the server that
 * received it (a fetch `Request`, a `node:http2` stream, ...).
 */
export interface UniversalRequest {
  /** The HTTP method, such as `POST`. */
  readonly method: string;
  /** The request URL (only its path is used for routing). */
  readonly url: string;
  /** The request headers. */
  readonly headers: Headers;
  /** The request body, if any. */
  readonly body: ReadableStream<Uint8Array> | null;
  /** Aborted when the client goes away. */
  readonly signal?: AbortSignal;
}

/**
 * An HTTP response as the RPC layer produces it. `trailers`, if present,
 * resolves after the body has ended with the HTTP trailers to send (native
 * gRPC); servers that cannot send trailers only serve protocols that do not
 * need them.
 */
export interface UniversalResponse {
  /** The HTTP status. */
  readonly status: number;
  /** The response headers. */
  readonly headers: Headers;
  /** The response body, if any. */
  readonly body?: ReadableStream<Uint8Array>;
  /** HTTP trailers, resolved once the body has ended. */
  readonly trailers?: Promise<Headers>;
}

/** Serves one universal request. */
export type UniversalHandler = (
  request: UniversalRequest,
) => Promise<UniversalResponse>;

/**
 * An HTTP response as a client transport receives it. `trailers` resolves
 * after the body has been read to its end (an empty `Headers` for clients
 * that cannot read trailers, such as `fetch`).
 */
export interface UniversalClientResponse {
  /** The HTTP status. */
  readonly status: number;
  /** The response headers. */
  readonly headers: Headers;
  /** The response body. */
  readonly body: ReadableStream<Uint8Array>;
  /** HTTP trailers, resolved once the body has been read to its end. */
  readonly trailers: Promise<Headers>;
}

/** An HTTP request as a client transport sends it. */
export interface UniversalClientRequest {
  /** The full URL. */
  readonly url: string;
  /** The HTTP method: `POST`, or `GET` for a Connect GET. */
  readonly method: string;
  /** The request headers. */
  readonly headers: Headers;
  /**
   * The request body: a complete body (sent with a Content-Length; unary
   * and server-streaming calls), or a stream sent as it is produced (full
   * duplex; client-streaming and bidi calls). An empty `Uint8Array` for a
   * `GET` (Connect GET), which sends no body.
   */
  readonly body: ReadableStream<Uint8Array> | Uint8Array;
  /** Cancels the request. */
  readonly signal: AbortSignal;
}

/**
 * Sends a request and resolves as soon as the response headers arrive, while
 * the request body may still be streaming.
 */
export type HttpClient = (
  request: UniversalClientRequest,
) => Promise<UniversalClientResponse>;
