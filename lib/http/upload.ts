import {
  type ProgressCallback,
  ProgressStream,
} from "../streams/progress_stream.ts";
import { formatDigestHeader } from "./digest_header.ts";
import { hasXhr, xhrUpload } from "./_xhr_upload.ts";
import { checkProgress } from "../streams/progress_stream.ts";
import {
  cannotStreamRequests,
  checkRequestStreams,
  explainStreamingRefusal,
} from "./_browser_streaming.ts";
import { checkBody } from "./_client_body.ts";
import { resolveHttpUrl } from "./_url.ts";
import { checkFunction } from "../_internal/arguments.ts";
import { checkUploadOptions } from "./_upload_options.ts";
import { checkMax } from "../_internal/limits.ts";
import { failureOf } from "../_internal/message_of.ts";
import {
  isBrowser,
  isBun,
  isDeno,
  isWorkers,
} from "../_internal/user_agent.ts";

/** What {@linkcode upload} can send. */
export type UploadBody = ReadableStream<Uint8Array> | Blob | Uint8Array;

/** Options for {@linkcode upload}. */
export interface UploadOptions {
  /**
   * The body's media type. Defaults to the Blob's `type`, or
   * `application/octet-stream`.
   */
  contentType?: string;
  /**
   * The body's size, when it is a stream whose size is known. Sent as
   * `Content-Length` where the runtime's fetch honours it (Deno's fetch
   * always sends a stream chunked), and passed to `onProgress`.
   */
  contentLength?: number;
  /**
   * Called with `(bytesSent, total)` as the body streams out. In a browser
   * page a Blob or bytes are then sent with `XMLHttpRequest`, whose upload
   * progress works on every protocol (Chromium cannot stream a fetch body
   * over HTTP/1.1), unless `fetch` is given. The final count is reported
   * exactly once, on every path. What it throws ends the upload: the
   * promise rejects with that error, on every runtime. Under Workers a
   * stream body needs `contentLength` (or a `Content-Length` header) for
   * it: the upload is refused with a `TypeError` otherwise, since workerd
   * would end the body cleanly if the stream failed, and the server would
   * take a cut body for a whole one. In a browser whose fetch cannot stream
   * a request body (Firefox, WebKit), a Blob or bytes that go by fetch (`fetch` is
   * given, or there is no XMLHttpRequest, as in a service worker) are sent
   * whole, since a progress stream would reach the server as the text
   * "[object ReadableStream]" (Firefox) or be refused (WebKit); fetch tells nothing of an upload's bytes as
   * they go, so `onProgress` is then called once, when the response
   * arrives: with `(total, total)` for a 2xx answer (the server took the
   * body), else with `(0, total)` (how much went before a refusal is not
   * known, and none is claimed).
   */
  onProgress?: ProgressCallback;
  /**
   * How often `onProgress` is called at most, in milliseconds.
   *
   * @default {100}
   */
  progressIntervalMs?: number;
  /**
   * The SHA-256 of the body, if known in advance: sent as
   * `Content-Digest: sha-256=:...:` so the receiver can verify it (RFC 9530).
   */
  sha256?: Uint8Array;
  /** Aborts the upload. */
  signal?: AbortSignal;
  /**
   * The request method.
   *
   * @default {"POST"}
   */
  method?: string;
  /** More request headers. */
  headers?: HeadersInit;
  /**
   * Whether a page sends its cookies and HTTP authentication with the
   * upload (fetch's `credentials`): `"include"` sends them to another
   * origin too (its server must answer `Access-Control-Allow-Credentials:
   * true` and name the page's origin), also with `onProgress`, through
   * XMLHttpRequest's `withCredentials`. There `"omit"` cannot leave out a
   * same-origin page's own cookies (XMLHttpRequest always sends them).
   *
   * @default {"same-origin"}
   */
  credentials?: "omit" | "same-origin" | "include";
  /**
   * The fetch to use; for h2c under Deno, pass one bound to a
   * `Deno.HttpClient`:
   * `(input, init) => fetch(input, { ...init, client })`.
   *
   * @default {globalThis.fetch}
   */
  fetch?: typeof fetch;
}

