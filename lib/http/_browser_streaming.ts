// What a browser's fetch does with a streamed request body. Chromium streams
// one only over HTTP/2 and says no more than "Failed to fetch" when asked to
// over an http: URL (docs/browser.md): the clients that stream one say why.
// Firefox cannot stream one at all: it sends the stream as the text
// "[object ReadableStream]" (23 bytes, with a Content-Length) and nothing
// fails; nor can WebKit (Safari's engine), whose fetch rejects one with
// NotSupportedError, over HTTPS/h2 too. So the clients check before
// sending. Deno, Bun, Node and Workers
// stream request bodies: nothing is checked there.

import { isBrowser } from "../_internal/user_agent.ts";

/** The `Request` the feature check last ran with, and its answer. */
let checked: { request: typeof Request; streams: boolean } | undefined;

/**
 * Whether fetch can send a ReadableStream body: the well-known check (a
 * fetch that supports it reads the `duplex` option and adds no
 * Content-Type, which it would for a body it turned into text). Run once
 * per `Request` constructor: a page has one. A browser's answer only: Deno's
 * and Bun's `Request` do not read `duplex` either, though their fetch
 * streams a body, so it is asked only where `isBrowser()` (see
 * {@linkcode cannotStreamRequests}).
 */
export function supportsRequestStreams(): boolean {
  const request = globalThis.Request;
  if (checked?.request !== request) {
    let streams: boolean;
    let duplexRead = false;
    try {
      const hasType = new request("http://localhost/", {
        body: new ReadableStream(),
        method: "POST",
        get duplex() {
          duplexRead = true;
          return "half";
        },
      } as RequestInit).headers.has("content-type");
      streams = duplexRead && !hasType;
    } catch {
      streams = false;
    }
    checked = { request, streams };
  }
  return checked.streams;
}

/**
 * Throws, before anything is sent, in a browser whose fetch cannot stream a
 * request body: a TypeError saying so (`Cannot <what>: ...; <instead>`).
 */
export function checkRequestStreams(what: string, instead: string): void {
  if (!cannotStreamRequests()) return;
  throw new TypeError(
    `Cannot ${what}: this browser's fetch cannot stream a request body (Firefox's would send the text "[object ReadableStream]" in its place, WebKit's refuses it); ${instead}`,
  );
}

/** Whether this is a browser whose fetch cannot stream a request body. */
export function cannotStreamRequests(): boolean {
  return isBrowser() && !supportsRequestStreams();
}

/**
 * `error`, or for a fetch a browser refused with a streamed body to an
 * http: URL, a TypeError saying why (`Cannot <what>: ... <instead>`).
 */
export function explainStreamingRefusal(
  error: unknown,
  url: URL,
  what: string,
  instead: string,
): unknown {
  return error instanceof TypeError && url.protocol === "http:" && isBrowser()
    ? new TypeError(
      `Cannot ${what}: ${error.message} (a browser streams a request body only over HTTP/2, an https: URL${instead})`,
      { cause: error },
    )
    : error;
}
