import { HttpError } from "./http_error.ts";

/**
 * Whether `error` is an {@linkcode HttpError} of status 400-499: the
 * client's side of an exchange, which the library's handlers raise on
 * purpose (a client that went away, an idle or oversized body). The default
 * error handlers answer or drop those without logging them as failures.
 */
export function isClientError(error: unknown): error is HttpError {
  return error instanceof HttpError && error.status >= 400 &&
    error.status < 500;
}

/**
 * A failed read of a request body: the client went away or sent a
 * malformed body (a bad chunk size), which the runtime reports in its own
 * words. As a 400 HttpError, default onErrors do not log it as a server's
 * failure (a client could fill the log); an HttpError stays as it is.
 */
export function requestBodyFailed(what: string, cause: unknown): HttpError {
  return cause instanceof HttpError ? cause : new HttpError(
    400,
    `Cannot ${what}: the request body failed (the client went away, or sent a malformed body)`,
    { cause },
  );
}
