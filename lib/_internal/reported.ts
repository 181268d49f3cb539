// Errors already given to a handler's own `onError`: an exchange that fails
// after its response started (a duplex handler that throws after writing)
// tells its `onError`, then fails the response body with the same error,
// which Deno.serve passes to the server's `onError` as well. serve's default
// `onError` consults this set and does not log such an error a second time
// (a quiet `onError` of the handler's could not stop it).

import { isThenable } from "./thenable.ts";

const reported = new WeakSet<object>();

/**
 * Marks `error` (an object: a primitive cannot be marked, so wrap it first)
 * as given to an `onError` already.
 */
export function markReported(error: object): void {
  reported.add(error);
}

/** Whether `error` was marked by {@linkcode markReported}. */
export function wasReported(error: unknown): boolean {
  return (typeof error === "object" && error !== null ||
    typeof error === "function") && reported.has(error);
}

/**
 * Calls a handler's `onError` with `error` (and what else it takes, such
 * as an RPC call's context): what it throws (or a promise it returns
 * rejects with) is logged with the error it was given, as serve logs what
 * its own `onError` throws, so the exchange is answered as planned and
 * neither error goes unseen.
 */
export function callOnError<A extends unknown[]>(
  onError: (error: unknown, ...rest: A) => unknown,
  error: unknown,
  ...rest: A
): void {
  const failed = (reason: unknown) =>
    console.error(
      "sluice: onError failed:",
      reason,
      "\nsluice: the error it was given:",
      error,
    );
  try {
    const result = onError(error, ...rest);
    if (isThenable(result)) Promise.resolve(result).catch(failed);
  } catch (reason) {
    failed(reason);
  }
}
