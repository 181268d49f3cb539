import { checkArgument, checkDigestBytes } from "../_internal/arguments.ts";
import { decodeBase64, encodeBase64 } from "../_internal/base64.ts";
import { dictionaryMembers } from "./_structured_fields.ts";

const KEY = /^[a-z*][a-z0-9_\-.*]*$/;
const BYTE_SEQUENCE = /^:([A-Za-z0-9+/]*={0,2}):$/;

/**
 * Parses an RFC 9530 `Content-Digest` or `Repr-Digest` header value: a
 * structured-field dictionary of algorithm names to byte sequences, such as
 * `sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:`. Parameters are
 * ignored, and so are bare keys (the boolean true). RFC 9530 digests are byte
 * sequences, so a member whose value is anything else is malformed: it is
 * not skipped, because a skipped `sha-256` would skip the integrity check.
 *
 * @param value The header value.
 * @returns A map from lower-case algorithm name to digest bytes.
 * @throws {SyntaxError} If the value is not a well-formed dictionary of byte
 *   sequences.
 *
 * @example Read a SHA-256 digest
 * ```ts
 * import { parseDigestHeader } from "@sluice/streams/http";
 *
 * const digests = parseDigestHeader("sha-256=:AAECAw==:, sha-512=:AA==:");
 * console.log(digests.get("sha-256")); // Uint8Array(4) [0, 1, 2, 3]
 * ```
 */
export function parseDigestHeader(value: string): Map<string, Uint8Array> {
  checkArgument(
    typeof value === "string",
    "parse digest header",
    "the value",
    "a string",
    value,
    value === null ? " (a missing header: check headers.get()'s result)" : "",
  );
  const result = new Map<string, Uint8Array>();
  if (value.trim() === "") return result;
  const members = dictionaryMembers(value);
  if (members === undefined) {
    throw new SyntaxError("Cannot parse digest header: unterminated string");
  }
  for (const member of members) {
    const [item] = member.split(";", 1);
    const eq = item.indexOf("=");
    const key = (eq === -1 ? item : item.slice(0, eq)).trim();
    if (!KEY.test(key)) {
      throw new SyntaxError(`Cannot parse digest header: bad key "${key}"`);
    }
    if (eq === -1) continue; // a bare key is the boolean true: not a digest
    const match = BYTE_SEQUENCE.exec(item.slice(eq + 1).trim());
    if (!match) {
      throw new SyntaxError(
        `Cannot parse digest header: value of "${key}" is not a byte sequence (:base64:)`,
      );
    }
    try {
      result.set(key, decodeBase64(match[1]));
    } catch (cause) {
      throw new SyntaxError(
        `Cannot parse digest header: bad base64 for "${key}"`,
        { cause },
      );
    }
  }
  return result;
}

/**
 * Formats digests as an RFC 9530 `Content-Digest` / `Repr-Digest` value.
 *
 * @param digests Algorithm names (such as `"sha-256"`) and their digests.
 * @returns The header value.
 *
 * @example Send a Content-Digest
 * ```ts
 * import { formatDigestHeader } from "@sluice/streams/http";
 *
 * console.log(formatDigestHeader({ "sha-256": new Uint8Array([0, 1, 2, 3]) }));
 * // sha-256=:AAECAw==:
 * ```
 */
export function formatDigestHeader(
  digests: Record<string, Uint8Array>,
): string {
  return Object.entries(digests)
    .map(([name, bytes]) => {
      // Text (hex) was written as an empty digest.
      checkDigestBytes("format digest header", name, bytes);
      return `${name}=:${encodeBase64(bytes)}:`;
    })
    .join(", ");
}
