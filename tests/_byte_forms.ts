// multipart/form-data bodies written as byte strings (one char per byte),
// as a browser sends a form from a page in a legacy encoding: for the tests
// of names and values in a form's charset (tests/multipart_legacy_names.test.ts,
// tests/multipart_field_charset.test.ts).

import assert from "node:assert/strict";

/** A byte string (one char per byte) as its bytes. */
export function bytesOf(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(text, (c) => {
    assert.ok(c.charCodeAt(0) < 0x100, "a byte string");
    return c.charCodeAt(0);
  });
}

/** UTF-8 text as a byte string. */
export function utf8Bytes(text: string): string {
  return String.fromCharCode(...new TextEncoder().encode(text));
}

/**
 * A multipart body with `boundary` from byte-string part texts (headers
 * CRLF CRLF body).
 */
export function formBody(
  boundary: string,
  parts: string[],
): Uint8Array<ArrayBuffer> {
  let text = "";
  for (const part of parts) text += `--${boundary}\r\n${part}\r\n`;
  return bytesOf(`${text}--${boundary}--\r\n`);
}

/** A field part, its value a byte string, with a Content-Type if given. */
export function field(
  name: string,
  value: string,
  contentType?: string,
): string {
  const type = contentType === undefined
    ? ""
    : `\r\nContent-Type: ${contentType}`;
  return `Content-Disposition: form-data; name="${name}"${type}\r\n\r\n${value}`;
}

/** A text/plain file part, its names and data byte strings. */
export function file(name: string, filename: string, data: string): string {
  return `Content-Disposition: form-data; name="${name}"; filename="${filename}"\r\nContent-Type: text/plain\r\n\r\n${data}`;
}
