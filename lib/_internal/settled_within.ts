// A bounded wait: for a promise to settle, or for a time to pass.

/**
 * Resolves once `promise` settles (fulfilled or rejected: its outcome is
 * not passed on) or `ms` milliseconds have passed, whichever comes first;
 * the timer is cleared either way, so it holds no process open.
 */
export async function settledWithin(
  promise: PromiseLike<unknown>,
  ms: number,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.resolve(promise).then(() => {}, () => {}),
    new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}
