// Deadlines and cancellation of a call, wired once for clients and servers.
//
// setTimeout takes a signed 32-bit number of milliseconds in every runtime:
// a longer delay (a valid `grpc-timeout: 99999999S`, or
// `connect-timeout-ms: 9999999999`) fires after 1 ms. Longer delays are
// chained in steps that fit.

import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";

/** The longest delay setTimeout honours: about 24.8 days. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Calls `fire` after `ms` milliseconds; returns a function that cancels. */
export function setDeadlineTimer(ms: number, fire: () => void): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = (left: number) => {
    timer = left > MAX_TIMER_MS
      ? setTimeout(() => arm(left - MAX_TIMER_MS), MAX_TIMER_MS)
      : setTimeout(fire, left);
  };
  arm(ms);
  return () => clearTimeout(timer);
}

/**
 * The error of a call whose deadline passed. The timeout is shown rounded
 * (`grpc-timeout: 1n` is 0.000001 ms): "under 1 ms", else to 3 significant
 * digits, whole milliseconds from 1000 on.
 */
export function deadlineError(timeoutMs: number, cause?: unknown): RpcError {
  const shown = timeoutMs > 0 && timeoutMs < 1
    ? "under 1"
    : Math.abs(timeoutMs) >= 1000
    ? String(Math.round(timeoutMs))
    : String(Number(timeoutMs.toPrecision(3)));
  return new RpcError(
    Code.DeadlineExceeded,
    `Cannot finish call: deadline of ${shown} ms exceeded`,
    { cause },
  );
}

/**
 * Aborts `abort` when `timeoutMs` passes (`DeadlineExceeded`; at once for
 * 0) or `signal` aborts (its reason if an RpcError, else `Canceled` with
 * `cancelled` as the message). Returns a function that unlinks both.
 */
export function linkDeadline(
  abort: AbortController,
  timeoutMs: number | undefined,
  signal: AbortSignal | undefined,
  cancelled: string,
): () => void {
  let clearTimer = () => {};
  if (timeoutMs !== undefined) {
    if (timeoutMs <= 0) abort.abort(deadlineError(timeoutMs));
    else {
      clearTimer = setDeadlineTimer(
        timeoutMs,
        () => abort.abort(deadlineError(timeoutMs)),
      );
    }
  }
  const onAbort = () => {
    const reason = signal!.reason;
    abort.abort(
      reason instanceof RpcError
        ? reason
        : new RpcError(Code.Canceled, cancelled, { cause: reason }),
    );
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  return () => {
    clearTimer();
    signal?.removeEventListener("abort", onAbort);
  };
}
