// Base64 without node:buffer, for header values and metadata: one encoder
// and one decoder for every layer.

/**
 * Standard base64 of `bytes`. `padded` keeps the trailing `=` (structured
 * field byte sequences, RFC 8941, need it); gRPC and Connect binary metadata
 * are sent unpadded, as their specifications prefer.
 */
export function encodeBase64(bytes: Uint8Array, padded = true): string {
  let binary = "";
  for (let i = 0; i < bytes.byteLength; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  const text = btoa(binary);
  return padded ? text : text.replace(/=+$/, "");
}

/** Decodes padded, unpadded and URL-safe base64; SyntaxError otherwise. */
export function decodeBase64(text: string): Uint8Array {
  let normalized = text.trim().replace(/-/g, "+").replace(/_/g, "/")
    .replace(/=+$/, "");
  if (!/^[A-Za-z0-9+/]*$/.test(normalized) || normalized.length % 4 === 1) {
    throw new SyntaxError(`Cannot decode base64: invalid input`);
  }
  normalized += "=".repeat((4 - (normalized.length % 4)) % 4);
  const binary = atob(normalized);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
