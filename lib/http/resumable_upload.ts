import {
  failureOf,
  messageOf,
  withoutQueries,
} from "../_internal/message_of.ts";
import {
  checkFunction,
  checkOneOf,
  checkSignal,
} from "../_internal/arguments.ts";
import { checkBody } from "./_client_body.ts";
import { hiddenHeaderHint } from "./_exposed.ts";
import { redirectStatus, resolveUrl, shownUrl } from "./_url.ts";
import { HttpError } from "./http_error.ts";
import { answeredError, quoteBody } from "./_client_error.ts";
import { checkMax, checkTimerMs } from "../_internal/limits.ts";
import { IDLE_TIMEOUT_MS } from "./_defaults.ts";
import { encodeBase64 } from "../_internal/base64.ts";
import {
  checkHeaderValues,
  headerCanCarry,
  toUtf8Header,
} from "./_utf8_header.ts";
import { isBrowser } from "../_internal/user_agent.ts";
import { cannotStreamRequests } from "./_browser_streaming.ts";
import { IdleWatch } from "../_internal/idle_timeout.ts";
import { dictionaryMembers } from "./_structured_fields.ts";
import {
  DRAFT_INTEROP_VERSION,
  OFFSET_OCTET_STREAM,
  PARTIAL_UPLOAD,
  readBoolean,
  readInteger,
  TUS_VERSION,
} from "./resumable/_headers.ts";

/** What {@linkcode resumableUpload} can send: bytes it can re-read. */
export type ResumableUploadBody = Blob | Uint8Array;

/** Options for {@linkcode resumableUpload}. */
export interface ResumableUploadOptions {
  /**
   * The protocol: `"ietf"` (Resumable Uploads for HTTP,
   * draft-ietf-httpbis-resumable-upload, interop version 8: every request
   * says `Upload-Draft-Interop-Version: 8`) or `"tus"` (tus 1.0: every
   * request says `Tus-Resumable: 1.0.0`).
   *
   * @default {"ietf"}
   */
  protocol?: "ietf" | "tus";
  /**
   * The URL of an upload created earlier (saved from `onUploadUrl`): the
   * upload resumes from the offset the server reports instead of starting
   * again. One the server no longer has (404, 410) is created again, once,
   * and `onUploadUrl` gets the new URL.
   */
  uploadUrl?: string | undefined;
  /**
   * Called with the upload's URL as soon as the server created it, so an app
   * can persist it and resume after a restart. The URL is a capability:
   * store it like a password.
   */
  onUploadUrl?: (url: string) => void | Promise<void>;
  /**
   * Called with `(bytesAcknowledged, total)` after each acknowledged
   * request. What it throws fails the upload at once.
   */
  onProgress?: (acknowledged: number, total: number) => void;
  /**
   * The most bytes sent in one request: progress is reported once per
   * request. Each request costs a round trip and a new stream of the body
   * (about 0.1 s per request at 16 MiB on a loaded 2-core machine); a cut
   * streamed request loses only the bytes in flight, a cut `Blob` body (not
   * streamed) up to this many. An IETF server's `Upload-Limit` overrides it:
   * each request is lowered to its `max-append-size`, and one that does not
   * complete the upload is raised to its `min-append-size`.
   *
   * @default {67108864} (64 MiB) when requests are streamed
   *   (`streamRequests`), else 16777216 (16 MiB)
   */
  chunkBytes?: number;
  /**
   * Sends each request's bytes as a `ReadableStream` (`duplex: "half"`)
   * rather than as a `Blob` or bytes. A fetch that is given bytes it can
   * re-read may send a cut request again on a new connection by itself
   * (Deno's does): the server then refuses the copy with 409, after part of
   * it was sent for nothing, and only then does the client ask for the
   * offset. A streamed request fails at the cut instead. Browsers stream
   * request bodies only over HTTP/2 and later, so there it is off; turned on
   * in a browser for an http: URL, the upload is refused at once (a
   * `TypeError`), not retried until `maxRetries` runs out. A browser whose
   * fetch cannot stream a request body at all (Firefox, which would send the
   * text "[object ReadableStream]" in its place, or WebKit, which refuses it)
   * has it off even when it is
   * turned on: each request sends a slice of the Blob or bytes, as without
   * it (`chunkBytes` defaulting to 16 MiB).
   *
   * @default {true} outside browsers, `false` in them
   */
  streamRequests?: boolean;
  /**
   * Attempts after a failure (a cut connection, a 5xx, a 408, 409, 423 or
   * 429) that made no progress, before giving up; any progress resets the
   * count. A DNS failure is retried too (a device offline for a moment); a
   * TLS certificate the runtime refuses is not (it fails at once).
   *
   * @default {10}
   */
  maxRetries?: number;
  /**
   * The first wait before a retry, in milliseconds; it doubles on each
   * consecutive failure (with up to 50 % random jitter), up to
   * `maxRetryDelayMs`. The first retry after a cut connection goes at once
   * (a dropped link is usually back, and the server kept the bytes that
   * reached it); an answer such as 503 is waited for from the first retry.
   *
   * @default {500}
   */
  retryDelayMs?: number;
  /**
   * The longest wait before a retry, in milliseconds: it also caps the
   * wait a `429` or `503` asks for with `Retry-After` (seconds or an HTTP
   * date), which replaces the back-off for that retry when longer, with
   * up to 10 % random jitter (clients refused together come back apart;
   * one at or past the cap, below it).
   *
   * @default {30000}
   */
  maxRetryDelayMs?: number;
  /**
   * The longest a request may go without progress, in milliseconds: no
   * answer yet, and no body bytes taken by fetch for this long. Such a
   * request is abandoned (aborted) and counted as a cut connection: the
   * client asks the server for the offset and continues, within
   * `maxRetries`. A server or link that stalls (stops reading, never
   * answers) so costs at most `idleTimeoutMs` per attempt, and the upload
   * fails with an `HttpError` (503) whose `cause` names `idleTimeoutMs` once
   * retries run out: never an endless wait. Requests without a body and
   * streamed requests (`streamRequests`) are watched; a request sending a
   * Blob or bytes (the default in browsers) is not, since fetch does not
   * tell how far it got: only `signal` bounds it. `0` disables.
   *
   * @default {30000}
   */
  idleTimeoutMs?: number;
  /**
   * tus `Upload-Metadata`: keys not empty, without spaces, commas or control
   * characters (beyond ASCII, sent as UTF-8).
   */
  metadata?: Record<string, string>;
  /** More headers for every request. */
  headers?: HeadersInit;
  /** Aborts the upload; the upload on the server stays resumable. */
  signal?: AbortSignal;
  /**
   * The fetch to use.
   *
   * @default {globalThis.fetch}
   */
  fetch?: typeof fetch;
}

