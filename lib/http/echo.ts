import { ReadAheadStream } from "../streams/read_ahead_stream.ts";
import {
  type Compression,
  DEFAULT_MAX_DECOMPRESSED_BYTES,
} from "./compression.ts";
import {
  decodeBody,
  encodeBody,
  negotiateCompression,
  parseContentEncoding,
} from "./_compression.ts";
import { HttpError } from "./http_error.ts";
import { DEFAULT_IDLE_TIMEOUT_MS } from "./receive_body.ts";
import {
  checkIdleTimeout,
  withIdleTimeout,
} from "../_internal/idle_timeout.ts";
import { checkMax } from "../_internal/limits.ts";

/** The default for {@linkcode EchoOptions.readAheadBytes}: 1 MiB. */
export const DEFAULT_ECHO_READ_AHEAD_BYTES = 1024 * 1024;

/** Options for {@linkcode echo}. */
export interface EchoOptions {
  /**
   * The most bytes a compressed request body may decode to. Past it the
   * response body errors (the response has started: it answers as it reads)
   * and the request is cancelled, so a decompression bomb costs at most this
   * much work and one decoded chunk of memory.
   *
   * @default {67108864}
   */
  maxDecompressedBytes?: number;
  /**
   * Encodings the echo may compress its response with, in order of
   * preference, chosen by the request's `Accept-Encoding`. Empty means never:
   * `CompressionStream` cannot be flushed, so a compressed response may hold
   * bytes back until more arrive, which breaks lockstep exchanges.
   *
   * @default {[]}
   */
  responseEncodings?: readonly Compression[];
  /**
   * Bytes read ahead of the response between the request body and the
   * echo: keeps the request flowing in large steps and bounds memory. `0`
   * disables it.
   *
   * @default {1048576}
   */
  readAheadBytes?: number;
  /**
   * The longest wait for the next bytes of the request, in milliseconds,
   * while the echo is ready for them: past it the response body errors with
   * an {@linkcode HttpError} 408 and the request is cancelled, so a client
   * that sends nothing cannot pin the exchange forever. `0` disables.
   *
   * @default {30000}
   */
  idleTimeoutMs?: number;
}

/**
 * A fetch handler that writes each chunk of the request body back as it
 * arrives: a `TransformStream` pipeline from the request body to the
 * response body with no buffering beyond a bounded read-ahead, so the
 * response streams while the request is still being sent (full duplex).
 *
 * The request may be gzip- or deflate-encoded (`Content-Encoding`): it is
 * decoded, with `maxDecompressedBytes` as the limit. The response is
 * `application/octet-stream` (a type edge compression leaves alone) and is
 * compressed only with an encoding from `responseEncodings` that the client
 * accepts. An unsupported request encoding is answered with 415.
 *
 * @param request The request whose body to echo.
 * @param options Decoding limit, response encodings and read-ahead.
 * @returns The response, at once; its body is the echo.
 *
 * @example Serve an echo endpoint
 * ```ts ignore
 * import { echo } from "@sluice/streams/http";
 * import { serve } from "@sluice/streams/serve";
 *
 * const server = await serve((request) => echo(request));
 * const response = await fetch(server.url, { method: "POST", body: "Hello, World!" });
 * console.log(await response.text()); // Hello, World!
 * await server.shutdown();
 * ```
 */
export function echo(request: Request, options: EchoOptions = {}): Response {
  const maxDecompressedBytes = checkMax(
    "echo",
    "maxDecompressedBytes",
    options.maxDecompressedBytes ?? DEFAULT_MAX_DECOMPRESSED_BYTES,
  );
  const readAheadBytes = checkMax(
    "echo",
    "readAheadBytes",
    options.readAheadBytes ?? DEFAULT_ECHO_READ_AHEAD_BYTES,
  );
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  checkIdleTimeout("echo", idleTimeoutMs);
  let codings;
  try {
    codings = parseContentEncoding(request.headers.get("content-encoding"));
  } catch (error) {
    if (error instanceof HttpError) return error.toResponse();
    throw error;
  }
  const responseEncoding = negotiateCompression(
    request.headers.get("accept-encoding"),
    options.responseEncodings ?? [],
  );
  const headers = new Headers({
    "content-type": "application/octet-stream",
    "cache-control": "no-store",
  });
  if (responseEncoding) headers.set("content-encoding", responseEncoding);
  if ((options.responseEncodings ?? []).length > 0) {
    headers.set("vary", "accept-encoding");
  }
  if (!request.body) return new Response(null, { headers });
  const input = withIdleTimeout(
    request.body,
    idleTimeoutMs,
    () =>
      new HttpError(
        408,
        `Cannot echo: no request bytes arrived for ${idleTimeoutMs} ms (idleTimeoutMs)`,
      ),
  );
  let body = decodeBody(input, codings, maxDecompressedBytes);
  if (readAheadBytes > 0) {
    body = body.pipeThrough(
      new ReadAheadStream({ highWaterMark: readAheadBytes }),
    );
  }
  // The echo itself: each chunk is written back as soon as it is read.
  body = body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>());
  return new Response(encodeBody(body, responseEncoding), { headers });
}
