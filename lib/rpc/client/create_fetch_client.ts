import { fetchDecoded } from "../../http/_compression.ts";
import { checkFunction } from "../../_internal/arguments.ts";
import { emptyStream } from "../../_internal/bytes.ts";
import { fetchHalfDuplex } from "../../http/_half_duplex.ts";
import { cannotStreamRequests } from "../../http/_browser_streaming.ts";
import { parseUrl, redirectStatus, shownUrl } from "../../http/_url.ts";
import { isBrowser } from "../../_internal/user_agent.ts";
import { WEBSOCKET_HINT } from "../protocol/_fetch_support.ts";
import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import type {
  HttpClient,
  UniversalClientRequest,
  UniversalClientResponse,
} from "../universal.ts";

/** Options for {@linkcode createFetchClient}. */
export interface FetchClientOptions {
  /**
   * The `fetch` to use (for example one bound to a `Deno.HttpClient` for
   * h2c).
   *
   * @default {globalThis.fetch}
   */
  fetch?: typeof fetch;
}

/**
 * An {@linkcode HttpClient} on `fetch`. A complete request body (unary and
 * server-streaming calls) is sent with a Content-Length, so it works through
 * HTTP/1.1 proxies and in browsers; a streamed one is full duplex: it
 * streams while the response is read, over HTTP/1.1 (Deno, Bun, Node) and
 * HTTP/2. `fetch` cannot read HTTP trailers, so this client serves gRPC-Web
 * and Connect, not native gRPC.
 *
 * @param options The `fetch` to use.
 * @returns The HTTP client.
 *
 * @example A Connect transport on a custom fetch
 * ```ts ignore
 * import { createConnectTransport, createFetchClient } from "@sluice/streams/rpc";
 *
 * // Transports take `fetch` themselves; an HttpClient of your own can
 * // wrap this one (to log each request, say).
 * const fetchClient = createFetchClient({ fetch: myFetch });
 * const transport = createConnectTransport({
 *   baseUrl: "http://127.0.0.1:9090",
 *   httpClient: (request) => {
 *     console.log(request.url);
 *     return fetchClient(request);
 *   },
 * });
 * ```
 */
export function createFetchClient(
  options: FetchClientOptions = {},
): HttpClient {
  checkFunction("create fetch client", "fetch", options.fetch);
  const { fetch: fetchImpl = globalThis.fetch } = options;
  return async (
    request: UniversalClientRequest,
  ): Promise<UniversalClientResponse> => {
    // Not followed: fetch turned a redirected POST into a GET (an
    // UNKNOWN "HTTP status 405" from the target), or could not send a
    // stream again (UNAVAILABLE, inviting retries that never succeed), as
    // Connect-ES refuses them too.
    const init = {
      method: request.method,
      headers: request.headers,
      signal: request.signal,
      redirect: "manual" as const,
    };
    // A GET has no body (Connect GET); a complete body goes as it is, with
    // a Content-Length (HTTP/1.1 proxies and browsers cannot stream one); a
    // stream goes full duplex, where fetch can send one: Firefox's would
    // send the text "[object ReadableStream]" (the transports refuse such
    // calls first, but not with an httpClient of the caller's).
    const body = request.body;
    if (
      request.method !== "GET" && !(body instanceof Uint8Array) &&
      cannotStreamRequests()
    ) {
      await body.cancel().catch(() => {});
      throw new RpcError(
        Code.Unimplemented,
        `Cannot send request to ${request.url} over fetch: this browser's fetch cannot stream a request body; ${WEBSOCKET_HINT}`,
      );
    }
    const response = request.method === "GET"
      ? await fetchImpl(request.url, init)
      : request.body instanceof Uint8Array
      ? await fetchImpl(request.url, {
        ...init,
        body: request.body as Uint8Array<ArrayBuffer>,
      })
      : await fetchHalfDuplex(request.url, {
        ...init,
        body: request.body,
        fetch: fetchImpl,
      }).catch((error) => {
        throw streamingRefusal(error, request.url);
      });
    // A 304 (to a Connect GET with a condition) is no redirect, and the
    // protocol refuses its status; a fetch of the caller's may follow one
    // all the same (`redirected`).
    if (
      response.type === "opaqueredirect" || response.redirected ||
      redirectStatus(response)
    ) {
      await response.body?.cancel().catch(() => {});
      throw redirected(response, request.url);
    }
    // fetch has decoded a Content-Encoding it knows (the body is then
    // identity); any other stays, for the protocol to decode or refuse.
    const headers = new Headers(response.headers);
    const encoding = headers.get("content-encoding");
    let responseBody = response.body ?? emptyStream();
    if (encoding !== null && fetchDecoded(encoding)) {
      // Unless a fetch of the caller's did not decode it (a mock that
      // calls a handler in the same process, as the `fetch` option
      // suggests): its bytes read as identity came out as a wrong message,
      // no error. Such a response has no URL (fetch gives every response
      // its own); its body then begins with its coding's header. A decoded
      // Connect body never begins with gzip's (1f 8b: no Protobuf field has
      // wire type 7, no JSON text begins with 0x1f); one in a response a
      // mock rebuilt from a fetched one may pass zlib's test (a Protobuf
      // message that begins with field 15), then fails to inflate: an
      // error, never a wrong message.
      const looksEncoded = response.url === ""
        ? ENCODED.get(encoding.trim().toLowerCase())
        : undefined;
      let encoded = false;
      if (looksEncoded !== undefined) {
        const peeked = await peek(responseBody, 2);
        responseBody = peeked.body;
        encoded = peeked.head.length === 2 && looksEncoded(peeked.head);
      }
      if (!encoded) headers.delete("content-encoding");
    }
    return {
      status: response.status,
      headers,
      body: responseBody,
      trailers: Promise.resolve(new Headers()),
    };
  };
}