/** What {@linkcode resumableUpload} returns. */
export interface ResumableUploadResult {
  /** The upload's URL. */
  uploadUrl: string;
  /** The bytes the server acknowledged: the whole body. */
  bytes: number;
  /**
   * The server's answer to the request that completed the upload (the last
   * append, or the creation of an empty upload). Only when that answer was
   * lost (a cut connection, or an error answer without
   * `Upload-Complete: ?1`: a gateway's 5xx, with the origin maybe done), or
   * another client with the same upload URL completed the upload (a 400 to
   * an append), is it the answer of the offset request (`HEAD`, without a
   * body) that found the upload complete: the IETF draft lets a server
   * replay its final answer to a later append, which sluice's server does
   * not. An error answer that says `Upload-Complete: ?1` (the server's
   * application refused the finished upload) is thrown at once, never
   * followed by a `HEAD`.
   */
  response: Response;
}

/**
 * Uploads a Blob or bytes so that an interruption costs little: the client
 * creates an upload, sends the body in requests of up to `chunkBytes`, and
 * when a request is cut off or answered with 5xx (or 409/423), asks the
 * server for the upload's offset (`HEAD`) and continues from there: at once
 * after the first cut, then with bounded exponential back-off. Speaks the IETF draft
 * "Resumable Uploads for HTTP" by default and tus 1.0 with
 * `protocol: "tus"`. Progress counts bytes the server acknowledged, not
 * bytes handed to fetch. Works in Deno, Bun, Node and browsers.
 *
 * The upload is created with an empty request first, so its URL is known
 * (and given to `onUploadUrl`) before a body byte is sent: fetch cannot see
 * the draft's `104` interim response.
 *
 * @experimental
 * @param url Where to create the upload (the server's upload collection);
 *   in a page, relative to its location.
 * @param body The bytes to send.
 * @param options Protocol, resumption, progress, retries and cancellation.
 * @returns The upload's URL, its size and the final response.
 * @throws {HttpError} When the server refuses the upload (4xx), refuses the
 *   finished upload (an error answer with `Upload-Complete: ?1`, or one to
 *   the last append after which the upload is complete), announces an
 *   `Upload-Limit` `max-size` below the body (413, the upload deleted),
 *   answers an append or an offset request with a redirect
 *   (its 3xx, or 502 where fetch followed it: the answer is not the upload
 *   server's), or retries run out.
 * @throws {TypeError} When the runtime refuses the server's TLS certificate
 *   (untrusted, expired, for another host): at once, never retried.
 *
 * @example Upload a file that survives a flaky network
 * ```ts ignore
 * import { resumableUpload } from "@sluice/streams/http";
 * import { openFile } from "@sluice/streams/fs";
 *
 * const file = await openFile("./video.mp4");
 * const { uploadUrl } = await resumableUpload("https://example.com/uploads", file, {
 *   onUploadUrl: (url) => localStorage.setItem("video-upload", url),
 *   onProgress: (done, total) => console.log(`${done} / ${total}`),
 * });
 * console.log(uploadUrl);
 * ```
 */
