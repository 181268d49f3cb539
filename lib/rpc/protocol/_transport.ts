// What the three client transports share: their options, resolved and
// checked once, and the Transport they make; each protocol adds only its
// request headers (request_header.ts) and its response validation
// (validate_response.ts).

import {
  checkFunction,
  checkHeadersOption,
  checkOneOf,
} from "../../_internal/arguments.ts";
import { codeFromHttpStatus } from "./_codes.ts";
import { isEncodingHeader } from "./_protocol_headers.ts";
import { quote } from "./_quote.ts";
import { parseUrl } from "../../http/_url.ts";
import { quoteBody } from "../../http/_client_error.ts";
import {
  checkCompression,
  checkCompressions,
  type Compression,
} from "./_compression.ts";
import { COMPRESS_MIN_BYTES, MAX_MESSAGE_BYTES } from "./_defaults.ts";
import { createFetchClient } from "../client/create_fetch_client.ts";
import { RpcError } from "../rpc_error.ts";
import type {
  CallOptions,
  Transport,
  TransportCall,
  TransportOptions,
} from "../client/transport.ts";
import type { MethodDefinition } from "../define_service.ts";
import type { Protocol } from "../server/implement_service.ts";
import { type ClientCallInit, startClientCall } from "./_client_call.ts";
import type { HttpClient } from "../universal.ts";
import { checkMax, checkNumber } from "../../_internal/limits.ts";
import { checkFetchCall } from "./_fetch_support.ts";

export interface ResolvedTransportOptions {
  baseUrl: string;
  httpClient: HttpClient;
  codec: "proto" | "json";
  sendCompression: Compression | null;
  acceptCompression: readonly Compression[];
  compressMinBytes: number;
  maxMessageBytes: number;
  headers: HeadersInit | undefined;
}

export function resolveTransportOptions(
  options: TransportOptions,
): ResolvedTransportOptions {
  const what = "create transport";
  const baseUrl = String(options.baseUrl).replace(/\/+$/, "");
  if (options.fetch !== undefined && options.httpClient !== undefined) {
    throw new TypeError(
      `Cannot ${what}: give fetch or httpClient, not both`,
    );
  }
  // Checked here, not at the first call (a fetch or an httpClient that is
  // no function, headers no Headers takes).
  checkFunction(what, "fetch", options.fetch);
  checkFunction(what, "httpClient", options.httpClient);
  checkHeadersOption(what, options.headers);
  // Over fetch, a URL fetch can send to (an httpClient of one's own may
  // take any: an in-process one, say): absolute, or relative in a page.
  checkBaseUrl(what, baseUrl, options.httpClient === undefined);
  return {
    baseUrl,
    httpClient: readingWords(
      options.httpClient ?? createFetchClient({ fetch: options.fetch }),
    ),
    codec: options.codec === undefined
      ? "proto"
      : checkOneOf(what, "codec", options.codec, ["proto", "json"]),
    sendCompression: options.sendCompression === undefined
      ? null
      : checkCompression(what, "sendCompression", options.sendCompression),
    acceptCompression: checkCompressions(what, options.acceptCompression),
    compressMinBytes: checkMax(
      what,
      "compressMinBytes",
      options.compressMinBytes ?? COMPRESS_MIN_BYTES,
    ),
    maxMessageBytes: checkMax(
      what,
      "maxMessageBytes",
      options.maxMessageBytes ?? MAX_MESSAGE_BYTES,
    ),
    headers: options.headers,
  };
}

/**
 * Throws a TypeError unless `baseUrl` is an http(s) URL for fetch (when
 * `forFetch`), or has a query or a fragment (whatever the client: each
 * call's path is appended to it, `createHttp2Client`'s too).
 */
function checkBaseUrl(what: string, baseUrl: string, forFetch: boolean): void {
  const url = parseUrl(baseUrl);
  if (
    forFetch && (url === undefined ||
      (url.protocol !== "http:" && url.protocol !== "https:"))
  ) {
    throw new TypeError(
      `Cannot ${what}: baseUrl must be an http: or https: URL${
        url === undefined ? " (or, in a page, relative to it)" : ""
      }, got ${quote(baseUrl)}`,
    );
  }
  if (url !== undefined) checkNoQueryOrFragment(what, url, baseUrl);
}

/**
 * Throws a TypeError if a transport's parsed `baseUrl` (given as `text`)
 * has a query or a fragment: the method path is appended to it, which a
 * query or a fragment would take in ("/rpc?tenant=a/pkg.Service/Method"),
 * and every call would fail UNIMPLEMENTED. Tested on the href: an empty
 * query or fragment ("/rpc?") is one too.
 */
