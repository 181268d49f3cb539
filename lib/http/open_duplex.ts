import {
  checkRequestStreams,
  explainStreamingRefusal,
} from "./_browser_streaming.ts";
import { resolveHttpUrl } from "./_url.ts";
import {
  DuplexStream,
  type DuplexStreamOptions,
} from "../streams/duplex_stream.ts";
import type { Compression } from "./compression.ts";
import { MAX_DECOMPRESSED_BYTES, WRITE_HIGH_WATER_MARK } from "./_defaults.ts";
import {
  checkCompression,
  checkCompressionList,
  decodeBody,
  encodeBody,
  fetchDecoded,
  parseContentEncoding,
} from "./_compression.ts";
import { isBrowser } from "../_internal/user_agent.ts";
import { checkMax } from "../_internal/limits.ts";
import { failureOf } from "../_internal/message_of.ts";
import { checkFunction, checkSignal } from "../_internal/arguments.ts";
import { fetchHalfDuplex } from "./_half_duplex.ts";
import { answeredError, quoteBody } from "./_client_error.ts";
import { byteQueueStrategy } from "../_internal/bytes.ts";
import { settledWithin } from "../_internal/settled_within.ts";

/** Options for {@linkcode openDuplex}. */
export interface OpenDuplexOptions
  extends Omit<RequestInit, "body" | "duplex">, DuplexStreamOptions {
  /**
   * The request method.
   *
   * @default {"POST"}
   */
  method?: string;
  /**
   * Compresses the request body with this compression and says so in
   * `Content-Encoding`. A `CompressionStream` cannot be flushed, so the
   * server may see written bytes late: use it for bulk transfers, not
   * lockstep exchanges.
   *
   * @default {undefined} (uncompressed)
   */
  sendCompression?: Compression;
  /**
   * Compressions the response may use (sent as `Accept-Encoding`). `fetch`
   * itself decodes a compressed response (where it does not, as Deno's
   * with `deflate`, `openDuplex` does); `maxDecompressedBytes` then limits
   * the decoded size. `[]` sends `Accept-Encoding: identity`, and a
   * compressed response is refused. In a browser, which sends its own
   * `Accept-Encoding` (a page cannot set it) and decodes what it offered,
   * this option cannot restrict the server. The library's duplex servers
   * compress a duplex response only when configured for bulk transfers
   * (`compressMinBytes: 0`), so accepting gzip does not stall lockstep
   * exchanges with them.
   *
   * @default {["gzip"]}
   */
  acceptCompression?: readonly Compression[];
  /**
   * The most bytes a compressed response may decode to; past it reads reject
   * with a `RangeError` and the exchange is aborted.
   *
   * @default {67108864}
   */
  maxDecompressedBytes?: number;
  /**
   * Bytes of written request body queued before `write` waits (the request
   * stream's high-water mark); `fetch` and the network buffer more. `0`:
   * each write waits until the one before it was taken.
   *
   * @default {65536}
   */
  writeHighWaterMark?: number;
  /**
   * The `fetch` to use; for h2c under Deno, pass a `client` from
   * `Deno.createHttpClient({ http1: false, http2: true })` in the options
   * instead.
   *
   * @default {globalThis.fetch}
   */
  fetch?: typeof fetch;
}

/** A full-duplex exchange opened by {@linkcode openDuplex}. */
export interface DuplexExchange {
  /** Writes the request body and reads the response body. */
  readonly stream: DuplexStream;
  /**
   * The response, once its headers arrive. Rejects like the stream's reads
   * when the request fails or the status is not 2xx.
   */
  readonly response: Promise<Response>;
}

/**
 * Opens a full-duplex exchange with `fetch`: the request body is written
 * through the returned {@linkcode DuplexStream} while the response body is
 * read from it. Works over HTTP/1.1 with Deno, Bun and Node fetch, and over
 * h2 with Deno. In a browser, fetch streams a request body only over HTTP/2
 * (an https: URL; over http: the request fails, and the error says so) and
 * half duplex: the response arrives once the request body has ended, so
 * write, `closeWrite()`, then read; full duplex in a page is a WebSocket
 * (`websocketDuplex`). In a browser whose fetch cannot stream a request
 * body at all (Firefox, which would send the text "[object ReadableStream]"
 * in its place, or WebKit, which refuses it), `openDuplex` throws a `TypeError` at once, before
 * anything is sent.
 *
 * The stream is returned at once, before the response headers arrive, so
 * the first write can come first (some servers answer only after reading).
 * Reads wait for the response. A status other than 2xx fails the stream with
 * an {@linkcode HttpError} carrying that status and the start of the
 * response body; a network error (a refused connection, an untrusted
 * certificate) with a `TypeError` that names the reason, the runtime's error
 * as its `cause`; an abort with the signal's reason.
 *
 * @param input The URL to open.
 * @param options Request options, encodings and limits.
 * @returns The duplex stream and the response promise.
 *
 * @example The uni-directional exchange of Ruby async-http's streaming guide
 * ```ts ignore
 * import { openDuplex } from "@sluice/streams/http";
 *
 * const { stream } = openDuplex("http://127.0.0.1:8000/echo");
 * await stream.write("Hello, ");
 * await stream.write("World!");
 * await stream.closeWrite();
 * for await (const chunk of stream) console.log(new TextDecoder().decode(chunk));
 * ```
 */
