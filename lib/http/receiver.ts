import { formatDigestHeader } from "./digest_header.ts";
import { HttpError } from "./http_error.ts";
import {
  DEFAULT_MAX_BODY_BYTES,
  receiveBody,
  type ReceiveBodyOptions,
} from "./receive_body.ts";
import { declaredLength, expectedDigest } from "./_body_headers.ts";

/** Options for {@linkcode createReceiver}. */
export interface ReceiverOptions extends Omit<ReceiveBodyOptions, "signal"> {
  /**
   * Opens the sink for a request: a file (see `createFileSink` in
   * `@sluice/streams/fs`), an object store, a hash, any `WritableStream`. It
   * may throw an {@linkcode HttpError}, for example from `safeFileName`.
   */
  sink: (
    request: Request,
  ) => WritableStream<Uint8Array> | Promise<WritableStream<Uint8Array>>;
  /**
   * The success response's body.
   *
   * @default {"File Received!"}
   */
  message?: string;
}

/**
 * Creates a fetch handler that receives a `POST` or `PUT` body into a sink
 * with {@linkcode receiveBody} and answers `200 File Received!`, with the
 * SHA-256 of what was stored in a `Repr-Digest` header (RFC 9530) when a
 * hasher is configured. Refusals and failures are answered with the status
 * and message of the {@linkcode HttpError} (400, 405, 413, 500); the sink is
 * aborted, so nothing partial is kept.
 *
 * @param options Where the body goes, and the limits.
 * @returns A fetch handler for `Deno.serve`, `Bun.serve` or Workers.
 *
 * @example Receive uploads into memory-bounded hashing only
 * ```ts
 * import { createReceiver } from "@sluice/streams/http";
 *
 * const handler = createReceiver({
 *   sink: () => new WritableStream(),
 *   maxBytes: 1024 * 1024,
 * });
 * const response = await handler(
 *   new Request("http://localhost/upload", { method: "POST", body: "hi" }),
 * );
 * console.log(response.status, await response.text()); // 200 File Received!
 * ```
 */
export function createReceiver(
  options: ReceiverOptions,
): (request: Request) => Promise<Response> {
  const { sink, message = "File Received!", ...receiveOptions } = options;
  return async (request) => {
    try {
      if (request.method !== "POST" && request.method !== "PUT") {
        const error = new HttpError(
          405,
          `Cannot receive body: method ${request.method} is not POST or PUT`,
        );
        const response = error.toResponse();
        response.headers.set("allow", "POST, PUT");
        return response;
      }
      // Refuse on the headers alone before opening the sink.
      declaredLength(
        request,
        receiveOptions.maxBytes ?? DEFAULT_MAX_BODY_BYTES,
      );
      expectedDigest(request);
      const destination = await sink(request);
      // A client that goes away errors the body, which aborts the sink.
      const received = await receiveBody(request, destination, receiveOptions);
      const headers = new Headers({
        "content-type": "text/plain; charset=utf-8",
      });
      if (received.sha256) {
        headers.set(
          "repr-digest",
          formatDigestHeader({ "sha-256": received.sha256 }),
        );
      }
      return new Response(message, { status: 200, headers });
    } catch (error) {
      if (error instanceof HttpError) return error.toResponse();
      throw error;
    }
  };
}
