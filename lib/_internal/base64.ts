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
  return padded ? text : withoutPadding(text);
}

/**
 * `text` without its trailing `=`: a loop from the end, where `/=+$/` tried
 * a match at every `=` of a run and failed each time it was not the end
 * (100,000 of them then a letter took 4 s).
 */
function withoutPadding(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0x3d) end--;
  return end === text.length ? text : text.slice(0, end);
}

/** Decodes padded, unpadded and URL-safe base64; SyntaxError otherwise. */
export function decodeBase64(text: string): Uint8Array {
  let normalized = withoutPadding(
    text.trim().replace(/-/g, "+").replace(/_/g, "/"),
  );
  if (!/^[A-Za-z0-9+/]*$/.test(normalized) || normalized.length % 4 === 1) {
    throw new SyntaxError(`Cannot decode base64: invalid input`);
  }
  normalized += "=".repeat((4 - (normalized.length % 4)) % 4);
  const binary = atob(normalized);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
