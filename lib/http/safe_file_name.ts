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
// Windows' device names, whatever the extension ("CON", "nul.txt", "COM¹",
// "CONIN$"): opening one opens the device, so the upload would go nowhere or
// hang.
const DEVICE =
  /^(?:con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$|clock\$) *(?:\.|$)/i;
// What Windows refuses in a name; `:` also opens an alternate data stream
// ("a.txt::$DATA" is a.txt, "report:v2.pdf" a stream of "report").
const RESERVED = /[<>:"|?*]/;
// Format characters (zero-width space and joiners, marks of direction, the
// soft hyphen, U+FEFF), line and paragraph separators: unseen, they make two
// names read alike ("report\u200B.pdf" and "report.pdf").
const FORMAT = /[\p{Cf}\p{Zl}\p{Zp}]/u;
// The format characters a name may hold, taken out before FORMAT is tried:
// - a zero-width joiner or non-joiner after a visible character past ASCII
//   (a letter, a mark such as a virama) and before something: how emoji
//   sequences ("👨‍👩‍👧") and Persian, Indic and Malayalam words are
//   written ("അവന്‍.jpg", "فایل‌2.txt"); after an ASCII letter, or at the
//   end, it only hides;
// - an emoji tag sequence, the flags of England, Scotland and Wales
//   (U+1F3F4, tags U+E0020-U+E007E, U+E007F);
// - the prepended concatenation marks, which are drawn (the Arabic number
//   signs U+0600-U+0605, the end of ayah U+06DD, U+070F, U+0890-U+0891,
//   U+08E2, U+110BD, U+110CD).
const ALLOWED_FORMAT =
  /(?<=[^\p{ASCII}\p{C}\p{Z}])[\u200c\u200d](?=[^\u200c\u200d])|\u{1F3F4}[\u{E0020}-\u{E007E}]+\u{E007F}|[\u0600-\u0605\u06dd\u070f\u0890\u0891\u08e2\u{110BD}\u{110CD}]/gu;
// What shows as nothing: white space, the Hangul fillers and the braille
// blank, which are letters and symbols but are drawn empty.
const BLANK = /[\p{White_Space}\u115f\u1160\u3164\uffa0\u2800]/u;
const ALL_BLANK = /^[\p{White_Space}\u115f\u1160\u3164\uffa0\u2800]*$/u;

/**
 * Checks a client-supplied file name before it is joined to an upload
 * directory: it must be a single, visible path segment that fits the file
 * system, so it can never escape that directory, hide, mislead or collide
 * with the receiver's temporary files. The same rule holds on every system,
 * so that a name's fate does not depend on the server's. Refuses, with a 400
 * {@linkcode HttpError} whose message names the problem:
 *
 * - an empty name, and names starting with `.` (dot files, `.` and `..`);
 * - any `/` or `\`, and a drive prefix such as `C:`;
 * - C0 and C1 control characters (NUL included) and DEL;
 * - bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069);
 * - other format characters (Unicode's Cf: zero-width space, marks of
 *   direction such as U+200E, the soft hyphen, U+FEFF) and line and
 *   paragraph separators (U+2028, U+2029), the message naming the code
 *   point; a zero-width joiner or non-joiner passes after a visible
 *   character past ASCII and before another character (emoji sequences,
 *   Persian, Indic and Malayalam words), as do emoji tag sequences (the
 *   flags of England, Scotland and Wales) and the format characters that
 *   are drawn (the Arabic number signs U+0600–U+0605 and U+06DD);
 * - unpaired surrogates (not encodable as UTF-8);
 * - the characters Windows refuses in a name, `<>:"|?*` (a `:` also opens
 *   an alternate data stream: `a.txt::$DATA` is `a.txt`); a client that
 *   escapes `"` as `%22` in a multipart file name, as browsers and curl do,
 *   sends `%22`, which passes as it is;
 * - Windows' device names (`CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`,
 *   `LPT0`–`LPT9`, `CONIN$`, `CONOUT$`, `CLOCK$`, with any extension) and
 *   names ending in a dot or a space (which Windows drops, so that `a.txt.`
 *   and `a.txt` are one file) or in any other blank character (U+00A0,
 *   U+3000, the Hangul filler U+3164, the braille blank U+2800);
 * - names with nothing visible before their first dot (only white space,
 *   Hangul fillers or braille blanks: `\u3164`, `\u3000.txt`);
 * - names shaped like the atomic file sink's temporaries
 *   (`<name>.<uuid>.partial`);
 * - names over 209 UTF-8 bytes ("name too long"): 255, the file system's
 *   limit, less the 46 bytes the temporary file's name adds.
 *
 * A name is not normalized, nor refused for its normal form: `é` as one
 * code point (NFC) and as `e` + U+0301 (NFD, as macOS may spell it) both
 * pass, unchanged, and are two files on most Linux file systems but one on
 * APFS. Normalize it first (`name.normalize("NFC")`) where one spelling
 * should make one file.
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
    : FORMAT.test(name.replace(ALLOWED_FORMAT, ""))
    ? unseen(FORMAT.exec(name.replace(ALLOWED_FORMAT, ""))![0])
    : !isWellFormed(name)
    ? "it contains an unpaired surrogate"
    : /^[A-Za-z]:/.test(name)
    ? "it has a drive prefix"
    : RESERVED.test(name)
    ? reserved(RESERVED.exec(name)![0])
    : DEVICE.test(name)
    ? "it is a Windows device name"
    : /[. ]$/.test(name)
    ? "it ends in a dot or a space"
    : ALL_BLANK.test(name)
    ? "it is made only of blank characters"
    : ALL_BLANK.test(name.split(".", 1)[0])
    ? "it has only blank characters before its extension"
    : BLANK.test(name.at(-1)!)
    ? "it ends in a blank character"
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

/** Why an unseen character is refused, naming it. */
function unseen(char: string): string {
  const code = char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
  return `it contains U+${code}, ${
    /\p{Cf}/u.test(char)
      ? "an invisible format character"
      : "a line or paragraph separator"
  }`;
}

/** Why a character Windows refuses in a name is refused. */
function reserved(char: string): string {
  return `it contains '${char}', which Windows refuses in a file name (as any of <>:"|?*)${
    char === ":" ? "; a colon would name an alternate data stream" : ""
  }`;
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