/**
 * Sends a file, a Blob or any byte stream as a streaming request body and
 * resolves with the response. The body is never held in memory: a Blob (such
 * as `openFile` from `@sluice/streams/fs`) is read as it is sent, a stream
 * is piped. With a known size it sends `Content-Length`; with `onProgress`
 * it reports bytes as they leave; `signal` aborts the transfer. Outside a
 * browser a redirect comes back as the response, not followed (unless a
 * `fetch` of yours is given): followed, a 301, 302 or 303 turned the upload
 * into a GET without its body, and Bun sent a file again as an empty body.
 * A network error (a refused connection, an untrusted certificate) rejects
 * with a `TypeError` that names the reason, the runtime's error as its
 * `cause`; an abort with the signal's reason. In a browser whose fetch
 * cannot stream a request body (Firefox, which would send the text
 * "[object ReadableStream]" in its place, or WebKit, which refuses it), a
 * `ReadableStream` body is
 * refused with a `TypeError` before anything is sent: upload a Blob or a
 * Uint8Array there.
 *
 * @param url Where to send the body.
 * @param body The bytes to send.
 * @param options Content type, size, progress, digest and cancellation.
 * @returns The server's response.
 *
 * @example Upload a file with progress
 * ```ts ignore
 * import { upload } from "@sluice/streams/http";
 * import { openFile } from "@sluice/streams/fs";
 *
 * const file = await openFile("./report.pdf", { type: "application/pdf" });
 * const response = await upload("http://127.0.0.1:9090/stream/receiver", file, {
 *   onProgress: (sent, total) => console.log(`${sent} / ${total}`),
 * });
 * console.log(await response.text()); // File Received!
 * ```
 */
