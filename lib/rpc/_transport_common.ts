// Shared pieces of the client transports.

import { Code } from "./code.ts";
import { codeFromHttpStatus } from "./_codes.ts";
import { type Compression, findCompression, gzip } from "./_compression.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./frame_decoder.ts";
import { createFetchClient } from "./create_fetch_client.ts";
import { RpcError } from "./rpc_error.ts";
import type { CallOptions, TransportOptions } from "./transport.ts";
import type { HttpClient } from "./universal.ts";

export interface ResolvedTransportOptions {
  baseUrl: string;
  httpClient: HttpClient;
  codec: "proto" | "json";
  sendCompression: Compression | null;
  acceptCompressions: readonly Compression[];
  compressMinBytes: number;
  maxMessageBytes: number;
  headers: HeadersInit | undefined;
}

export function resolveTransportOptions(
  options: TransportOptions,
): ResolvedTransportOptions {
  const baseUrl = String(options.baseUrl).replace(/\/+$/, "");
  return {
    baseUrl,
    httpClient: options.httpClient ?? createFetchClient(),
    codec: options.codec ?? "proto",
    sendCompression: options.sendCompression === undefined
      ? null
      : findCompression(options.sendCompression) ??
        (() => {
          throw new TypeError(
            `Cannot create transport: unsupported compression "${options.sendCompression}"`,
          );
        })(),
    acceptCompressions: options.acceptCompression === false ? [] : [gzip],
    compressMinBytes: options.compressMinBytes ?? 1024,
    maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    headers: options.headers,
  };
}

/** Merges transport and call headers. */
export function callHeaders(
  resolved: ResolvedTransportOptions,
  options: CallOptions,
): Headers {
  const headers = new Headers(resolved.headers);
  new Headers(options.headers).forEach((value, key) => headers.set(key, value));
  return headers;
}

/** The response compression named by a header, or an error. */
export function responseCompression(
  name: string | null,
  accepted: readonly Compression[],
  headerName: string,
): Compression | null {
  if (name === null || name === "" || name === "identity") return null;
  const found = accepted.find((c) => c.name === name);
  if (found) return found;
  throw new RpcError(
    Code.Internal,
    `Cannot read response: unsupported ${headerName} "${name}"`,
  );
}

/** An error for a response whose HTTP status is not 200. */
export function httpStatusError(status: number, headers: Headers): RpcError {
  return new RpcError(
    codeFromHttpStatus(status),
    `Cannot read response: HTTP status ${status}`,
    { metadata: headers },
  );
}

/** Throws if the deadline has already passed (a zero or negative timeout). */
export function checkTimeout(options: CallOptions): void {
  if (options.timeoutMs !== undefined && !(options.timeoutMs > 0)) {
    throw new RpcError(
      Code.DeadlineExceeded,
      `Cannot start call: timeout ${options.timeoutMs} ms has already passed`,
    );
  }
}
