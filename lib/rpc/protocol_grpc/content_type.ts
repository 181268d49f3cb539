// gRPC content types: application/grpc, application/grpc+proto,
// application/grpc+json (doc/PROTOCOL-HTTP2.md).

/** `application/grpc+proto`, sent for the binary codec. */
export const contentTypeProto = "application/grpc+proto";
/** `application/grpc+json`, sent for the JSON codec. */
export const contentTypeJson = "application/grpc+json";

const pattern = /^application\/grpc(?:\+(proto|json))?[ \t]*(?:;.*)?$/i;

/** Whether a content type is gRPC's, whatever its codec. */
export function isGrpcContentType(value: string): boolean {
  return /^application\/grpc(?:[+; \t]|$)/i.test(value);
}

/** The codec named by a gRPC content type, or undefined if unsupported. */
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
