// One test for "a promise or anything with a then": the operators' and the
// RPC server's callbacks may return either, and serve's handlers too.

/** Whether `value` is an object with a `then` method (a promise-like). */
export function isThenable<T = unknown>(
  value: unknown,
): value is PromiseLike<T> {
  return typeof value === "object" && value !== null &&
    typeof (value as { then?: unknown }).then === "function";
}
