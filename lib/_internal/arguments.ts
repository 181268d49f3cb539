// How the clients and handlers name an argument of the wrong type, so that
// a caller from JavaScript reads what it passed, not the engine's words
// about a property it could not read.

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