export async function resumableUpload(
  url: string | URL,
  body: ResumableUploadBody,
  options: ResumableUploadOptions = {},
): Promise<ResumableUploadResult> {
  const {
    protocol = "ietf",
    maxRetries = 10,
    retryDelayMs = 500,
    maxRetryDelayMs = 30_000,
    idleTimeoutMs = IDLE_TIMEOUT_MS,
    signal,
    onProgress,
    onUploadUrl,
    streamRequests: streamOption = !isBrowser(),
  } = options;
  // A fetch that cannot stream a request body (Firefox's) sends the text
  // "[object ReadableStream]": each PATCH took 23 bytes of it as the
  // body's. The body can always be sliced instead.
  const streamRequests = streamOption && !cannotStreamRequests();
  const chunkBytes = options.chunkBytes ??
    (streamRequests ? 64 : 16) * 1024 * 1024;
  const doFetch = options.fetch ?? globalThis.fetch;
  checkSignal("upload", signal);
  checkFunction("upload", "fetch", options.fetch);
  checkFunction("upload", "onProgress", onProgress);
  checkFunction("upload", "onUploadUrl", onUploadUrl);
  checkMax("upload", "chunkBytes", chunkBytes);
  checkMax("upload", "maxRetries", maxRetries);
  checkTimerMs("upload", "retryDelayMs", retryDelayMs);
  checkTimerMs("upload", "maxRetryDelayMs", maxRetryDelayMs);
  checkTimerMs("upload", "idleTimeoutMs", idleTimeoutMs);
  if (chunkBytes === 0) {
    throw new RangeError("Cannot upload: chunkBytes must be at least 1");
  }
  const tus = checkOneOf("upload", "protocol", protocol, ["ietf", "tus"]) ===
    "tus";
  checkBody("upload", body, false);
  const total = body instanceof Blob ? body.size : body.byteLength;
  // Resolved once, before any request: a page passes a relative URL such as
  // "/uploads", and the upload's Location is resolved against it.
  const collection = resolveUrl("upload", url);
  if (
    streamRequests && !options.fetch && isBrowser() &&
    collection.protocol === "http:"
  ) {
    // Every PATCH would fail with "Failed to fetch", retried to the end.
    throw new TypeError(
      "Cannot upload: streamRequests needs HTTP/2, which a browser speaks only to an https: URL; over http: leave it off (each PATCH then sends a slice of the Blob)",
    );
  }

  // Checked before any request (the headers again at each): a header or
  // metadata key the runtime refuses is the caller's mistake, said at once,
  // not a cut connection retried for minutes.
  checkHeaderValues("upload", new Headers(options.headers));
  const metadataHeader = tus && options.metadata
    ? encodeMetadata(options.metadata)
    : undefined;

  /**
   * Runs a callback of the caller's: what it throws ends the upload at
   * once, never retried as a cut connection.
   */
  async function callback(run: () => void | Promise<void>): Promise<void> {
    try {
      await run();
    } catch (error) {
      throw new CallerFailure(error);
    }
  }
  const progress = async (acknowledged: number, response?: Response) => {
    if (onProgress === undefined) return;
    try {
      await callback(() => onProgress(acknowledged, total));
    } catch (error) {
      await response?.body?.cancel();
      throw error;
    }
  };
  const newUploadUrl = async (url: string) => {
    if (onUploadUrl !== undefined) await callback(() => onUploadUrl(url));
  };

  function headers(extra: Record<string, string>): Headers {
    // Read again for each request: a caller may change the Headers it gave
    // (a refreshed token) while the upload goes on; what it then gives
    // wrong is its own mistake, not a cut connection.
    let result: Headers;
    try {
      result = new Headers(options.headers);
      checkHeaderValues("upload", result);
    } catch (error) {
      throw new CallerFailure(error);
    }
    if (tus) result.set("tus-resumable", TUS_VERSION);
    else result.set("upload-draft-interop-version", DRAFT_INTEROP_VERSION);
    for (const [name, value] of Object.entries(extra)) result.set(name, value);
    return result;
  }

  async function request(
    target: string,
    method: string,
    extra: Record<string, string>,
    payload?: BodyInit,
  ): Promise<Response> {
    signal?.throwIfAborted();
    const init: RequestInit & { duplex?: "half" } = {
      method,
      headers: headers(extra),
      body: payload,
      signal,
      // Only the creation follows a redirect (a collection moved to https:
      // or to another host; its Location is resolved against where it
      // ended). Followed, an append's redirect to a proxy's sign-in page
      // got that page's 200, taken for the upload server's: the upload
      // resolved with its last bytes never stored. In a page a redirect
      // then comes back opaque (status 0), its target untold.
      redirect: method === "POST" ? "follow" : "manual",
    };
    const streamed = payload instanceof ReadableStream;
    // Required by fetch for a stream body.
    if (streamed) init.duplex = "half";
    if (idleTimeoutMs === 0 || (payload !== undefined && !streamed)) {
      return await doFetch(target, init);
    }
    // The idle rule: progress is an answer, or body bytes taken by fetch
    // (each chunk taken begins a new wait).
    const idle = new AbortController();
    const watch = new IdleWatch(idleTimeoutMs, () =>
      idle.abort(
        new DOMException(
          `Cannot upload: the ${method} request made no progress for ${idleTimeoutMs} ms (idleTimeoutMs)`,
          "TimeoutError",
        ),
      ));
    watch.begin();
    if (streamed) {
      init.body = payload.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            watch.begin();
            controller.enqueue(chunk);
          },
        }),
      );
    }
    init.signal = signal ? AbortSignal.any([signal, idle.signal]) : idle.signal;
    try {
      return await doFetch(target, init);
    } catch (error) {
      if (idle.signal.aborted && !signal?.aborted) throw idle.signal.reason;
      throw error;
    } finally {
      watch.stop();
    }
  }

  /** The error for `response`, `said` the server's words (quoteBody's). */
  function refuse(response: Response, what: string, said = ""): HttpError {
    return answeredError(
      response.status,
      `Cannot upload: the server answered ${response.status} to ${what}${
        response.redirected
          ? ` (redirected to ${shownUrl(response.url)}${
            what === CREATION ? `: ${POST_TURNED_GET}` : ""
          })`
          : ""
      }${response.status === 412 ? versionHint(response, tus) : ""}${said}`,
    );
  }

  let failures = 0;
  /**
   * Waits before a retry, or throws when retries ran out. A cut connection
   * (`cut`) after progress is retried at once; an answer whose
   * `Retry-After` asks for `retryAfter` ms is retried then, within
   * `maxRetryDelayMs`.
   */
  async function backOff(
    cause: unknown,
    cut = false,
    retryAfter?: number,
  ): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    if (failures >= maxRetries) {
      if (cause instanceof HttpError) throw cause;
      throw new HttpError(
        503,
        `Cannot upload: gave up after ${maxRetries} retries (maxRetries), the last: ${
          failureOf(cause)
        }`,
        { cause },
      );
    }
    const backoff = cut && failures === 0
      ? 0
      : Math.min(maxRetryDelayMs, retryDelayMs * 2 ** (failures - +cut)) *
        (0.5 + Math.random() / 2);
    // A Retry-After lengthens the wait, never shortens it: "0" (or a date
    // past by a client clock ahead of the server's) spent every retry in
    // milliseconds, where the back-off gave a brief outage a minute.
    let delay = retryAfter === undefined
      ? backoff
      : Math.min(maxRetryDelayMs, Math.max(retryAfter, backoff));
    if (retryAfter !== undefined) {
      // Clients refused together (a server at maxUploads) do not all come
      // back at once: up to a tenth more, within maxRetryDelayMs; a
      // Retry-After at or past the cap, up to a tenth less than the cap
      // (drawn past the cap and cut to it, half of them came back at the
      // same moment). Never less than the ask the cap allows, nor than the
      // back-off.
      const top = Math.min(maxRetryDelayMs, delay * 1.1);
      if (top > delay) delay += (top - delay) * Math.random();
      else if (retryAfter >= maxRetryDelayMs) {
        delay -= delay / 10 * Math.random();
      }
    }
    failures++;
    if (delay === 0) return;
    await new Promise<void>((resolve, reject) => {
      // The listener first: a timer is armed only once nothing can throw.
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, delay);
    });
  }

  // 429 as 503: a server (or a gateway's rate limit) that is busy now.
  const retryable = (status: number) =>
    status >= 500 || status === 409 || status === 423 || status === 408 ||
    status === 429;

  let offset = 0;
  let finalResponse: Response | undefined;

  /**
   * The IETF server's `Upload-Limit`, as announced by its creation, offset
   * and 413 answers: the strictest value of each (the draft says limits do
   * not tighten; taking the strictest, a server that says otherwise cannot
   * make the client go back and forth).
   */
  const limits: UploadLimits = {};
  function learnLimits(response: Response): void {
    const value = tus ? null : response.headers.get("upload-limit");
    const announced = value === null ? undefined : readUploadLimit(value);
    if (announced === undefined) return;
    for (const key of ["maxSize", "maxAppendSize"] as const) {
      const limit = announced[key];
      if (limit !== undefined) {
        limits[key] = Math.min(limit, limits[key] ?? limit);
      }
    }
    const least = announced.minAppendSize;
    if (least !== undefined) {
      limits.minAppendSize = Math.max(least, limits.minAppendSize ?? least);
    }
  }
  /** The bytes of the next append that does not complete the upload. */
  function appendBytes(): number {
    const { maxAppendSize, minAppendSize } = limits;
    const bytes = Math.max(chunkBytes, minAppendSize ?? 0);
    return Math.min(bytes, maxAppendSize ?? bytes);
  }
  /**
   * Stops an upload the announced limits leave no way to finish (as the
   * draft asks, the upload is deleted): a `max-size` below the body, or a
   * `max-append-size` of 0.
   */
  async function keepToLimits(target: string): Promise<void> {
    const { maxSize, maxAppendSize } = limits;
    let problem: string;
    if (maxSize !== undefined && maxSize < total) {
      problem =
        `the body's ${total} bytes exceed the server's Upload-Limit max-size=${maxSize}`;
    } else if (maxAppendSize === 0 && offset < total) {
      problem =
        "the server's Upload-Limit max-append-size=0 lets no byte be sent";
    } else return;
    let deletion = "the upload was deleted";
    try {
      const response = await request(target, "DELETE", {});
      await response.body?.cancel();
      const moved = redirectOf(response, "its DELETE", target);
      if (moved !== undefined) {
        deletion = `deleting the upload failed: ${moved}`;
      } else if (!response.ok) {
        deletion =
          `deleting the upload failed: its DELETE answered ${response.status}`;
      }
    } catch (error) {
      if (error instanceof CallerFailure) throw error.cause;
      if (signal?.aborted) throw signal.reason;
      deletion = `deleting the upload failed: ${failureOf(error)}`;
    }
    throw new HttpError(413, `Cannot upload: ${problem}; ${deletion}`);
  }

  /** Creates the upload (retrying as for any request); its URL. */
  async function create(): Promise<string> {
    for (;;) {
      try {
        const extra: Record<string, string> = tus
          ? { "upload-length": String(total) }
          : {
            "upload-complete": total === 0 ? "?1" : "?0",
            "upload-length": String(total),
          };
        if (metadataHeader !== undefined) {
          extra["upload-metadata"] = metadataHeader;
        }
        const response = await request(collection.href, "POST", extra);
        if (!response.ok) {
          const said = await quoteBody(response);
          if (!tus && completes(response)) {
            // The final answer of an empty upload: the server refused it,
            // and creating it again would not change that.
            throw refuse(response, CREATION, said);
          }
          if (!retryable(response.status)) {
            throw refuse(response, CREATION, said);
          }
          await backOff(
            refuse(response, CREATION, said),
            false,
            retryAfterMs(response),
          );
          continue;
        }
        const location = response.headers.get("location");
        if (!location && response.redirected) {
          // A redirect's target answered: a sign-in page, or the collection
          // moved with a 301, 302 or 303, its GET answered with a page.
          await response.body?.cancel();
          throw new HttpError(
            502,
            `Cannot upload: ${CREATION} was redirected to ${
              shownUrl(response.url)
            }, which answered ${response.status} without a Location, so no upload was created: a proxy's sign-in page, or the collection moved (${POST_TURNED_GET})`,
          );
        }
        if (!location) {
          await response.body?.cancel();
          throw new HttpError(
            502,
            "Cannot upload: the server created an upload without a Location" +
              hiddenHeaderHint(response, "Location"),
          );
        }
        // Where the creation ended: after a redirect (the collection moved
        // to https: or another host), not the URL it was sent to, or each
        // append went to the old place and was redirected in turn.
        const base = response.url || collection;
        if (!URL.canParse(location, base)) {
          await response.body?.cancel();
          throw new HttpError(
            502,
            "Cannot upload: the server created an upload with an invalid Location",
          );
        }
        const created = new URL(location, base).href;
        learnLimits(response);
        // Nothing to send: complete once created (a tus server completes an
        // empty upload at its creation; tus-js-client sends no PATCH).
        if (total === 0) finalResponse = response;
        else await response.body?.cancel();
        await keepToLimits(created);
        return created;
      } catch (error) {
        if (error instanceof CallerFailure) throw error.cause;
        // The signal's reason, not fetch's own AbortError (WebKit's,
        // whatever the reason).
        if (signal?.aborted) throw signal.reason;
        if (error instanceof HttpError) throw error;
        refuseCertificate(error);
        await backOff(error, true);
      }
    }
  }

  // Create the upload, or find where a stored one stands.
  let uploadUrl: string;
  // A stored upload the server no longer has (404, 410: expired or
  // deleted) is created again, once, from byte 0, as tus-js-client does:
  // else an app that stores the URL until success would fail on every try.
  let stored = options.uploadUrl !== undefined;
  if (options.uploadUrl !== undefined) {
    uploadUrl = resolveUrl("upload", options.uploadUrl).href;
  } else {
    uploadUrl = await create();
    // Outside create(): an error thrown by onUploadUrl (a full
    // localStorage) is the caller's, not a cut connection to retry with a
    // second upload.
    await onUploadUrl?.(uploadUrl);
  }
  let needOffset = options.uploadUrl !== undefined;
  /**
   * A 409 to an append: the offset moved (a cut request's bytes reached the
   * server after the offset was asked for) or another append holds the
   * upload. The offset is asked for at once; only when it shows no
   * progress does the next append wait (back-off).
   */
  let conflict: HttpError | undefined;
  /** An append's 400, until the offset says whether the upload is done. */
  let claimedComplete: HttpError | undefined;

  while (finalResponse === undefined) {
    try {
      if (needOffset) {
        const response = await request(uploadUrl, "HEAD", {});
        await response.body?.cancel();
        checkNotRedirected(response, "the offset request", uploadUrl);
        // An append refused with 400, then its upload gone: the 400 said
        // why (a digest that did not match, the upload deleted), not the
        // offset request's 404.
        if (
          claimedComplete &&
          (response.status === 404 || response.status === 410)
        ) throw claimedComplete;
        if (stored && (response.status === 404 || response.status === 410)) {
          stored = false;
          uploadUrl = await create();
          await newUploadUrl(uploadUrl);
          needOffset = false;
          continue;
        }
        if (!response.ok) {
          if (!retryable(response.status)) {
            throw refuse(response, "the offset request");
          }
          await backOff(
            refuse(response, "the offset request"),
            false,
            retryAfterMs(response),
          );
          continue;
        }
        learnLimits(response);
        // A stored URL of another upload: its length, where the server
        // says it, is not this body's (a tus upload of another length never
        // completes, an IETF one takes bytes of the wrong body).
        const length = response.headers.get("upload-length");
        const declared = length === null ? undefined : readInteger(length);
        if (declared !== undefined && declared !== total) {
          throw new HttpError(
            409,
            `Cannot upload: the server's upload is ${declared} bytes long, and the body has ${total}`,
          );
        }
        const reported = reportedOffset(response, total);
        // Bytes the server kept from a cut request are progress too.
        if (reported > offset) {
          failures = 0;
          await progress(reported);
        }
        const waitFor = reported > offset ? undefined : conflict;
        conflict = undefined;
        offset = reported;
        needOffset = false;
        const complete =
          readBoolean(response.headers.get("upload-complete") ?? "") ||
          (tus && offset === total);
        if (complete) {
          if (offset !== total) {
            // Another body's upload (a stored URL of another file), or the
            // server's error: not this one delivered.
            throw new HttpError(
              409,
              `Cannot upload: the server says the upload is complete at ${offset} bytes, and the body has ${total}`,
            );
          }
          finalResponse = response;
          break;
        }
        // Said complete, but not: the server's error stands.
        if (claimedComplete) throw claimedComplete;
        stored = false;
        await keepToLimits(uploadUrl);
        if (waitFor) await backOff(waitFor);
      }
      const end = Math.min(total, offset + appendBytes());
      const last = end === total;
      const extra: Record<string, string> = tus
        ? {
          "content-type": OFFSET_OCTET_STREAM,
          "upload-offset": String(offset),
        }
        : {
          "content-type": PARTIAL_UPLOAD,
          "upload-offset": String(offset),
          "upload-complete": last ? "?1" : "?0",
        };
      const response = await request(
        uploadUrl,
        "PATCH",
        extra,
        streamRequests && end > offset
          ? sliceStream(body, offset, end)
          : body.slice(offset, end) as BodyInit,
      );
      checkNotRedirected(response, "an append", uploadUrl);
      if (!response.ok) {
        const said = await quoteBody(response);
        if (!tus && completes(response)) {
          // The draft: the final answer of the upload, from processing the
          // representation (the application refused it); resuming would
          // not change it.
          throw refuse(response, "the append that completed the upload", said);
        }
        if (!tus && response.status === 400 && claimedComplete === undefined) {
          // Maybe complete already: another client with the same URL (two
          // tabs resuming one file) finished it, and the server refuses an
          // append to a complete upload with 400 (the draft's
          // completed-upload, or inconsistent-upload-length for one with
          // content). Its offset says whether with this body's every byte;
          // if not, the 400 stands.
          claimedComplete = refuse(response, "an append", said);
          needOffset = true;
          continue;
        }
        if (response.status === 413) {
          const sent = end - offset;
          learnLimits(response);
          await keepToLimits(uploadUrl);
          // The draft: a 413 may announce the server's max-append-size;
          // the same append is sent again within it.
          if ((limits.maxAppendSize ?? sent) < sent) continue;
          const announced = limits.maxAppendSize === undefined
            ? ""
            : `, within the server's Upload-Limit max-append-size=${limits.maxAppendSize},`;
          // The upload server's own 413 (with its protocol's headers) to an
          // append of a size it did not say it takes: its words say why
          // (an upload past its store's capacity, say). Otherwise, as the
          // upload's length was accepted at its creation, what refuses a
          // request this size is most often a proxy's body limit.
          const ownLimit = announced === "" &&
            response.headers.has(tus ? "tus-resumable" : "upload-limit");
          throw refuse(
            response,
            ownLimit
              ? `an append of ${sent} bytes`
              : `an append of ${sent} bytes${announced} (a proxy in front may limit request bodies, nginx's client_max_body_size to 1 MiB by default: lower chunkBytes, ${chunkBytes} now)`,
            said,
          );
        }
        if (!retryable(response.status)) {
          throw refuse(response, "an append", said);
        }
        needOffset = true;
        if (response.status === 409) {
          conflict = refuse(response, "an append", said);
        } else {
          // An error without Upload-Complete: ?1 to the last append is no
          // final answer: a gateway's (502-504, a CDN's 52x) or a cut
          // connection's, the origin maybe done behind it, and only the
          // offset tells. (Taking a 5xx for the origin's refusal failed
          // uploads a 524 had hidden the success of; and a 400 of a tab
          // that lost the race to finish it, its upload whole.)
          await backOff(
            refuse(response, "an append", said),
            false,
            retryAfterMs(response),
          );
        }
        continue;
      }
      // Over the draft, an answer without one says the server took the
      // whole request (its examples answer 204, and the final 200, with no
      // field); with one, it cannot hold bytes that were never sent. tus
      // requires it on every append's 204 (as tus-js-client does): an
      // answer without it is no tus server's.
      offset = tus || response.headers.has("upload-offset")
        ? reportedOffset(response, end)
        : end;
      failures = 0;
      await progress(offset, response);
      if (offset >= total && (last || tus)) finalResponse = response;
      else await response.body?.cancel();
    } catch (error) {
      if (error instanceof CallerFailure) throw error.cause;
      if (signal?.aborted) throw signal.reason;
      if (error instanceof HttpError) throw error;
      refuseCertificate(error);
      // A cut connection: ask the server what it kept.
      needOffset = true;
      await backOff(error, true);
    }
  }
  return { uploadUrl, bytes: total, response: finalResponse };
}