/** A gzip member's ID1 ID2 (RFC 1952, 2.3.1). */
const isGzip = (head: Uint8Array) => head[0] === 0x1f && head[1] === 0x8b;

/**
 * The codings fetch may have decoded that this client decodes too, each with
 * a test of a body's first two bytes: still in that coding.
 */
const ENCODED = new Map<string, (head: Uint8Array) => boolean>([
  ["gzip", isGzip],
  ["x-gzip", isGzip], // which Bun's and browsers' fetch decode too
  // A zlib stream's CMF and FLG: method 8, window at most 32 KiB, the two
  // a multiple of 31 (RFC 1950, 2.2).
  ["deflate", (head) =>
    (head[0] & 0x0f) === 8 && (head[0] >> 4) <= 7 &&
    (head[0] * 256 + head[1]) % 31 === 0],
]);

/**
 * Reads up to `bytes` first bytes of `body` and gives it back whole. A read
 * that fails is the failure of the body given back, for whoever reads it
 * (the response's read, not its request).
 */
async function peek(
  body: ReadableStream<Uint8Array>,
  bytes: number,
): Promise<{ head: Uint8Array; body: ReadableStream<Uint8Array> }> {
  const reader = body.getReader();
  const read: Uint8Array[] = [];
  let held = 0;
  let end: { error: unknown } | "done" | undefined;
  while (held < bytes && end === undefined) {
    try {
      const next = await reader.read();
      if (next.done) end = "done";
      else {
        read.push(next.value);
        held += next.value.byteLength;
      }
    } catch (error) {
      end = { error };
    }
  }
  const head = new Uint8Array(Math.min(held, bytes));
  let at = 0;
  for (const chunk of read) {
    if (at === head.length) break;
    const part = chunk.subarray(0, head.length - at);
    head.set(part, at);
    at += part.byteLength;
  }
  return {
    head,
    body: new ReadableStream<Uint8Array>({
      async pull(controller) {
        const chunk = read.shift();
        if (chunk !== undefined) return controller.enqueue(chunk);
        if (end === "done") return controller.close();
        if (end !== undefined) return controller.error(end.error);
        const next = await reader.read();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      cancel: (reason) => reader.cancel(reason),
    }, { highWaterMark: 0 }),
  };
}

/**
 * The error of a call the server redirected: UNKNOWN, the code of an HTTP
 * status no protocol maps, naming where it went (its origin and path; a
 * page's fetch hides it).
 */
function redirected(response: Response, url: string): RpcError {
  const location = response.headers.get("location");
  const where = response.type === "opaqueredirect"
    ? "a redirect, where to the browser does not say"
    : response.redirected
    ? `to ${shownUrl(response.url)}, which answered ${response.status}`
    : `${response.status}${
      location === null ? "" : ` to ${shownUrl(location, url)}`
    }`;
  return new RpcError(
    Code.Unknown,
    `Cannot call ${
      shownUrl(url)
    }: the server redirected it (${where}); RPC calls are not redirected: give the transport the final URL as its baseUrl`,
  );
}

/**
 * A fetch with a streamed body that failed in a browser, said why it may
 * have: over `http:` a browser always refuses (it streams a request body
 * only over HTTP/2), over `https:` it does to a server that speaks only
 * HTTP/1.1. Any other error, or elsewhere, as it is.
 */
function streamingRefusal(error: unknown, url: string): unknown {
  const protocol = isBrowser() ? parseUrl(url)?.protocol : undefined;
  if (!(error instanceof TypeError)) return error;
  const why = protocol === "http:"
    ? "a browser streams a request body only over HTTP/2"
    : protocol === "https:"
    ? "if the server speaks only HTTP/1.1: a browser streams a request body only over HTTP/2"
    : undefined;
  return why === undefined
    ? error
    : new TypeError(`${error.message} (${why}; ${WEBSOCKET_HINT})`, {
      cause: error,
    });
}
