// Connect content types (connectrpc.com/docs/protocol): streaming
// application/connect+proto|json; unary application/proto|json.

/** The streaming content type for a codec. */
export function contentType(codec: "proto" | "json"): string {
  return `application/connect+${codec}`;
}

/** The unary content type for a codec. */
export function unaryContentType(codec: "proto" | "json"): string {
  return `application/${codec}`;
}

const streaming = /^application\/connect\+(proto|json)[ \t]*(?:;.*)?$/i;
const unary = /^application\/(proto|json)[ \t]*(?:;.*)?$/i;

/** Whether a content type is Connect streaming's (any codec). */
export function isConnectStreamContentType(value: string): boolean {
  return /^application\/connect\+/i.test(value);
}

/** Whether a content type is Connect unary's (proto or json). */
export function isConnectUnaryContentType(value: string): boolean {
  return unary.test(value);
}

/** The codec named by a streaming content type, or undefined. */
export function parseContentType(
  value: string | null,
): "proto" | "json" | undefined {
  const match = value === null ? null : streaming.exec(value);
  return match === null ? undefined : match[1].toLowerCase() as "proto";
}

/** The codec named by a unary content type, or undefined. */
export function parseUnaryContentType(
  value: string | null,
): "proto" | "json" | undefined {
  const match = value === null ? null : unary.exec(value);
  return match === null ? undefined : match[1].toLowerCase() as "proto";
}
