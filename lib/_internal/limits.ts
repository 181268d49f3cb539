// Validation of numeric options, shared by every layer: one wording for
// every "Cannot <what>: <name> must be ..." error.

/** Checks a size or count option: a non-negative safe integer. */
export function checkMax(what: string, name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `Cannot ${what}: ${name} must be a non-negative integer, got ${value}`,
    );
  }
  return value;
}

/** Checks a duration option in milliseconds: a non-negative finite number. */
export function checkMs(
  what: string,
  name: string,
  ms: number | undefined,
): void {
  if (ms !== undefined && !(ms >= 0 && Number.isFinite(ms))) {
    throw new RangeError(
      `Cannot ${what}: ${name} must be a non-negative number of milliseconds, got ${ms}`,
    );
  }
}
