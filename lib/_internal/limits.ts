// Validation of numeric options, shared by every layer: one wording for
// every "Cannot <what>: <name> must be ..." error.

import { kindOf } from "./arguments.ts";

/** The longest a timer waits: setTimeout fires at once past it. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A value of another type than number: a TypeError that shows it (a
 * string read from the environment, say), not a RangeError that prints
 * "1024" as if it were the number.
 */
export function checkNumber(
  what: string,
  name: string,
  value: unknown,
): void {
  if (typeof value === "number") return;
  const shown = typeof value === "string"
    ? ` ${JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value)}`
    : "";
  throw new TypeError(
    `Cannot ${what}: ${name} must be a number, got ${kindOf(value)}${shown}`,
  );
}

/** Checks a size or count option: a non-negative safe integer. */
export function checkMax(what: string, name: string, value: number): number {
  checkNumber(what, name, value);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `Cannot ${what}: ${name} must be a non-negative integer, got ${value}`,
    );
  }
  return value;
}

/**
 * Checks a port to listen on: an integer from 0 to 65535 (a string is no
 * port: node's `listen("abc")` listened on a Unix socket of that name).
 */
export function checkPort(what: string, port: number): number {
  checkNumber(what, "port", port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(
      `Cannot ${what}: port must be an integer from 0 to 65535, got ${port}`,
    );
  }
  return port;
}

/** Checks a duration option in milliseconds: a non-negative finite number. */
export function checkMs(
  what: string,
  name: string,
  ms: number | undefined,
): void {
  if (ms === undefined) return;
  checkNumber(what, name, ms);
  if (!(ms >= 0 && Number.isFinite(ms))) {
    throw new RangeError(
      `Cannot ${what}: ${name} must be a non-negative number of milliseconds, got ${ms}`,
    );
  }
}

/**
 * Checks a duration that a timer waits: as {@linkcode checkMs}, and at
 * most {@linkcode MAX_TIMER_MS} (about 24.8 days), past which setTimeout
 * fires at once: a 30-day timeout cut requests at once.
 */
export function checkTimerMs(
  what: string,
  name: string,
  ms: number | undefined,
): void {
  checkMs(what, name, ms);
  if (ms !== undefined && ms > MAX_TIMER_MS) {
    throw new RangeError(
      `Cannot ${what}: ${name} must be at most ${MAX_TIMER_MS} milliseconds (about 24.8 days, the longest a timer waits), got ${ms}`,
    );
  }
}

/**
 * The most bytes a message of `bytes` takes compressed (gzip or deflate of
 * bytes that do not compress: stored blocks of 5 bytes each per 16 KiB and
 * more, the wrapper's header and trailer), so that a compressed message is
 * refused for its size only once decompressed, as the limit says: a peer
 * that compresses whatever it sends (grpc-js) made a message just under
 * the limit a few bytes over it.
 */
export function compressedBound(bytes: number): number {
  return bytes + Math.ceil(bytes / 4096) + Math.ceil(bytes / 16384) + 64;
}
