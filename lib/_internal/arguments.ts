// How the clients and handlers name an argument of the wrong type, so that
// a caller from JavaScript reads what it passed, not the engine's words
// about a property it could not read.

import { isThenable } from "./thenable.ts";

/**
 * What `value` is, for "got ..." in an error message: `null`, its
 * `typeof` for other primitives and plain objects, else its class's name
 * (or its `Symbol.toStringTag`: `AsyncGenerator`).
 */
export function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  const name = (Object.getPrototypeOf(value) as { constructor?: unknown })
    ?.constructor;
  if (
    typeof name === "function" && name.name !== "" && name.name !== "Object"
  ) {
    return name.name;
  }
  // A generator's objects have no class of their own, but a tag.
  const tag = (value as { [Symbol.toStringTag]?: unknown })[
    Symbol.toStringTag
  ];
  return typeof tag === "string" && tag !== "" ? tag : "object";
}

/**
 * Throws a TypeError (`Cannot <what>: <name> must be <expected>, got ...`)
 * unless `ok`.
 */
export function checkArgument(
  ok: boolean,
  what: string,
  name: string,
  expected: string,
  value: unknown,
  hint = "",
): void {
  if (ok) return;
  throw new TypeError(
    `Cannot ${what}: ${name} must be ${expected}, got ${kindOf(value)}${hint}`,
  );
}

/**
 * Checks an option that takes one of a few strings: a typo ("grpcweb",
 * "JSON", "truncat") is a TypeError at the call naming the choices, not
 * another behaviour picked silently.
 */
export function checkOneOf<T extends string>(
  what: string,
  name: string,
  value: unknown,
  allowed: readonly T[],
): T {
  if (allowed.includes(value as T)) return value as T;
  const shown = typeof value === "string"
    ? JSON.stringify(value.slice(0, 64))
    : kindOf(value);
  throw new TypeError(
    `Cannot ${what}: ${name} must be ${
      allowed.map((choice) => JSON.stringify(choice)).join(", ")
    }, got ${shown}`,
  );
}

/**
 * Checks an optional `signal` option: undefined or an AbortSignal. An
 * AbortController passed for its signal is named, with the fix; a bad one
 * found late broke the call's cleanup (a timer left armed threw from
 * nowhere) or was retried as a network failure.
 */
export function checkSignal(
  what: string,
  signal: unknown,
  name = "signal",
): void {
  // An AbortSignal of this realm or another (a page's frames): a look-alike
  // object met the runtime's own check later, in its words.
  checkArgument(
    signal === undefined ||
      (typeof AbortSignal === "function" && signal instanceof AbortSignal) ||
      Object.prototype.toString.call(signal) === "[object AbortSignal]",
    what,
    name,
    "an AbortSignal",
    signal,
    typeof AbortController === "function" && signal instanceof AbortController
      ? " (pass controller.signal)"
      : "",
  );
}

/**
 * Checks an optional function option (a callback, or `fetch`): undefined
 * or a function; a promise of one is told to be awaited.
 */
export function checkFunction(
  what: string,
  name: string,
  value: unknown,
): void {
  checkArgument(
    value === undefined || typeof value === "function",
    what,
    name,
    "a function",
    value,
    isThenable(value) ? " (await it first)" : "",
  );
}

/**
 * Checks an optional digest option (`sha256`): undefined or its bytes. A
 * digest as text (hex or base64) was sent as an empty one, or refused
 * every body as not matching.
 */
export function checkDigestBytes(
  what: string,
  name: string,
  value: unknown,
): void {
  checkArgument(
    value === undefined || value instanceof Uint8Array,
    what,
    name,
    "a Uint8Array (the digest's bytes)",
    value,
    typeof value === "string" ? " (decode hex or base64 text first)" : "",
  );
}

/**
 * Checks a `headers` option: anything `new Headers()` takes, or undefined.
 * Checked once where it is given: a value no header can carry failed
 * each request later, or each call.
 */
export function checkHeadersOption(
  what: string,
  headers: unknown,
  name = "headers",
): void {
  if (headers === undefined) return;
  try {
    new Headers(headers as HeadersInit);
  } catch (cause) {
    throw new TypeError(
      `Cannot ${what}: ${name} must be a Headers, a record or a list of pairs of header names and values: ${
        (cause as Error)?.message
      }`,
      { cause },
    );
  }
}

/**
 * Throws a `TypeError` naming `what` when `request`'s body was already read
 * (`bodyUsed`): a middleware or the app read it (`request.json()`,
 * `text()`, Hono's `c.req.json()`) before the handler that streams it,
 * which then failed with the runtime's bare "ReadableStream is locked". A
 * used body of `Content-Length: 0` passes.
 */
export function checkBodyUnused(what: string, request: Request): void {
  // An empty body read is no body lost (Deno gives a used empty body where
  // Bun gives none: a tus creation refused after a logging middleware).
  if (request.bodyUsed && request.headers.get("content-length") !== "0") {
    throw new TypeError(
      `Cannot ${what}: the request body was already read (bodyUsed): read it in this handler alone, not in a middleware or the app before it`,
    );
  }
}
