import { checkArgument } from "../_internal/arguments.ts";
import { HttpError } from "./http_error.ts";
import { TEMPORARY_EXTRA_BYTES, TEMPORARY_SUFFIX } from "./_temporary_file.ts";

/**
 * The longest name a file system takes, in bytes (ext4, XFS, btrfs, APFS and
 * NTFS all stop at 255 bytes or units), less what the atomic file sink adds
 * for its temporary file (`.` + name + `.` + a 36-character UUID +
 * `.partial`: 46 bytes), so a name that passes always fits, temporary file
 * included.
 */
const MAX_FILE_NAME_BYTES = 255 - TEMPORARY_EXTRA_BYTES;

// C0 controls, DEL and C1 controls.
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// Bidirectional embeddings, overrides and isolates: they make a name display
// as something else ("invoice\u202Efdp.exe" shows as "invoiceexe.pdf").
const BIDI = /[\u202a-\u202e\u2066-\u2069]/;
// Windows' device names, whatever the extension ("CON", "nul.txt", "COM¹"):
// opening one opens the device, so the upload would go nowhere or hang.
const DEVICE = /^(?:con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]) *(?:\.|$)/i;

/**
 * Checks a client-supplied file name before it is joined to an upload
 * directory: it must be a single, visible path segment that fits the file
 * system, so it can never escape that directory, hide, mislead or collide
 * with the receiver's temporary files. Refuses, with a 400
 * {@linkcode HttpError}:
 *
 * - an empty name, and names starting with `.` (dot files, `.` and `..`);
 * - any `/` or `\`, and a drive prefix such as `C:`;
 * - C0 and C1 control characters (NUL included) and DEL;
 * - bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069);
 * - unpaired surrogates (not encodable as UTF-8);
 * - Windows' device names (`CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`,
 *   `LPT0`–`LPT9`, with any extension) and names ending in a dot or a space
 *   (which Windows drops, so that `a.txt.` and `a.txt` are one file): the
 *   same rule on every system, so that a name's fate does not depend on the
 *   server's;
 * - names shaped like the atomic file sink's temporaries
 *   (`<name>.<uuid>.partial`);
 * - names over 209 UTF-8 bytes ("name too long"): 255, the file system's
 *   limit, less the 46 bytes the temporary file's name adds.
 *
 * @param name The name the client sent.
 * @returns The same name, when it is safe.
 * @throws {HttpError} 400 when the name is refused.
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
  checkArgument(
    typeof name === "string",
    "use file name",
    "the name",
    "a string",
    name,
  );
  const problem = name === ""
    ? "it is empty"
    : name.startsWith(".")
    ? "it starts with a dot (a relative directory or a hidden file)"
    : /[/\\]/.test(name)
    ? "it contains a path separator"
    : CONTROL.test(name)
    ? "it contains a control character"
    : BIDI.test(name)
    ? "it contains a bidirectional override"
    : !isWellFormed(name)
    ? "it contains an unpaired surrogate"
    : /^[A-Za-z]:/.test(name)
    ? "it has a drive prefix"
    : DEVICE.test(name)
    ? "it is a Windows device name"
    : /[. ]$/.test(name)
    ? "it ends in a dot or a space"
    : TEMPORARY_SUFFIX.test(name)
    ? "it is shaped like a temporary upload file"
    : undefined;
  if (problem) {
    throw new HttpError(400, `Cannot use file name: ${problem}`);
  }
  const bytes = new TextEncoder().encode(name).byteLength;
  if (bytes > MAX_FILE_NAME_BYTES) {
    throw new HttpError(
      400,
      `Cannot use file name: name too long (${bytes} UTF-8 bytes; at most ${MAX_FILE_NAME_BYTES})`,
    );
  }
  return name;
}

function isWellFormed(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
      i++;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      return false;
    }
  }
  return true;
}