export function checkNoQueryOrFragment(
  what: string,
  url: URL,
  text: string,
): void {
  if (/[?#]/.test(url.href)) {
    throw new TypeError(
      `Cannot ${what}: baseUrl must have no query or fragment (the method path is appended to it; send values in headers), got ${
        quote(text)
      }`,
    );
  }
}

/**
 * Merges transport and call headers, without those describing the body's
 * encoding or length: the transport sets them from its options (a
 * caller's `content-encoding`, forwarded from another request, say, would
 * misdescribe the body, and an `accept-encoding` would ask for what the
 * client cannot read).
 */
function callHeaders(
  resolved: ResolvedTransportOptions,
  options: CallOptions,
): Headers {
  const headers = new Headers();
  const add = (value: string, key: string) => {
    if (!isEncodingHeader(key)) headers.set(key, value);
  };
  new Headers(resolved.headers).forEach(add);
  new Headers(options.headers).forEach(add);
  return headers;
}

/**
 * An error for a response whose HTTP status is not 200, with the server's
 * words where {@linkcode readingWords} read them (a router's 404 said only
 * "HTTP status 404", not which path it did not serve).
 */
export function httpStatusError(status: number, headers: Headers): RpcError {
  return new RpcError(
    codeFromHttpStatus(status),
    `Cannot read response: HTTP status ${status}${SAID.get(headers) ?? ""}`,
    { metadata: headers },
  );
}

/**
 * The server's words in an answer that is no RPC's, by its headers: read
 * by the HTTP client before the protocol's checks, which are synchronous
 * and pass the headers to {@linkcode httpStatusError}.
 */
const SAID = new WeakMap<Headers, string>();

/**
 * `client`, reading the server's words ({@linkcode quoteBody}: at most
 * 1 KiB, no HTML page, nothing after 2 s) in an answer that carries no RPC
 * status, which each protocol fails with the HTTP status alone, its body
 * unread: not 200, no `grpc-status`, no Connect error JSON, and in no
 * content coding (the fetch client drops the header of one fetch decoded;
 * a gzip body's bytes are no words).
 */
function readingWords(client: HttpClient): HttpClient {
  return async (request) => {
    const response = await client(request);
    const { headers } = response;
    const coding = headers.get("content-encoding")?.trim();
    if (
      response.status !== 200 && !headers.has("grpc-status") &&
      !headers.get("content-type")?.startsWith("application/json") &&
      (!coding || /^identity$/i.test(coding))
    ) {
      SAID.set(
        headers,
        await quoteBody(new Response(response.body, { headers })),
      );
    }
    return response;
  };
}

/**
 * Throws if the timeout is no number of milliseconds (TypeError for text,
 * RangeError if not finite). A zero or negative timeout, a deadline that
 * has already passed, is no mistake of the caller's (a handler passing on
 * what is left of its own deadline): the call starts, and fails with
 * `DeadlineExceeded` at once (startClientCall), of whatever kind.
 */
function checkTimeout(options: CallOptions): void {
  const { timeoutMs } = options;
  // Text ("1000", from the environment) is a TypeError that shows it.
  if (timeoutMs !== undefined) {
    checkNumber("start call", "timeoutMs", timeoutMs);
  }
  if (timeoutMs !== undefined && !Number.isFinite(timeoutMs)) {
    throw new RangeError(
      `Cannot start call: timeoutMs must be a finite number of milliseconds, got ${
        typeof timeoutMs === "number" ? timeoutMs : typeof timeoutMs
      }`,
    );
  }
}

/** What a protocol adds to a call: its headers and how it reads responses. */
export type ProtocolCall<I, O> = Pick<
  ClientCallInit<I, O>,
  | "headers"
  | "validateResponse"
  | "endFlag"
  | "decodeEnd"
  | "readTrailers"
  | "missingEnd"
  | "bare"
>;

/** Makes a transport for `protocol` from its per-call parts. */
export function createTransport(
  protocol: Protocol,
  options: TransportOptions,
  parts: <I, O>(
    method: MethodDefinition<I, O>,
    resolved: ResolvedTransportOptions,
    callOptions: CallOptions,
    headers: Headers,
  ) => ProtocolCall<I, O>,
): Transport {
  const resolved = resolveTransportOptions(options);
  return {
    protocol,
    call<I, O>(
      method: MethodDefinition<I, O>,
      callOptions: CallOptions = {},
    ): TransportCall<I, O> {
      checkTimeout(callOptions);
      if (options.httpClient === undefined) {
        checkFetchCall(
          method,
          options.allowHalfDuplex ?? false,
          resolved.baseUrl,
        );
      }
      return startClientCall({
        httpClient: resolved.httpClient,
        url: resolved.baseUrl + method.path,
        method,
        codecName: resolved.codec,
        options: callOptions,
        sendCompression: resolved.sendCompression,
        compressMinBytes: resolved.compressMinBytes,
        maxMessageBytes: resolved.maxMessageBytes,
        ...parts(
          method,
          resolved,
          // A timeout of zero or less sends no request (the call fails at
          // once), and no header could say it.
          callOptions.timeoutMs === undefined || callOptions.timeoutMs > 0
            ? callOptions
            : { ...callOptions, timeoutMs: undefined },
          callHeaders(resolved, callOptions),
        ),
      });
    },
  };
}
