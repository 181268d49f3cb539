// Small byte helpers for the duplex stream.

/** Joins `parts`, whose lengths add up to `length`, into one array. */
export function concatBytes(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

/** The index of the first `\n` in `bytes`, or -1. */
export function indexOfNewline(bytes: Uint8Array): number {
  return bytes.indexOf(0x0a);
}
