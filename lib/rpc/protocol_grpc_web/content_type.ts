// gRPC-Web content types (doc/PROTOCOL-WEB.md). The base64 "-text" variant
// is not supported.

/** `application/grpc-web+proto`, sent for the binary codec. */
export const contentTypeProto = "application/grpc-web+proto";
/** `application/grpc-web+json`, sent for the JSON codec. */
export const contentTypeJson = "application/grpc-web+json";

const pattern = /^application\/grpc-web(?:\+(proto|json))?(?:;.*)?$/i;

/** Whether a content type is gRPC-Web's (binary or text). */
export function isGrpcWebContentType(value: string): boolean {
  return /^application\/grpc-web(?:-text)?(?:[+;]|$)/i.test(value);
}

/** The codec named by a gRPC-Web content type, or undefined if unsupported. */
export function parseContentType(
  value: string | null,
): "proto" | "json" | undefined {
  const match = value === null ? null : pattern.exec(value);
  if (match === null) return undefined;
  return match[1]?.toLowerCase() === "json" ? "json" : "proto";
}

/** The content type for a codec. */
export function contentType(codec: "proto" | "json"): string {
  return codec === "json" ? contentTypeJson : contentTypeProto;
}
