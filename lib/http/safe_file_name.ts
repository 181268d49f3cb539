import { HttpError } from "./http_error.ts";

/** The longest file name {@linkcode safeFileName} accepts, in characters. */
const MAX_FILE_NAME_LENGTH = 255;

/**
 * Checks a client-supplied file name before it is joined to an upload
 * directory: it must be a single path segment, so it can never escape that
 * directory. Refuses empty names, `.` and `..`, any `/` or `\`, NUL and other
 * control characters, a drive prefix such as `C:`, and names longer than
 * {@linkcode MAX_FILE_NAME_LENGTH}, with a 400 {@linkcode HttpError}.
 *
 * @param name The name the client sent.
 * @returns The same name, when it is safe.
 * @throws {HttpError} 400 when the name could escape the directory.
 *
 * @example Accept a plain name, refuse a traversal
 * ```ts
 * import { safeFileName } from "@sluice/streams/http";
 * import assert from "node:assert/strict";
 *
 * assert.equal(safeFileName("report.pdf"), "report.pdf");
 * assert.throws(() => safeFileName("../etc/passwd"));
 * ```
 */
export function safeFileName(name: string): string {
  const problem = name === ""
    ? "is empty"
    : name === "." || name === ".."
    ? "is a relative directory"
    : name.length > MAX_FILE_NAME_LENGTH
    ? `is longer than ${MAX_FILE_NAME_LENGTH} characters`
    : /[/\\]/.test(name)
    ? "contains a path separator"
    // deno-lint-ignore no-control-regex
    : /[\u0000-\u001f\u007f]/.test(name)
    ? "contains a control character"
    : /^[A-Za-z]:/.test(name)
    ? "has a drive prefix"
    : undefined;
  if (problem) {
    throw new HttpError(400, `Cannot use file name: it ${problem}`);
  }
  return name;
}