/**
 * The server's `Upload-Offset`: a non-negative integer (RFC 9651, at most 15
 * digits, read as the server reads it) no larger than `max`, the bytes sent
 * so far; anything else (absent, malformed, past what was sent) is the
 * server's fault, an HttpError 502.
 */
function reportedOffset(response: Response, max: number): number {
  const value = response.headers.get("upload-offset");
  const offset = value === null ? undefined : readInteger(value);
  if (offset === undefined || offset > max) {
    response.body?.cancel().catch(() => {});
    throw new HttpError(
      502,
      `Cannot upload: the server reported an invalid Upload-Offset ${
        JSON.stringify(value)
      } (expected 0 to ${max})${
        value === null ? hiddenHeaderHint(response, "Upload-Offset") : ""
      }`,
    );
  }
  return offset;
}

/** What errors call the request that creates the upload. */
const CREATION = "the creation of the upload";

/** Why a redirected creation may create nothing, and what to do. */
const POST_TURNED_GET =
  "after a 301, 302 or 303 fetch sends the POST on as a GET, which creates nothing: give the upload collection's final URL as url";

/**
 * How an answer to `what`, a request to an upload (`target`) sent with
 * `redirect: "manual"`, came from a redirect: a 3xx that redirects (with
 * its `Location`), a page's opaque redirect (status 0, its target untold),
 * or one a caller's fetch followed anyway (`redirected`); `undefined` for
 * an answer of the upload's URL itself.
 */
