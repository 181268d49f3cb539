import { formatDigestHeader } from "./digest_header.ts";
import { HttpError } from "./http_error.ts";
import {
  receiveBody,
  type ReceiveBodyOptions,
  type ReceivedBody,
} from "./receive_body.ts";
import { contentDigests, declaredLength } from "./_body_headers.ts";
import { MAX_BODY_BYTES } from "./_defaults.ts";
import { encodeBase64 } from "../_internal/base64.ts";

/** What the upload handler passes to its sink and completion hook. */
export interface UploadContext {
  /** Route parameters, from the handler's optional second argument. */
  params: Record<string, string>;
}

/** Options for {@linkcode createUploadHandler}. */
export interface UploadHandlerOptions extends
  Omit<
    ReceiveBodyOptions,
    "signal" | "contentLength" | "sha256" | "headers"
  > {
  /**
   * Opens the sink for a request: a file (see `createFileSink` in
   * `@sluice/streams/fs`), an object store, a hash, any `WritableStream`. It
   * may throw an {@linkcode HttpError}, for example from `safeFileName`.
   */
  sink: (
    request: Request,
    context: UploadContext,
  ) => WritableStream<Uint8Array> | Promise<WritableStream<Uint8Array>>;
  /**
   * Answers a stored upload. The default answers `201 Created` with JSON
   * `{ "bytes": n, "sha256": "<base64>" }` (`sha256` only when a hasher
   * ran) and the SHA-256 in a `Repr-Digest` header (RFC 9530). When the
   * request's `Content-Digest` named only algorithms the receiver cannot
   * check, the default answer also carries
   * `Want-Content-Digest: sha-256=10, sha-512=5`, telling the client which
   * ones it would verify.
   *
   * @default {a 201 JSON answer}
   */
  onComplete?: (
    result: ReceivedBody,
    request: Request,
    context: UploadContext,
  ) => Response | Promise<Response>;
}

/**
 * The default answer of {@linkcode createUploadHandler}: 201 with JSON
 * `{ bytes, sha256? }` and `Repr-Digest`.
 */
function created(result: ReceivedBody): Response {
  const headers = new Headers({
    "content-type": "application/json",
  });
  const body: { bytes: number; sha256?: string } = { bytes: result.bytes };
  if (result.sha256) {
    body.sha256 = encodeBase64(result.sha256);
    headers.set(
      "repr-digest",
      formatDigestHeader({ "sha-256": result.sha256 }),
    );
  }
  if (result.unverifiedDigests) {
    headers.set("want-content-digest", "sha-256=10, sha-512=5");
  }
  return new Response(JSON.stringify(body), { status: 201, headers });
}

/**
 * Creates a fetch handler that receives a `POST` or `PUT` body into a sink
 * with {@linkcode receiveBody} and answers with `onComplete` (by default
 * `201 Created` with JSON `{ "bytes": n, "sha256": "..." }` and a
 * `Repr-Digest` header). Refusals and failures are answered with the status
 * and message of the {@linkcode HttpError} (400, 405, 408, 413, 500); the
 * sink is aborted, so nothing partial is kept.
 *
 * The handler takes an optional second argument `{ params }` (route
 * parameters from a router), passed to `sink` and `onComplete`; a runtime's
 * own second argument (Deno's `ServeHandlerInfo`, Bun's `Server`) is
 * ignored.
 *
 * @param options Where the body goes, the limits and the answer.
 * @returns A fetch handler for `Deno.serve`, `Bun.serve`, Workers or a router.
 *
 * @example Receive uploads into a hashing-only sink
 * ```ts
 * import { createUploadHandler } from "@sluice/streams/http";
 *
 * const handler = createUploadHandler({
 *   sink: () => new WritableStream(),
 *   maxBytes: 1024 * 1024,
 * });
 * const response = await handler(
 *   new Request("http://localhost/upload", { method: "POST", body: "hi" }),
 * );
 * console.log(response.status, await response.text()); // 201 {"bytes":2}
 * ```
 *
 * @example Answer like Ballerina's streaming example, with route parameters
 * ```ts ignore
 * import { createUploadHandler, safeFileName } from "@sluice/streams/http";
 * import { createFileSink, createHasher } from "@sluice/streams/fs";
 *
 * const upload = createUploadHandler({
 *   sink: (_request, { params }) =>
 *     createFileSink(`./uploads/${safeFileName(params.name)}`),
 *   hasher: createHasher,
 *   onComplete: () => new Response("File Received!"),
 * });
 * // Hono: app.put("/files/:name", (c) => upload(c.req.raw, { params: c.req.param() }));
 * ```
 */
export function createUploadHandler(
  options: UploadHandlerOptions,
): (request: Request, context?: { params?: Record<string, string> }) => Promise<
  Response
> {
  const { sink, onComplete = created, ...receiveOptions } = options;
  return async (request, second) => {
    // Only a router's { params } counts; Deno's ServeHandlerInfo and Bun's
    // Server have none.
    const params = second && typeof second === "object" &&
        "params" in second && second.params && typeof second.params === "object"
      ? second.params
      : {};
    const context: UploadContext = { params };
    try {
      if (request.method !== "POST" && request.method !== "PUT") {
        const error = new HttpError(
          405,
          `Cannot receive body: method ${request.method} is not POST or PUT`,
        );
        const response = error.getResponse();
        response.headers.set("allow", "POST, PUT");
        return response;
      }
      // Refuse on the headers alone before opening the sink.
      declaredLength(
        request.headers,
        receiveOptions.maxBytes ?? MAX_BODY_BYTES,
      );
      contentDigests(request.headers.get("content-digest"));
      const destination = await sink(request, context);
      // A client that goes away errors the body, which aborts the sink.
      const received = await receiveBody(request, destination, receiveOptions);
      return await onComplete(received, request, context);
    } catch (error) {
      if (error instanceof HttpError) return error.getResponse();
      throw error;
    }
  };
}
