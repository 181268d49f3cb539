// A timer for call deadlines. setTimeout takes a signed 32-bit number of
// milliseconds in every runtime: a longer delay (a valid `grpc-timeout:
// 99999999S`, or `connect-timeout-ms: 9999999999`) fires after 1 ms. Longer
// delays are chained in steps that fit.

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
