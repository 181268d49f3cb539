// gRPC-Web content types (doc/PROTOCOL-WEB.md): the binary format, and the
// text format ("-text"), the same frames in base64 (see text.ts).

/** `application/grpc-web+proto`, sent for the binary codec. */
export const contentTypeProto = "application/grpc-web+proto";
/** `application/grpc-web+json`, sent for the JSON codec. */
export const contentTypeJson = "application/grpc-web+json";
/** `application/grpc-web-text+proto`: the binary codec, in base64. */
export const contentTypeTextProto = "application/grpc-web-text+proto";
/** `application/grpc-web-text+json`: the JSON codec, in base64. */
export const contentTypeTextJson = "application/grpc-web-text+json";

const pattern = /^application\/grpc-web(?:\+(proto|json))?[ \t]*(?:;.*)?$/i;
const anyPattern =
  /^application\/grpc-web(?:-text)?(?:\+(proto|json))?[ \t]*(?:;.*)?$/i;
// A media range of Accept that names the text format (parameters allowed).
const acceptText =
  /(?:^|,)[ \t]*application\/grpc-web-text(?:\+(?:proto|json))?[ \t]*(?:[;,]|$)/i;

/** Whether a content type is gRPC-Web's (binary or text). */
export function isGrpcWebContentType(value: string): boolean {
  return /^application\/grpc-web(?:-text)?(?:[+; \t]|$)/i.test(value);
}

/** Whether a content type is gRPC-Web's text format. */
export function isTextContentType(value: string | null): boolean {
  return value !== null &&
    /^application\/grpc-web-text(?:[+; \t]|$)/i.test(value);
}

/**
 * Whether an Accept header asks for the text format (`Accept:
 * application/grpc-web-text`, which doc/PROTOCOL-WEB.md has a client send
 * for a text-encoded response; Google's grpc-web sends it in text mode).
 */
export function acceptsText(accept: string | null): boolean {
  return accept !== null && acceptText.test(accept);
}

/** The codec named by a binary gRPC-Web content type, or undefined. */
export function parseContentType(
  value: string | null,
): "proto" | "json" | undefined {
  return codecOf(pattern, value);
}

/** The codec named by a gRPC-Web content type, binary or text, or undefined. */
export function parseAnyContentType(
  value: string | null,
): "proto" | "json" | undefined {
  return codecOf(anyPattern, value);
}

function codecOf(
  regexp: RegExp,
  value: string | null,
): "proto" | "json" | undefined {
  const match = value === null ? null : regexp.exec(value);
  if (match === null) return undefined;
  return match[1]?.toLowerCase() === "json" ? "json" : "proto";
}

/** The content type for a codec. */
export function contentType(codec: "proto" | "json"): string {
  return codec === "json" ? contentTypeJson : contentTypeProto;
}

/**
 * The content type of a text-format response for a codec: Google's
 * grpc-web reads a response as text when its type begins
 * `application/grpc-web-text`.
 */
export function textContentType(codec: "proto" | "json"): string {
  return codec === "json" ? contentTypeTextJson : contentTypeTextProto;
}
