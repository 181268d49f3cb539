import { failureOf } from "../_internal/message_of.ts";
import { fetchHalfDuplex } from "./_half_duplex.ts";
import { checkRequestStreams } from "./_browser_streaming.ts";

/**
 * Options for {@linkcode fetchDuplex}: a `RequestInit` whose body is a stream,
 * plus the `fetch` to use.
 */
export interface FetchDuplexOptions extends Omit<RequestInit, "body"> {
  /** The request body, sent as it is produced. */
  body: ReadableStream<Uint8Array>;
  /**
   * The `fetch` implementation, for tests or custom transports (for example
   * one bound to a `Deno.HttpClient` for h2c via `init.client`).
   *
   * @default {globalThis.fetch}
   */
  fetch?: typeof fetch;
}

/**
 * Starts a request whose body streams while the response is read: the
 * returned promise resolves as soon as the response headers arrive, even
 * though the request body is still open. This is full duplex over HTTP/1.1
 * with Deno, Bun and Node fetch (all need `duplex: "half"`, which is set
 * here) and over h2 in Deno.
 *
 * Browsers only stream request bodies over h2 and then only half duplex; use
 * a WebSocket there. In a browser whose fetch cannot stream a request body
 * at all (Firefox, which would send the text "[object ReadableStream]" in
 * its place, or WebKit, which refuses it), it rejects with a `TypeError` before anything is sent. Bun's
 * fetch sends the request only once the body has produced its first chunk:
 * write before awaiting the response.
 *
 * A network error (a refused connection, a certificate not trusted) whose
 * message does not say why (Deno's and Node's fetch say only "fetch
 * failed", the reason in their error's cause) rejects with a `TypeError`
 * that adds it (`fetch failed (... tcp connect error: Connection refused
 * ...)`), the runtime's error as its `cause`; an abort rejects with the
 * signal's reason, and any other error as it is.
 *
 * @param input The URL or request to send.
 * @param options The request options; `body` is required.
 * @returns The response, available before the request body has ended.
 *
 * @example Send lines while reading the replies
 * ```ts ignore
 * import { fetchDuplex } from "@sluice/streams/http";
 *
 * const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
 * const writer = writable.getWriter();
 * // Start the request, then write: Bun's fetch sends the request only once
 * // the body has its first chunk, so do not await the response first.
 * const responsePromise = fetchDuplex("http://127.0.0.1:8000/echo", {
 *   method: "POST",
 *   body: readable,
 * });
 * await writer.write(new TextEncoder().encode("ping\n"));
 * const reader = (await responsePromise).body!.getReader();
 * console.log(await reader.read()); // the reply, while the request is open
 * await writer.close();
 * ```
 */
export async function fetchDuplex(
  input: string | URL | Request,
  options: FetchDuplexOptions,
): Promise<Response> {
  checkRequestStreams(
    "send duplex request",
    "for full duplex use websocketDuplex",
  );
  try {
    return await fetchHalfDuplex(input, options);
  } catch (error) {
    const signal = options.signal ??
      (input instanceof Request ? input.signal : undefined);
    // The signal's reason, not fetch's own AbortError (WebKit's, whatever
    // the reason).
    if (signal?.aborted) throw signal.reason;
    if (!(error instanceof TypeError)) throw error;
    // A network error: Deno's and Node's fetch say only "fetch failed", the
    // refused connection or the untrusted certificate in the cause. Said in
    // fetch's words; any other TypeError (a bad URL) as it is.
    const message = failureOf(error);
    if (message === error.message) throw error;
    throw new TypeError(message, { cause: error });
  }
}
