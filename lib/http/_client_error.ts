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
