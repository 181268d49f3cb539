// Steps every protocol's server side shares: request compression and
// response compression negotiation.

import { Code } from "./code.ts";
import {
  type Compression,
  findCompression,
  negotiateCompression,
} from "./_compression.ts";
import { RpcError } from "./rpc_error.ts";

/** The compression named by a request's encoding header, or an error. */
export function requestCompression(
  name: string | null,
  enabled: readonly Compression[],
  headerName: string,
): Compression | null {
  if (name === null || name === "" || name === "identity") return null;
  const found = findCompression(name);
  if (found !== undefined && enabled.includes(found)) return found;
  throw new RpcError(
    Code.Unimplemented,
    `Cannot decompress request: unsupported ${headerName} "${name}"; supported: ${
      [...enabled.map((c) => c.name), "identity"].join(", ")
    }`,
  );
}

/** The compression for the response, given the client's accept header. */
export function responseCompression(
  accept: string | null,
  request: Compression | null,
  enabled: readonly Compression[],
): Compression | null {
  // Without an accept header, the client accepts what it sent.
  return negotiateCompression(accept ?? request?.name ?? null, enabled);
}

/** The value of an accept-encoding header for the enabled compressions. */
export function acceptEncoding(enabled: readonly Compression[]): string {
  return enabled.map((c) => c.name).join(",");
}

/** An empty byte stream, for requests without a body. */
export function emptyBody(): ReadableStream<Uint8Array> {
  return new ReadableStream({ start: (c) => c.close() });
}