function redirectOf(
  response: Response,
  what: string,
  target: string,
): string | undefined {
  const location = response.headers.get("location");
  if (redirectStatus(response)) {
    return `the server answered ${response.status} to ${what}, a redirect ${
      location === null
        ? "without a Location"
        : `to ${shownUrl(location, response.url || target)}`
    }`;
  }
  if (response.type === "opaqueredirect") {
    return `the server answered ${what} with a redirect (where to, a page's fetch does not say)`;
  }
  if (response.redirected) {
    return `${what} was redirected to ${
      shownUrl(response.url)
    }, which answered ${response.status}`;
  }
  return undefined;
}

/**
 * Throws an HttpError for an answer to `what` (a PATCH or HEAD of the
 * upload at `target`) that came from a redirect (see
 * {@linkcode redirectOf}): its 3xx, else 502. Such an answer is not the
 * upload server's: a proxy's sign-in page answered 200, which read as the
 * upload complete.
 */
function checkNotRedirected(
  response: Response,
  what: string,
  target: string,
): void {
  const moved = redirectOf(response, what, target);
  if (moved === undefined) return;
  response.body?.cancel().catch(() => {});
  throw answeredError(
    response.status >= 300 && response.status < 400 ? response.status : 502,
    `Cannot upload: ${moved}; the client follows none for an append or an offset request, as the answer there is not the upload server's (a proxy's sign-in page, a firewall's, a captive portal's): sign in again or give the upload server's own URL, then resume with uploadUrl`,
  );
}