export async function upload(
  url: string | URL,
  body: UploadBody,
  options: UploadOptions = {},
): Promise<Response> {
  const {
    method = "POST",
    onProgress,
    progressIntervalMs,
    sha256,
    signal,
    fetch: fetchImpl = globalThis.fetch,
  } = options;
  const target = resolveHttpUrl("upload", url);
  checkBody("upload", body, true);
  const credentials = checkUploadOptions("upload", options);
  checkFunction("upload", "fetch", options.fetch);
  if (options.contentLength !== undefined) {
    checkMax("upload", "contentLength", options.contentLength);
  }
  const headers = new Headers(options.headers);
  const blobType = body instanceof Blob ? body.type : "";
  // contentType, else the caller's own header, else the Blob's type.
  headers.set(
    "content-type",
    options.contentType ?? headers.get("content-type") ??
      (blobType || "application/octet-stream"),
  );
  const size = body instanceof ReadableStream
    ? options.contentLength
    : body instanceof Blob
    ? body.size
    : body.byteLength;
  if (size !== undefined) headers.set("content-length", String(size));
  if (sha256) {
    headers.set("content-digest", formatDigestHeader({ "sha-256": sha256 }));
  }

  // ProgressStream's checks, for both paths, the option named as given.
  if (onProgress) {
    checkProgress(onProgress, progressIntervalMs ?? 100, "progressIntervalMs");
  }
  // workerd ends a subrequest's body cleanly when the source of a stream
  // made in JavaScript fails (the pipe through ProgressStream makes one):
  // sent chunked, a client's cut upload reached the receiver as a whole
  // body and was stored (3 MiB of a cut upload, committed). With a length
  // the receiver sees a short body; without one, no way of counting the
  // bytes kept the failure (a tee() of the native stream did not), so such
  // an upload is refused (docs/known-runtime-issues.md (r)).
  if (
    onProgress && body instanceof ReadableStream && size === undefined &&
    !headers.has("content-length") && isWorkers()
  ) {
    throw new TypeError(
      "Cannot upload: under Workers a stream of unknown length with onProgress would reach the server whole even when its source fails (known-runtime-issues.md (r)): give its contentLength, or upload without onProgress",
    );
  }
  // A browser whose fetch cannot stream a request body (Firefox) sends one
  // as the text "[object ReadableStream]", answered 201 and stored: a stream
  // is refused, and a Blob or bytes with onProgress that go by fetch (not
  // by XMLHttpRequest, below) are sent whole, without a ProgressStream.
  if (body instanceof ReadableStream) {
    checkRequestStreams(
      "upload",
      "upload a Blob or a Uint8Array, which goes whole, with progress by XMLHttpRequest",
    );
  }
  const whole = onProgress !== undefined && !(body instanceof ReadableStream) &&
    cannotStreamRequests();
  // In a browser page, progress comes from XMLHttpRequest: Chromium cannot
  // stream a fetch body over HTTP/1.1 (see _xhr_upload.ts).
  if (
    onProgress && !options.fetch && !(body instanceof ReadableStream) &&
    hasXhr() && isBrowser()
  ) {
    return await xhrUpload(
      url,
      body instanceof Blob ? body : new Blob([body as Uint8Array<ArrayBuffer>]),
      {
        method,
        headers,
        onProgress,
        progressIntervalMs: progressIntervalMs ?? 100,
        total: size!,
        signal,
        withCredentials: credentials === "include",
      },
    );
  }

  let requestBody: BodyInit;
  // What onProgress threw, which ends the upload: the upload rejects with
  // it on every runtime (Deno's fetch rejected with "fetch failed", the
  // callback's error only its cause).
  let progressFailed: { error: unknown } | undefined;
  // Under Deno, ended once the server has answered a refusal: Deno's fetch
  // resolved with an early 413 and went on reading the caller's stream to
  // its end and sending it (512 MiB of a 100-byte limit), onProgress
  // reporting it all after the upload had resolved. The request body is
  // ended, not failed (a failed one failed the answer's body too, on every
  // runtime), which cancels the caller's stream. (Node's fetch stops reading
  // a stream without cancelling it, and fails the answer for a body cut
  // short of its Content-Length; Bun's cancels it once the answer is read.)
  let endBody: (() => void) | undefined;
  const ender = () =>
    new TransformStream<Uint8Array, Uint8Array>({
      start(controller) {
        endBody = () => {
          try {
            controller.terminate();
          } catch {
            // Already ended.
          }
        };
      },
    });
  const deno = isDeno();
  if (onProgress && !whole) {
    const stream = body instanceof ReadableStream
      ? body
      : body instanceof Blob
      ? body.stream()
      : new Blob([body as Uint8Array<ArrayBuffer>]).stream();
    const report: typeof onProgress = (sent, total) => {
      try {
        onProgress(sent, total);
      } catch (error) {
        progressFailed ??= { error };
        throw error;
      }
    };
    // With the signal: an abort cancels the caller's stream and stops the
    // progress (Node's fetch read a body to its end after an abort).
    const progressed = stream.pipeThrough(
      new ProgressStream(report, {
        total: size,
        intervalMs: progressIntervalMs,
      }),
      { signal },
    );
    requestBody = deno ? progressed.pipeThrough(ender()) : progressed;
  } else if (
    body instanceof ReadableStream && (deno || signal !== undefined) &&
    !isBun() && !isWorkers()
  ) {
    // An abort, or under Deno a refusal, must cancel the caller's stream:
    // Node's fetch (undici) never cancels a stream body, and Deno's only
    // for an abort before the answer (after an early 413, the whole body
    // was read and sent). The pipe cancels it. Bun's fetch does so itself;
    // workerd's keeps the length it knows of a body it made (a request's,
    // an R2 object's), which a pipe loses (sent chunked, an origin that
    // needs a length refuses it).
    requestBody = body.pipeThrough(ender(), { signal });
  } else {
    requestBody = body as BodyInit;
  }
  // A redirect comes back as the response, as uploadFile's does, outside a
  // page: fetch turns a POST through a 301, 302 or 303 into a GET without
  // the body, whose answer (a 201 of nothing stored) resolved the upload;
  // and Bun's, following a 307 or 308, sent a disk-backed Blob (a file
  // from openFile) again as an empty body. In a page a redirect is the
  // browser's to follow (it shows none).
  const init: RequestInit & { duplex: "half" } = {
    method,
    headers,
    body: requestBody,
    signal,
    duplex: "half",
  };
  if (!options.fetch && !isBrowser()) init.redirect = "manual";
  if (credentials !== undefined) init.credentials = credentials;
  let response: Response;
  try {
    response = await fetchImpl(url, init);
  } catch (error) {
    if (progressFailed) throw progressFailed.error;
    // The signal's reason, not fetch's own AbortError (WebKit's, whatever
    // the reason).
    if (signal?.aborted) throw signal.reason;
    const explained = requestBody instanceof ReadableStream
      ? explainStreamingRefusal(
        error,
        target,
        "upload",
        "; a Blob or a Uint8Array goes whole, with progress by XMLHttpRequest",
      )
      : error;
    if (explained !== error || !(error instanceof TypeError)) throw explained;
    // A network error: Deno's and Node's fetch say only "fetch failed", the
    // refused connection or the untrusted certificate in the cause.
    throw new TypeError(`Cannot upload: ${failureOf(error)}`, { cause: error });
  }
  if (whole) {
    // The one report of a body sent whole: fetch does not say how much of
    // it went before an answer other than 2xx.
    try {
      onProgress!(response.ok ? size! : 0, size!);
    } catch (error) {
      progressFailed = { error };
    }
  }
  if (progressFailed) {
    // A server that answered before the body failed: the upload still
    // ends with what onProgress threw, as XMLHttpRequest's path has it.
    await response.body?.cancel().catch(() => {});
    throw progressFailed.error;
  }
  // A refusal (or a redirect) is final: what is left of the body is not
  // sent. The answer's own body stays readable.
  if (deno && response.status >= 300) endBody?.();
  return response;
}
