// A bound on metadata that travels in a body (Connect's EndStreamResponse,
// gRPC-Web's trailer frame), where no HTTP limit applies: each runtime's
// `Headers.append` slows down as a list grows (80,000 distinct names took
// 10 s under Deno, 15 s under Bun), so 1 MiB of trailer lines blocked a
// client's event loop for 28-37 s.

import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";

/**
 * The most metadata read from a body, counted as HTTP/2 counts a header
 * list (RFC 9113, SETTINGS_MAX_HEADER_LIST_SIZE): name, value and 32 bytes
 * a field. Twice serveHttp2's default `maxHeaderListBytes`.
 */
export const MAX_METADATA_BYTES = 64 * 1024;

/** Counts fields read from a body against MAX_METADATA_BYTES. */
export class MetadataLimit {
  #bytes = 0;
  readonly #what: string;

  /** `what`: the action the error names ("decode gRPC-Web trailers"). */
  constructor(what: string) {
    this.#what = what;
  }

  /** Counts one field; `ResourceExhausted` past the bound. */
  add(name: string, value: string): void {
    this.count(name.length + value.length + 32);
  }

  /** Counts `bytes` of fields; `ResourceExhausted` past the bound. */
  count(bytes: number): void {
    this.#bytes += bytes;
    if (this.#bytes > MAX_METADATA_BYTES) {
      throw new RpcError(
        Code.ResourceExhausted,
        `Cannot ${this.#what}: metadata over ${MAX_METADATA_BYTES} bytes (name, value and 32 bytes a field)`,
      );
    }
  }
}
