// Per-message compression, said once for every protocol and both sides:
// the defaults, the names in grpc-encoding / connect-content-encoding /
// content-encoding, compressing a message into a frame, decompressing one
// within maxMessageBytes, and choosing the response compression with the
// HTTP layer's q-value negotiator.

import type { Compression } from "../../http/compression.ts";
import {
  checkCompression,
  checkCompressionList,
  decompressBytes,
  negotiateCompression,
} from "../../http/_compression.ts";
import { concatBytes } from "../../_internal/bytes.ts";
import { Code } from "../code.ts";
import type { Frame } from "../wire/frame_decoder.ts";
import type { Codec } from "../wire/message_type.ts";
import { RpcError } from "../rpc_error.ts";
import { ACCEPT_COMPRESSION } from "./_defaults.ts";
import { quote } from "./_quote.ts";

export type { Compression };

/** Checks a `sendCompression` or `acceptCompression` value. */
export { checkCompression };

/** Checks an `acceptCompression` list. */
export function checkCompressions(
  what: string,
  value: readonly Compression[] | undefined,
): readonly Compression[] {
  return checkCompressionList(what, value, ACCEPT_COMPRESSION);
}

/**
 * The compression a peer names in an encoding header, if it is one of
 * `accepted`; `null` for none or identity. Otherwise throws an RpcError with
 * `code`: `Unimplemented` on servers (the spec's answer to an unsupported
 * grpc-encoding), `Internal` on clients.
 */
export function readCompression(
  value: string | null,
  accepted: readonly Compression[],
  header: string,
  code: Code,
): Compression | null {
  if (value === null || value === "" || value === "identity") return null;
  const found = accepted.find((c) => c === value);
  if (found !== undefined) return found;
  throw new RpcError(
    code,
    `Cannot decompress message: unsupported ${header} ${
      quote(value)
    }; supported: ${[...accepted, "identity"].join(", ")}`,
  );
}

/**
 * The compression a server uses on its response: the first of its
 * `accepted` that the client's accept header allows (q-values honoured, one
 * negotiator for HTTP and RPC). Without an accept header, the client
 * accepts what it sent.
 */
export function negotiateResponseCompression(
  accept: string | null,
  request: Compression | null,
  accepted: readonly Compression[],
): Compression | null {
  return negotiateCompression(accept ?? request, accepted) ?? null;
}

/** The value of an accept-encoding header for `accepted`. */
export function acceptHeader(accepted: readonly Compression[]): string {
  return accepted.join(",");
}

/**
 * Encodes a message into a frame: compressed (flag 1) with `compression`
 * when it has at least `minBytes` bytes and compression makes it smaller,
 * as it is otherwise.
 */
export function messageToFrame<T>(
  codec: Codec<T>,
  compression: Compression | null,
  minBytes: number,
  maxBytes: number,
): (value: T) => Frame | Promise<Frame> {
  // Messages that compression did not shrink (random or already compressed
  // bytes) make the call skip it for the next ones, twice as many after each
  // further miss (at most 64), and try again: a fresh gzip per message costs
  // 50-200 µs for 1 KiB (Deno's CompressionStream), wasted on such streams.
  let skip = 0;
  let backoff = 0;
  return (value) => {
    const data = codec.encode(value);
    if (compression === null || data.byteLength < minBytes) {
      return { flags: 0, data };
    }
    if (skip > 0 && data.byteLength <= maxBytes) {
      skip--;
      return { flags: 0, data };
    }
    // The limit is the message's, as received messages are checked after
    // decompression: checked on the compressed frame, it let a message over
    // it through whenever the peer accepted compression.
    if (data.byteLength > maxBytes) {
      throw new RpcError(
        Code.ResourceExhausted,
        `Cannot send message: size ${data.byteLength} exceeds maxMessageBytes ${maxBytes} (before compression)`,
      );
    }
    // Sent as it is when compression does not make it smaller (random or
    // already compressed bytes): gzip's few bytes more put a message just
    // under maxMessageBytes over it, for the peer and the frame checks.
    return compressMessage(compression, data).then((c) => {
      if (c.byteLength < data.byteLength) {
        backoff = 0;
        return { flags: 1, data: c };
      }
      skip = backoff = Math.min(Math.max(backoff * 2, 1), 64);
      return { flags: 0, data };
    });
  };
}

/** Compresses one message. */
export async function compressMessage(
  compression: Compression,
  data: Uint8Array,
): Promise<Uint8Array> {
  const stream = new CompressionStream(
    compression,
  ) as unknown as TransformStream<
    Uint8Array,
    Uint8Array
  >;
  const writer = stream.writable.getWriter();
  writer.write(data).catch(() => {});
  writer.close().catch(() => {});
  // A reader, not `for await`: WebKit's ReadableStream is not
  // async-iterable (every call with sendCompression failed in WebKit,
  // "undefined is not a function"). Read to its end, this stream of the
  // call's own keeps its lock (see releaseUnlessEnded).
  const reader = stream.readable.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    chunks.push(read.value);
    total += read.value.byteLength;
  }
  return concatBytes(chunks, total);
}

/**
 * Decompresses one message, refusing more than `maxMessageBytes` of output
 * (`ResourceExhausted`) before more memory is spent; corrupt data is a
 * SyntaxError, which the decoder reports with its own code.
 */
export function decompressMessage(
  compression: Compression,
  data: Uint8Array,
  maxMessageBytes: number,
): Promise<Uint8Array> {
  return decompressBytes(data, compression, maxMessageBytes, {
    tooLarge: () =>
      new RpcError(
        Code.ResourceExhausted,
        `Cannot decompress message: size exceeds maxMessageBytes ${maxMessageBytes}`,
      ),
    corrupt: (cause) =>
      new SyntaxError(
        `Cannot decompress message: invalid ${compression} data`,
        { cause },
      ),
  });
}
