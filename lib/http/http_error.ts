import { checkNumber } from "../_internal/limits.ts";

const TEXT_HEADERS = { "content-type": "text/plain; charset=utf-8" };
const TIMEOUT_HEADERS = { ...TEXT_HEADERS, connection: "close" };

/**
 * An error that carries the HTTP status a server should answer with. The
 * library's handlers throw it for bad input (400), over-limit bodies (413) and
 * so on, and turn it into a plain-text response with
 * {@linkcode HttpError.prototype.getResponse}: the method Hono and similar
 * routers call on a thrown error, so an `HttpError` thrown from a route
 * answers with its own status.
 *
 * @example Answer a bad request
 * ```ts
 * import { HttpError } from "@sluice/streams/http";
 *
 * const error = new HttpError(413, "Cannot accept body: size exceeds maxBytes 1024");
 * const response = error.getResponse();
 * console.log(response.status, await response.text());
 * ```
 */
export class HttpError extends Error {
  /** The HTTP status code to answer with. */
  readonly status: number;

  /**
   * Creates an error carrying an HTTP status.
   *
   * @param status The HTTP status code: 400-599 for a server's refusal or
   *   failure; a client also carries a 3xx it did not follow (300-599).
   * @param message What went wrong; sent to the client as the response body.
   * @param options The underlying cause, if any.
   * @throws {RangeError} When `status` is not an integer from 300 to 599
   *   (`getResponse()` would throw, or answer a success).
   */
  constructor(status: number, message: string, options?: ErrorOptions) {
    // Text ("404") is a TypeError showing it, as every number option's.
    checkNumber("create HttpError", "status", status);
    if (!Number.isInteger(status) || status < 300 || status > 599) {
      throw new RangeError(
        `Cannot create HttpError: status must be an integer from 300 to 599, got ${
          typeof status === "number" ? status : typeof status
        }`,
      );
    }
    super(message, options);
    this.name = "HttpError";
    this.status = status;
  }

  /**
   * Turns the error into a plain-text response with its status and message.
   * A `408` also says `Connection: close` (RFC 9110, 15.5.9): the client
   * stopped mid-request, and the rest of its body, should it come, is not
   * another request (Bun and workerd then close the connection; Deno 2.9.6
   * ignores the header, known-runtime-issues.md (y); HTTP/2 drops it).
   *
   * @returns A `text/plain` response.
   */
  getResponse(): Response {
    // 304 (a client's answer it did not follow) has no body.
    return new Response(this.status === 304 ? null : this.message, {
      status: this.status,
      headers: this.status === 408 ? TIMEOUT_HEADERS : TEXT_HEADERS,
    });
  }
}