/**
 * The wait a `429` or `503` asks for with `Retry-After` (RFC 9110, 10.2.3:
 * delta-seconds, or an HTTP date), in milliseconds; `undefined` for any
 * other answer, or a value that is neither.
 */
function retryAfterMs(response: Response): number | undefined {
  if (response.status !== 429 && response.status !== 503) return undefined;
  const value = response.headers.get("retry-after")?.trim() ?? "";
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  // An HTTP date starts with the day's name; Date.parse takes "1.5" too.
  const date = /^[a-z]{3}/i.test(value) ? Date.parse(value) : NaN;
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * OpenSSL's codes for a certificate the client does not accept, as Bun's
 * fetch and Node's (in its `cause`) carry them, and Node's for a
 * certificate of another host.
 */
const CERTIFICATE_CODES = new Set([
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_REVOKED",
  "CERT_REJECTED",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_CHAIN_TOO_LONG",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "INVALID_CA",
  "INVALID_PURPOSE",
  "PATH_LENGTH_EXCEEDED",
  "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * Throws a TypeError for a fetch's failure that says the runtime refused
 * the server's TLS certificate (not trusted, expired, of another host):
 * no retry changes it. Deno says so in the cause's message ("invalid peer
 * certificate: UnknownIssuer"), Bun and Node by a code (Bun's message
 * "unable to verify the first certificate" alone does not name TLS).
 * Other failures, a DNS one included (a device offline for a moment),
 * pass; a browser's fetch says only "Failed to fetch", whatever the
 * reason.
 */
function refuseCertificate(error: unknown): void {
  let value = error;
  for (let depth = 0; depth < 4; depth++) {
    if (value === null || value === undefined) return;
    let code: unknown;
    let next: unknown;
    try {
      code = (value as { code?: unknown }).code;
      next = (value as { cause?: unknown }).cause;
    } catch {
      return;
    }
    const message = withoutQueries(messageOf(value));
    const known = typeof code === "string" && CERTIFICATE_CODES.has(code);
    if (known || /invalid peer certificate/i.test(message)) {
      // The words of the error that says it, whole (Deno's, in the cause,
      // name the certificate's dates or names past failureOf's 200
      // characters), with its code.
      const said = known && !message.includes(code as string)
        ? `${message.slice(0, 400)} (${code})`
        : message.slice(0, 400);
      throw new TypeError(
        `Cannot upload: the server's TLS certificate was refused, which no retry changes: ${said}; fix the certificate (expired, of another host, of an unknown CA), or for a private CA give a fetch that trusts it (Deno: Deno.createHttpClient({ caCerts }); Bun: fetch's tls.ca; Node: NODE_EXTRA_CA_CERTS)`,
        { cause: error },
      );
    }
    if (next === value) return;
    value = next;
  }
}

function encodeMetadata(metadata: Record<string, string>): string {
  return Object.entries(metadata).map(([key, value]) => {
    if (!/^[^\s,]+$/.test(key) || !headerCanCarry(key)) {
      throw new TypeError(
        `Cannot upload: metadata key ${
          JSON.stringify(key)
        } is empty or has a space, a comma or a control character`,
      );
    }
    // A key beyond ASCII goes as its UTF-8 bytes, as the server reads it.
    return `${toUtf8Header(key)} ${
      encodeBase64(new TextEncoder().encode(value))
    }`;
  }).join(",");
}

/** Whether an answer says `Upload-Complete: ?1`: the upload's final answer. */
function completes(response: Response): boolean {
  return readBoolean(response.headers.get("upload-complete") ?? "") === true;
}

/**
 * What a 412 likely means: the server does not speak the protocol version
 * every request names (the draft's interop version, or tus 1.0.0).
 */
function versionHint(response: Response, tus: boolean): string {
  const tusVersion = response.headers.get("tus-version");
  if (tus) {
    return ` (the server may not speak tus ${TUS_VERSION}, sent as Tus-Resumable${
      tusVersion === null ? "" : `; it speaks ${JSON.stringify(tusVersion)}`
    })`;
  }
  return ` (the server may not speak interop version ${DRAFT_INTEROP_VERSION} of the IETF draft, sent as Upload-Draft-Interop-Version${
    tusVersion === null
      ? ""
      : `; it answered with Tus-Version ${JSON.stringify(tusVersion)}`
  }; for a tus server pass protocol: "tus")`;
}

/** The limits of an `Upload-Limit` that a client keeps to. */
interface UploadLimits {
  maxSize?: number;
  maxAppendSize?: number;
  minAppendSize?: number;
}

const UPLOAD_LIMIT_KEYS: Record<string, keyof UploadLimits | undefined> = {
  "max-size": "maxSize",
  "max-append-size": "maxAppendSize",
  "min-append-size": "minAppendSize",
  "min-size": undefined,
  "max-age": undefined,
};

/**
 * The draft's `Upload-Limit`, an RFC 9651 dictionary: its limits on the
 * size of the upload and of each request, or `undefined` where the whole
 * field is to be ignored (the draft: a value that is no dictionary, or a
 * known key whose value is no integer). Unknown keys and parameters are
 * ignored.
 */
function readUploadLimit(value: string): UploadLimits | undefined {
  const limits: UploadLimits = {};
  const members = dictionaryMembers(value);
  if (members === undefined) return undefined;
  for (const member of members) {
    const item = member.split(";", 1)[0];
    const eq = item.indexOf("=");
    const key = (eq === -1 ? item : item.slice(0, eq)).trim();
    if (!/^[a-z*][a-z0-9_\-.*]*$/.test(key)) return undefined;
    if (!Object.hasOwn(UPLOAD_LIMIT_KEYS, key)) continue;
    const limit = eq === -1 ? undefined : readInteger(item.slice(eq + 1));
    if (limit === undefined) return undefined;
    const name = UPLOAD_LIMIT_KEYS[key];
    if (name !== undefined) limits[name] = limit;
  }
  return limits;
}

/** What a callback of the caller's threw (`cause`), to end an upload with. */
class CallerFailure {
  constructor(readonly cause: unknown) {}
}

/** Bytes `[start, end)` of the body as a stream of copies of up to 1 MiB. */
function sliceStream(
  body: ResumableUploadBody,
  start: number,
  end: number,
): ReadableStream<Uint8Array> {
  if (body instanceof Blob) return body.slice(start, end).stream();
  let at = start;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= end) {
        controller.close();
        return;
      }
      const next = Math.min(end, at + 1024 * 1024);
      // A copy: a fetch may take over (detach) the buffers it is given.
      controller.enqueue(body.slice(at, next));
      at = next;
    },
  });
}