export function openDuplex(
  input: string | URL,
  options: OpenDuplexOptions = {},
): DuplexExchange {
  const url = resolveHttpUrl("open duplex stream", input);
  const {
    method = "POST",
    sendCompression,
    acceptCompression = ["gzip"],
    maxDecompressedBytes: maxDecompressed = MAX_DECOMPRESSED_BYTES,
    writeHighWaterMark = WRITE_HIGH_WATER_MARK,
    maxReadBytes,
    maxLineBytes,
    signal,
    headers: initHeaders,
    ...init
  } = options;
  const maxDecompressedBytes = checkMax(
    "open duplex",
    "maxDecompressedBytes",
    maxDecompressed,
  );
  checkSignal("open duplex", signal);
  checkFunction("open duplex", "fetch", options.fetch);
  if (sendCompression !== undefined) {
    checkCompression("open duplex", "sendCompression", sendCompression);
  }
  checkCompressionList("open duplex", acceptCompression, []);
  checkMax("open duplex", "writeHighWaterMark", writeHighWaterMark);
  checkRequestStreams(
    "open duplex stream",
    "for full duplex use websocketDuplex",
  );

  let requestController!: TransformStreamDefaultController<Uint8Array>;
  const requestBody = new TransformStream<Uint8Array, Uint8Array>(
    { start: (controller) => void (requestController = controller) },
    new ByteLengthQueuingStrategy({ highWaterMark: 0 }),
    new ByteLengthQueuingStrategy({ highWaterMark: 0 }),
  );
  const headers = new Headers(initHeaders);
  if (!headers.has("content-type")) {
    headers.set("content-type", "application/octet-stream");
  }
  if (sendCompression) headers.set("content-encoding", sendCompression);
  headers.set(
    "accept-encoding",
    acceptCompression.length > 0 ? acceptCompression.join(", ") : "identity",
  );
  const abort = new AbortController();
  const signals = signal ? [signal, abort.signal] : [abort.signal];
  const aborted = AbortSignal.any(signals);
  // An abort ends the request body at once: a fetch that has its response
  // (Deno's) may otherwise keep sending it, and its connection open, so
  // that the server never hears of the abort. The listener goes once the
  // response has ended or failed: while a signal can still abort and has
  // listeners, the runtime keeps it, and with it the whole exchange (a
  // caller's long-lived signal, and Bun's AbortSignal.any in any case).
  const onAborted = () => requestController.error(aborted.reason);
  aborted.addEventListener("abort", onAborted, { once: true });
  const release = () => aborted.removeEventListener("abort", onAborted);

  const response = fetchHalfDuplex(input, {
    ...init,
    method,
    headers,
    body: encodeBody(requestBody.readable, sendCompression),
    signal: aborted,
  }).catch((error) => {
    // The abort's reason, not fetch's own AbortError (WebKit's, whatever
    // the reason).
    if (aborted.aborted) throw aborted.reason;
    const explained = explainStreamingRefusal(
      error,
      url,
      "open duplex stream",
      ", and half duplex even there; for full duplex use websocketDuplex",
    );
    if (explained !== error || !(error instanceof TypeError)) throw explained;
    // A network error: Deno's and Node's fetch say only "fetch failed", the
    // refused connection or the untrusted certificate in the cause.
    throw new TypeError(`Cannot open duplex stream: ${failureOf(error)}`, {
      cause: error,
    });
  }).then(async (response) => {
    if (!response.ok) {
      const said = await quoteBody(response);
      // Aborted while the body was quoted: the abort's reason, as for an
      // abort before the answer, not the server's error.
      aborted.throwIfAborted();
      throw answeredError(
        response.status,
        `Cannot open duplex stream: server answered ${response.status} ${response.statusText}${said}`,
      );
    }
    const encoding = response.headers.get("content-encoding");
    const decoded = encoding !== null && fetchDecoded(encoding);
    // A page cannot set Accept-Encoding: the browser offers its own codings
    // and decodes the body, whichever it is.
    if (encoding !== null && !(decoded && isBrowser())) {
      try {
        const codings = parseContentEncoding(encoding, acceptCompression);
        // Deno's and workerd's fetch leave deflate encoded: decoded here.
        if (!decoded && codings.length > 0) decodeWith = codings;
      } catch {
        await response.body?.cancel();
        throw new TypeError(
          `Cannot read duplex response: Content-Encoding "${encoding}" was not accepted`,
        );
      }
    }
    return response;
  });
  // A failed or refused response fails the request side too, so writes
  // reject instead of waiting for a request that will never be read.
  // Why the response failed, for the writes that fail because of it.
  let failure: { reason: unknown } | undefined;
  response.catch((reason) => {
    failure = { reason };
    release();
    requestController.error(reason);
  });

  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let total = 0;
  let limited = false;
  // The codings to decode the response body with, where fetch did not.
  let decodeWith: Compression[] | undefined;
  const responseBody = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!reader) {
        const res = await response;
        limited = res.headers.has("content-encoding") &&
          res.headers.get("content-encoding") !== "identity";
        if (!res.body) {
          controller.close();
          return;
        }
        reader =
          (decodeWith ? decodeBody(res.body, decodeWith, Infinity) : res.body)
            .getReader();
      }
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (cause) {
        release();
        // Aborted (the caller's signal, close(reason) or a limit): that
        // reason, as the signal's docs say, not a guess at the server.
        if (aborted.aborted) throw aborted.reason;
        // The runtime's message ("error reading a body from connection")
        // does not say which side failed; this one does, and keeps it.
        // Decoded here, the body's codings failed (corrupt or cut short);
        // decoded by fetch, its failure may be either.
        throw new TypeError(
          decodeWith
            ? `Cannot read duplex response: the response body's ${
              decodeWith.join(", ")
            } data is corrupt or was cut short`
            : `Cannot read duplex response: the response body failed before its end (the server aborted${
              limited
                ? ", the connection broke or its encoded data is corrupt"
                : " or the connection broke"
            })`,
          { cause },
        );
      }
      if (result.done) {
        release();
        controller.close();
        return;
      }
      total += result.value.byteLength;
      if (limited && total > maxDecompressedBytes) {
        const error = new RangeError(
          `Cannot read duplex response: decompressed size exceeds maxDecompressedBytes ${maxDecompressedBytes}`,
        );
        controller.error(error);
        abort.abort(error);
        return;
      }
      controller.enqueue(result.value);
    },
    cancel() {
      // The input only: the request goes on. Deno's and Bun's fetch end the
      // whole exchange when a response body is cancelled (the request's
      // bytes not yet sent were lost, and the server's read failed), so the
      // rest of the response is read and dropped instead, until the server
      // ends it; `close(reason)` or the signal end everything at once.
      const body = reader ?? response.then((res) => res.body?.getReader());
      void Promise.resolve(body).then(async (r) => {
        if (r === undefined) return;
        while (!(await r.read()).done);
      }).catch(() => {}).finally(release);
    },
  }, { highWaterMark: 0 });

  // The runtime cancels the request body with a bare "resource closed" when
  // the exchange breaks; say which side failed instead, keeping the cause.
  const writer = requestBody.writable.getWriter();
  // A write that fails because the response did (a status other than
  // 2xx, a browser's refusal) says that, not that the body was cancelled.
  // (Bun cancels the request body as the answer arrives, before its fetch
  // resolves: the response's failure is waited for, at most a second.)
  const writeFailed = async (cause: unknown): Promise<never> => {
    if (aborted.aborted) throw aborted.reason;
    if (failure === undefined) {
      await settledWithin(response, 1000);
    }
    if (failure !== undefined) throw failure.reason;
    return requestFailed(cause);
  };
  const requestSink = new WritableStream<Uint8Array>(
    {
      write: (chunk) => writer.write(chunk).catch(writeFailed),
      close: () => writer.close().catch(writeFailed),
      abort: (reason) => writer.abort(reason),
    },
    // At least one byte: a queue of 0 is never ready for a write.
    byteQueueStrategy(writeHighWaterMark),
  );

  const stream = new DuplexStream(responseBody, requestSink, {
    maxReadBytes,
    maxLineBytes,
  });
  return { stream, response };
}

function requestFailed(cause: unknown): never {
  throw new TypeError(
    "Cannot write duplex request: the request body was cancelled (the server ended the exchange or the connection broke)",
    { cause },
  );
}
