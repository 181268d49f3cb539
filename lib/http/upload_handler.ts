import { refuseContentCoding } from "./_compression.ts";
import { messageOf } from "../_internal/message_of.ts";
import { checkArgument, checkBodyUnused } from "../_internal/arguments.ts";
import { formatDigestHeader } from "./digest_header.ts";
import { HttpError } from "./http_error.ts";
import { storeFailed } from "./_store_failure.ts";
import { BODY_METHODS, refuseMethod } from "./_client_error.ts";
import {
  checkReceiveOptions,
  isRequestLike,
  receiveBody,
  type ReceiveBodyOptions,
  type ReceivedBody,
} from "./receive_body.ts";
import { contentDigests, declaredLength } from "./_body_headers.ts";
import { IDLE_TIMEOUT_MS, MAX_BODY_BYTES } from "./_defaults.ts";
import {
  boundaryOf,
  decodeFormText,
  parseHeaderValue,
  RAW_NAMES,
} from "./_multipart_headers.ts";
import { bodyDeadline, checkMinRate, pumpPacedBody } from "./_min_rate.ts";
import {
  checkMultipartLimits,
  type MultipartLimits,
} from "./multipart_decoder.ts";
import { type MultipartPart, MultipartStream } from "./multipart_stream.ts";
import { encodeBase64 } from "../_internal/base64.ts";
import { checkIdleTimeout } from "../_internal/idle_timeout.ts";
import { checkMax, checkTimerMs } from "../_internal/limits.ts";
import { callOnError } from "../_internal/reported.ts";

/** What the upload handler passes to its sink and completion hook. */
export interface UploadContext {
  /**
   * Route parameters: the handler's optional second argument's `params`,
   * else the request's own (`Bun.serve`'s `routes`, itty-router), else
   * none.
   */
  params: Record<string, string>;
}

/**
 * A router's parameters: a second argument's `{ params }` (Deno's
 * ServeHandlerInfo and Bun's Server have none), else those a router put on
 * the request itself (a BunRequest under `Bun.serve`'s `routes`,
 * itty-router's). Both were ignored: `params.name` undefined, a sink that
 * failed to open (500) or a file stored under no name.
 */
function routeParams(
  request: Request,
  second: unknown,
): Record<string, string> {
  const given = second !== null && typeof second === "object"
    ? (second as { params?: unknown }).params
    : undefined;
  const params = given ?? (request as { params?: unknown }).params;
  return params !== null && typeof params === "object"
    ? params as Record<string, string>
    : {};
}

/**
 * Where one file part of a multipart upload goes, when the sink also names
 * what it stored (`storedName`, reported in the answer) or can remove it
 * (`remove`, so that a form is stored whole or not at all).
 *
 * @example Files on disk, removed again if a later part fails to commit
 * ```ts ignore
 * import { createUploadHandler, safeFileName } from "@sluice/streams/http";
 * import { createFileSink } from "@sluice/streams/fs";
 * import { unlink } from "node:fs/promises";
 *
 * const handler = createUploadHandler({
 *   multipart: {
 *     sink: (part) => {
 *       const path = `./uploads/${safeFileName(part.filename!)}`;
 *       return {
 *         writable: createFileSink(path),
 *         storedName: path,
 *         remove: () => unlink(path),
 *       };
 *     },
 *   },
 * });
 * ```
 */
export interface PartSink {
  /** The stream the part's bytes are written to. */
  writable: WritableStream<Uint8Array>;
  /** The name the part is stored under (a file name, an object key). */
  storedName?: string;
  /**
   * Removes the part once committed (a file, an object). Called, for each
   * part committed before it, when a later part's sink fails to commit
   * (its close rejects: a disk error in the final fsync or rename, an
   * object store's error), so that the request, answered 500 (507 when out
   * of space), leaves no part of the form behind. Without it, those parts
   * stay. It removes what is at the part's path or key by then: where two
   * requests may share one (a client's file name), give each part its own.
   */
  remove?: () => void | Promise<void>;
}

/** One file part a multipart upload stored. */
export interface ReceivedFile extends ReceivedBody {
  /**
   * The part's field name (the form control's `name`), read as the sink
   * got it: in the charset a `_charset_` field before the part named, else
   * the `charset` option (see {@linkcode ReceivedField}'s `name`).
   */
  name: string;
  /**
   * The file name the client sent (not sanitised), read as `name` is
   * (`filename*`, RFC 5987, names its own charset).
   */
  filename: string;
  /** The part's Content-Type. */
  contentType: string;
  /** The name the sink stored it under, if it said. */
  storedName?: string;
}

/** One form field (a part without a file name) of a multipart upload. */
export interface ReceivedField {
  /**
   * The field's name. A browser encodes names and file names in the form's
   * encoding too: a name is decoded with the charset the form's
   * `_charset_` field names, else the `charset` option (not its part's
   * `Content-Type`, which is its value's), as a value is, a name not valid
   * in it a 400. A file part's names are read before the form's end, when
   * its sink opens: a `_charset_` field after it does not count for them
   * (browsers send fields in document order, `_charset_` usually first).
   * A name sent in `name*` or `filename*` (RFC 5987) keeps its own charset.
   */
  name: string;
  /**
   * Its value, decoded with the first charset of: its part's own
   * `Content-Type` (`text/plain; charset=shift_jis`, RFC 7578 4.4); the one
   * the form's `_charset_` field names (a browser fills it with the
   * encoding it sent the form in, the page's unless `accept-charset` says
   * otherwise); the `charset` option. Under UTF-8, the default or named, a
   * value that is no UTF-8 is read as windows-1252, as names are: `caf\xE9`
   * from a legacy Western page's form is `café`, not `caf\uFFFD`. A leading
   * byte order mark is kept. The `_charset_` field is reported too.
   */
  value: string;
}

/** What a multipart upload stored: its file parts and its fields, in order. */
export interface ReceivedForm {
  /** The file parts, each stored in its own sink. */
  files: ReceivedFile[];
  /** The fields, collected in memory within the limits. */
  fields: ReceivedField[];
}

/**
 * The multipart mode of {@linkcode createUploadHandler}: a
 * `multipart/form-data` request (an HTML form, a browser's `FormData`,
 * `curl -F`) has each file part streamed into its own sink and its fields
 * collected. The parser's limits ({@linkcode MultipartLimits}) apply too;
 * `maxTotalBytes` defaults to the handler's `maxBytes` (a 413 then names
 * `maxBytes`). Digests are per file part (the hasher's SHA-256, a part's
 * own `Content-Digest`); a `Content-Digest` of the whole request is checked
 * for syntax only.
 */
export interface MultipartUploadOptions extends MultipartLimits {
  /**
   * Opens the sink of one file part (a part with a file name). It gets the
   * part (its `name` and `filename` read in the form's charset as far as
   * known, see {@linkcode ReceivedField}'s `name`; `contentType`,
   * `headers`; leave its body alone) and returns the stream to write to,
   * or a {@linkcode PartSink} that also names what it stored. It may throw
   * an {@linkcode HttpError}, for example from `safeFileName`. Every sink
   * of a request is closed (committed) only once the whole body has been
   * parsed and every part received; if anything fails, every sink is
   * aborted, so an atomic file sink leaves no file behind.
   */
  sink: (
    part: MultipartPart,
    request: Request,
    context: UploadContext,
  ) =>
    | WritableStream<Uint8Array>
    | PartSink
    | Promise<WritableStream<Uint8Array> | PartSink>;
  /**
   * The most file parts a request may have; more is a 413. Each sink stays
   * open (a file descriptor) until the whole body is in, with what it holds:
   * an R2 sink (`createR2Sink`) holds its file's last part in memory, up to
   * its `partBytes` (8 MiB), so in a Worker (128 MB) keep `maxFiles` ×
   * `partBytes`, or `maxTotalBytes`, well under that.
   *
   * @default {100}
   */
  maxFiles?: number;
  /**
   * The most fields (parts without a file name) a request may have; more
   * is a 413.
   *
   * @default {100}
   */
  maxFields?: number;
  /**
   * The most bytes of all fields' values together (each is also bounded by
   * `maxFieldBytes`); more is a 413. Fields are held in memory.
   *
   * @default {1048576} (1 MiB)
   */
  maxFieldsBytes?: number;
  /**
   * The encoding of the fields of a form that names none (no `charset` in
   * a field's `Content-Type`, no `_charset_` field): any label
   * `TextDecoder` knows, from the WHATWG Encoding Standard (`"utf-8"`,
   * `"windows-1252"`, `"shift_jis"`, `"gbk"`, ...); another is a
   * RangeError here. A field's value is decoded with its part's charset,
   * else the one its form's `_charset_` names, else this one; names and
   * file names with the `_charset_` one (for a file part, one before it),
   * else this one. Under UTF-8, this default or named by the form, a name
   * or value that is no UTF-8 is read as windows-1252 (one character per
   * byte, nothing lost); under another, a name or value that is not valid
   * in it, or a charset the form names that `TextDecoder` does not know, is
   * a 400 naming it. (Names, in headers, cannot be UTF-16: a form that
   * names it has them read as under UTF-8.) Set it where a form cannot say
   * (no `_charset_` field, or a file part before it) and its page is not
   * UTF-8 or windows-1252: `"shift_jis"` for a Shift_JIS page's.
   *
   * @example The forms of a Shift_JIS site
   * ```ts
   * import { createUploadHandler } from "@sluice/streams/http";
   *
   * const handler = createUploadHandler({
   *   multipart: { sink: () => new WritableStream(), charset: "shift_jis" },
   * });
   * const boundary = "b";
   * // 新しい in Shift_JIS, as a browser sends it from a Shift_JIS page.
   * const body = new Blob([
   *   `--${boundary}\r\nContent-Disposition: form-data; name="x"\r\n\r\n`,
   *   Uint8Array.of(0x90, 0x56, 0x82, 0xb5, 0x82, 0xa2),
   *   `\r\n--${boundary}--\r\n`,
   * ]);
   * const response = await handler(
   *   new Request("http://localhost/", {
   *     method: "POST",
   *     body,
   *     headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
   *   }),
   * );
   * console.log((await response.json()).fields); // [{ name: "x", value: "新しい" }]
   * ```
   *
   * @default {"utf-8"}
   */
  charset?: string;
  /**
   * Answers a stored multipart upload. The default answers `201 Created`
   * with JSON `{ "files": [{ "name", "filename", "storedName"?,
   * "contentType", "bytes", "sha256"? }], "fields": [{ "name", "value" }] }`
   * (`sha256` in base64, when a hasher ran).
   *
   * @default {a 201 JSON answer}
   */
  onComplete?: (
    result: ReceivedForm,
    request: Request,
    context: UploadContext,
  ) => Response | Promise<Response>;
}

/** Options for {@linkcode createUploadHandler}. */
export interface UploadHandlerOptions extends
  Omit<
    ReceiveBodyOptions,
    "signal" | "contentLength" | "sha256" | "headers"
  > {
  /**
   * Opens the sink for a request's body: a file (see `createFileSink` in
   * `@sluice/streams/fs`), an object store, a hash, any `WritableStream`. It
   * may throw an {@linkcode HttpError}, for example from `safeFileName`.
   * Optional when `multipart` is set: the handler then takes only
   * `multipart/form-data` requests (415 for others).
   */
  sink?: (
    request: Request,
    context: UploadContext,
  ) => WritableStream<Uint8Array> | Promise<WritableStream<Uint8Array>>;
  /**
   * Receives `multipart/form-data` requests part by part (see
   * {@linkcode MultipartUploadOptions}): each file part into its own sink,
   * the fields in memory. Without it, such a request is refused with 415
   * (unless `acceptMultipartAsRaw`), since storing a form's encoding as one
   * file is rarely what was meant.
   *
   * @default {undefined} (no multipart mode)
   */
  multipart?: MultipartUploadOptions;
  /**
   * Stores a `multipart/form-data` body as it is, encoding and all, in
   * `sink`, when `multipart` is not set.
   *
   * @default {false}
   */
  acceptMultipartAsRaw?: boolean;
  /**
   * Answers a stored upload. The default answers `201 Created` with JSON
   * `{ "bytes": n, "sha256": "<base64>" }` (`sha256` only when a hasher
   * ran) and the SHA-256 in a `Repr-Digest` header (RFC 9530). When the
   * request's `Content-Digest` named only algorithms the receiver cannot
   * check, the default answer also carries
   * `Want-Content-Digest: sha-256=10, sha-512=5`, telling the client which
   * ones it would verify.
   *
   * @default {a 201 JSON answer}
   */
  onComplete?: (
    result: ReceivedBody,
    request: Request,
    context: UploadContext,
  ) => Response | Promise<Response>;
  /**
   * Called with the error of each upload answered with a status of 500 or
   * more: a sink that failed (a missing directory; a full disk or a spent
   * quota, `ENOSPC` or `EDQUOT`, is answered 507), a `sink`
   * (the opener), `hasher` or `onComplete` that threw (anything but an
   * `HttpError` becomes a 500 `HttpError` with what it threw as its
   * `cause`), or one that threw an `HttpError` of that kind. The client
   * gets only the status and a message without the server's details; the
   * cause (the file system's error, its path) is in the error. The default
   * logs it with `console.error`; 4xx answers, the client's side, are not
   * passed. What `onError` itself throws is logged with `console.error`
   * ("sluice: onError failed:"), beside the error it was given, and the
   * answer is sent all the same.
   *
   * @default {console.error}
   */
  onError?: (error: unknown) => void;
}

function defaultOnError(error: unknown): void {
  console.error("sluice: upload failed:", error);
}

/**
 * The default answer of {@linkcode createUploadHandler}: 201 with JSON
 * `{ bytes, sha256? }` and `Repr-Digest`.
 */
function created(result: ReceivedBody): Response {
  const headers = new Headers({
    "content-type": "application/json",
  });
  const body: { bytes: number; sha256?: string } = { bytes: result.bytes };
  if (result.sha256) {
    body.sha256 = encodeBase64(result.sha256);
    headers.set(
      "repr-digest",
      formatDigestHeader({ "sha-256": result.sha256 }),
    );
  }
  if (result.unverifiedDigests) {
    headers.set("want-content-digest", "sha-256=10, sha-512=5");
  }
  return new Response(JSON.stringify(body), { status: 201, headers });
}

/**
 * Creates a fetch handler that receives a `POST` or `PUT` body into a sink
 * with {@linkcode receiveBody} and answers with `onComplete` (by default
 * `201 Created` with JSON `{ "bytes": n, "sha256": "..." }` and a
 * `Repr-Digest` header). Refusals and failures are answered with the status
 * and message of the {@linkcode HttpError} (400, 405, 408, 413, 415, 500,
 * 507); the sink is aborted, so nothing partial is kept. `OPTIONS` gets
 * `204` and any other method but `POST` and `PUT` `405`, both with
 * `Allow: POST, PUT`, no sink opened.
 *
 * With `multipart`, a `multipart/form-data` request has each file part
 * received by {@linkcode receiveBody} into its own sink (the same limits
 * and digests, `maxFileBytes` per part) and its fields collected, and is
 * answered with what was stored (see {@linkcode MultipartUploadOptions}).
 * Every part's sink is committed only after the closing boundary: a limit,
 * a malformed body or a failed sink aborts them all, so nothing is left
 * behind. Without `multipart`, such a request is refused with 415 unless
 * `acceptMultipartAsRaw` is set.
 *
 * The handler takes an optional second argument `{ params }` (route
 * parameters from a router), passed to `sink` and `onComplete`; without
 * one, the parameters a router put on the request itself are passed
 * (`Bun.serve`'s `routes`, itty-router). A runtime's own second argument
 * (Deno's `ServeHandlerInfo`, Bun's `Server`) is ignored.
 *
 * @param options Where the body goes, the limits and the answer.
 * @returns A fetch handler for `Deno.serve`, `Bun.serve`, Workers or a router.
 *
 * @example Receive uploads into a hashing-only sink
 * ```ts
 * import { createUploadHandler } from "@sluice/streams/http";
 *
 * const handler = createUploadHandler({
 *   sink: () => new WritableStream(),
 *   maxBytes: 1024 * 1024,
 * });
 * const response = await handler(
 *   new Request("http://localhost/upload", { method: "POST", body: "hi" }),
 * );
 * console.log(response.status, await response.text()); // 201 {"bytes":2}
 * ```
 *
 * @example Store each file of a form upload (multipart mode)
 * ```ts ignore
 * import { createUploadHandler, safeFileName } from "@sluice/streams/http";
 * import { createFileSink, createHasher } from "@sluice/streams/fs";
 *
 * const upload = createUploadHandler({
 *   hasher: createHasher,
 *   multipart: {
 *     sink: (part) => {
 *       const storedName = safeFileName(part.filename!);
 *       return { writable: createFileSink(`./uploads/${storedName}`), storedName };
 *     },
 *     maxFileBytes: 100 * 1024 * 1024,
 *   },
 * });
 * // curl -F photo=@cat.jpg -F title=Cat http://127.0.0.1:8000/
 * // → 201 {"files":[{"name":"photo","filename":"cat.jpg","storedName":"cat.jpg",...}],"fields":[{"name":"title","value":"Cat"}]}
 * Deno.serve({ hostname: "127.0.0.1", port: 8000 }, upload);
 * ```
 *
 * @example Answer like Ballerina's streaming example, with route parameters
 * ```ts ignore
 * import { createUploadHandler, safeFileName } from "@sluice/streams/http";
 * import { createFileSink, createHasher } from "@sluice/streams/fs";
 *
 * const upload = createUploadHandler({
 *   sink: (_request, { params }) =>
 *     createFileSink(`./uploads/${safeFileName(params.name)}`),
 *   hasher: createHasher,
 *   onComplete: () => new Response("File Received!"),
 * });
 * // Hono: app.put("/files/:name", (c) => upload(c.req.raw, { params: c.req.param() }));
 * // Bun: Bun.serve({ routes: { "/files/:name": { PUT: upload } }, maxRequestBodySize: 2 ** 40 });
 * ```
 */
export function createUploadHandler(
  options: UploadHandlerOptions,
): (
  request: Request,
  context?: { params?: Record<string, string> } | object,
) => Promise<Response> {
  checkArgument(
    typeof options === "object" && options !== null,
    "create upload handler",
    "the options",
    "an object with a sink, the multipart option, or both",
    options,
  );
  const {
    sink,
    multipart,
    acceptMultipartAsRaw = false,
    onComplete = created,
    onError = defaultOnError,
    ...receiveOptions
  } = options;
  if (!sink && !multipart) {
    throw new TypeError(
      "Cannot create upload handler: give a sink, the multipart option, or both",
    );
  }
  for (
    const [name, value] of [
      ["sink", sink],
      ["onComplete", onComplete],
      ["onError", onError],
      ["hasher", receiveOptions.hasher],
    ] as const
  ) {
    checkArgument(
      value === undefined || typeof value === "function",
      "create upload handler",
      name,
      "a function",
      value,
      name === "sink" && typeof value === "string"
        ? ` (write sink: () => createFileSink(${
          JSON.stringify((value as string).slice(0, 64))
        }))`
        : "",
    );
  }
  // Once, here: not at each request, after its sink was opened.
  checkReceiveOptions("create upload handler", receiveOptions);
  const receiveForm = multipart
    ? multipartReceiver(multipart, receiveOptions)
    : undefined;
  const maxBytes = receiveOptions.maxBytes ?? MAX_BODY_BYTES;
  const formMaxTotalBytes = multipart?.maxTotalBytes ?? maxBytes;
  // The option a refusal names: the one the user set.
  const formLimitName = multipart?.maxTotalBytes === undefined
    ? "maxBytes"
    : "maxTotalBytes";
  return async (request, second) => {
    // Before any sink opens: one that receiveBody then refused was opened
    // for nothing (and aborted). A framework's own request class passes.
    checkArgument(
      isRequestLike(request),
      "receive upload",
      "the request",
      "a Request",
      request,
    );
    checkBodyUnused("receive upload", request);
    const context: UploadContext = { params: routeParams(request, second) };
    try {
      if (request.method !== "POST" && request.method !== "PUT") {
        return refuseMethod("receive body", request, BODY_METHODS);
      }
      const isForm = parseHeaderValue(
        request.headers.get("content-type") ?? "",
      ).type === "multipart/form-data";
      const asForm = receiveForm !== undefined && (isForm || !sink);
      // Refuse on the headers alone before opening the sink: a form
      // against its own total.
      if (asForm) {
        declaredLength(request.headers, formMaxTotalBytes, formLimitName);
      } else {
        declaredLength(request.headers, maxBytes);
      }
      contentDigests(request.headers.get("content-digest"));
      // Kept as sent: an encoded body (a gzipped file, a gzipped form) is
      // refused before a sink opens.
      refuseContentCoding(
        request.headers.get("content-encoding"),
        "receive body",
      );
      if (asForm) return await receiveForm(request, context);
      if (isForm && !acceptMultipartAsRaw) {
        throw new HttpError(
          415,
          "Cannot receive body: it is multipart/form-data; set the multipart option to store its parts, or acceptMultipartAsRaw to store the body as it is",
        );
      }
      const destination = await serverSide(
        () => sink!(request, context),
        "Cannot store body: the sink failed to open",
      );
      // A client that goes away errors the body, which aborts the sink.
      const received = await receiveBody(request, destination, receiveOptions);
      return await runOnComplete(() => onComplete(received, request, context));
    } catch (error) {
      if (error instanceof HttpError) {
        if (error.status >= 500) callOnError(onError, error);
        return error.getResponse();
      }
      // The handler misused (a body already read, a sink that is no
      // WritableStream): its TypeError is thrown as it is.
      throw error;
    }
  };
}

/**
 * Runs a function of the server's (a sink opener, `onComplete`): an
 * `HttpError` it throws is its answer; anything else is a 500 saying
 * `message`, what it threw the cause (not sent: it may name a path or a
 * password).
 */
async function serverSide<T>(
  run: () => T | Promise<T>,
  message: string,
): Promise<T> {
  try {
    return await run();
  } catch (cause) {
    throw storeFailed(message, cause);
  }
}

/** Runs an `onComplete` with {@linkcode serverSide}. */
function runOnComplete(
  run: () => Response | Promise<Response>,
): Promise<Response> {
  return serverSide(run, "Cannot answer upload: onComplete failed");
}

/** The default answer of the multipart mode: 201 with the stored parts. */
function formCreated(result: ReceivedForm): Response {
  const files = result.files.map((file) => {
    const out: Record<string, unknown> = {
      name: file.name,
      filename: file.filename,
    };
    if (file.storedName !== undefined) out.storedName = file.storedName;
    out.contentType = file.contentType;
    out.bytes = file.bytes;
    if (file.sha256) out.sha256 = encodeBase64(file.sha256);
    return out;
  });
  // The type set here: Bun's Response.json says "application/json;
  // charset=utf-8", Deno's and workerd's "application/json".
  return new Response(JSON.stringify({ files, fields: result.fields }), {
    status: 201,
    headers: { "content-type": "application/json" },
  });
}

/**
 * A part's sink whose close is held back: `receiveBody` closes it when the
 * part is complete, but the real sink is closed (an atomic file renamed into
 * place) only by `commit`, once the whole request is in.
 */
class HeldSink {
  readonly writable: WritableStream<Uint8Array>;
  /** Removes the committed part, if its sink said how. */
  readonly remove: (() => void | Promise<void>) | undefined;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #settled = false;
  constructor(
    sink: WritableStream<Uint8Array>,
    remove?: () => void | Promise<void>,
  ) {
    this.remove = remove;
    const writer = this.#writer = sink.getWriter();
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => writer.write(chunk),
      abort: (reason) => this.discard(reason),
    }, new CountQueuingStrategy({ highWaterMark: 1 }));
  }
  commit(): Promise<void> {
    this.#settled = true;
    return this.#writer.close();
  }
  async discard(reason: unknown): Promise<void> {
    if (this.#settled) return;
    this.#settled = true;
    await this.#writer.abort(reason).catch(() => {});
  }
}

/**
 * Removes the parts committed before a commit failed (each with its sink's
 * `remove`), and says in a clause of the error's message what was left.
 */
async function removeCommitted(committed: HeldSink[]): Promise<string> {
  if (committed.length === 0) return "";
  const left = await Promise.all(committed.map(async (hold, i) => {
    if (hold.remove === undefined) return `file part ${i + 1} (no remove)`;
    try {
      await hold.remove();
      return undefined;
    } catch {
      // Its words stay on the server: they may name a path.
      return `file part ${i + 1} (its remove failed)`;
    }
  }));
  const kept = left.filter((what) => what !== undefined);
  return kept.length === 0
    ? "; the parts committed before it were removed"
    : `; committed before it and left: ${kept.join(", ")}`;
}

/**
 * A charset's decoder that refuses bytes not valid in it, keeping a leading
 * byte order mark as text; undefined for a label `TextDecoder` does not
 * know (the Encoding Standard's "replacement" labels among them).
 */
function charsetDecoder(label: string): TextDecoder | undefined {
  try {
    return new TextDecoder(label, { fatal: true, ignoreBOM: true });
  } catch {
    return undefined;
  }
}

/** Whether a field is the form's `_charset_` (HTML matches it so). */
function isCharsetField(name: string): boolean {
  return name.length === 9 && name.toLowerCase() === "_charset_";
}

/** A charset a field's value is decoded with, and who named it. */
interface FieldCharset {
  decoder: TextDecoder;
  /** Where the charset came from, for a refusal's message. */
  namedBy: string;
}

/** A field received, its value still bytes until the form's end. */
interface HeldField {
  name: string;
  /** Its name as sent, where it may read otherwise in the form's charset. */
  rawName: string | undefined;
  bytes: Uint8Array;
  /** Its place in the body, as refusals count parts. */
  position: number;
  /** The charset of its own Content-Type, if it has one. */
  charset: FieldCharset | undefined;
  /**
   * Its value, read already: the `_charset_` field's, reported as it was
   * read, not in the charset it names (UTF-16 would make it another text).
   */
  value?: string;
}

/** A field as a refusal names it: `part 2 (field "x")`. */
function fieldOf(position: number, name: string): string {
  return `part ${position} (field ${JSON.stringify(name.slice(0, 64))})`;
}

/** The charset of a field's own `Content-Type`; 400 for an unknown one. */
function partCharset(
  contentType: string,
  position: number,
  name: string,
): FieldCharset | undefined {
  const label = parseHeaderValue(contentType).params.get("charset");
  if (label === undefined) return undefined;
  const decoder = charsetDecoder(label);
  if (decoder === undefined) {
    throw new HttpError(
      400,
      `Cannot accept form: ${fieldOf(position, name)} has an unknown charset ${
        JSON.stringify(label.slice(0, 64))
      } in its Content-Type`,
    );
  }
  return { decoder, namedBy: "its Content-Type's charset" };
}

/**
 * A field's value as text: with its own charset, else the form's, else the
 * handler's (`undefined`, or UTF-8 named: UTF-8, else windows-1252, as a
 * form that names none; naming the default is not stricter). 400 for bytes
 * not valid in another charset that was named.
 */
function decodeField(
  field: HeldField,
  formCharset: FieldCharset | undefined,
  handlerCharset: FieldCharset | undefined,
): string {
  if (field.value !== undefined) return field.value;
  const charset = field.charset ?? formCharset ?? handlerCharset;
  if (charset === undefined || charset.decoder.encoding === "utf-8") {
    return decodeFormText(field.bytes);
  }
  try {
    return charset.decoder.decode(field.bytes);
  } catch (cause) {
    throw new HttpError(
      400,
      `Cannot accept form: ${
        fieldOf(field.position, field.name)
      } is not valid ${charset.decoder.encoding}, ${charset.namedBy}`,
      { cause },
    );
  }
}

/**
 * A part's name or file name in the form's charset (`undefined`: none
 * named): `read`, the parser's reading (UTF-8, else windows-1252), where it
 * was sent as ASCII or in `filename*`, or the charset is UTF-8 or UTF-16
 * (a header cannot carry UTF-16: a browser sends such a form in UTF-8).
 * 400 for bytes not valid in the charset.
 */
function decodeNameIn(
  read: string,
  raw: string | undefined,
  charset: FieldCharset | undefined,
  what: { position: number; name: string; label: "name" | "file name" },
): string {
  if (raw === undefined || charset === undefined) return read;
  const { decoder } = charset;
  const encoding = decoder.encoding;
  if (
    encoding === "utf-8" || encoding === "utf-16le" || encoding === "utf-16be"
  ) return read;
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  try {
    return decoder.decode(bytes);
  } catch (cause) {
    throw new HttpError(
      400,
      `Cannot accept form: ${
        fieldOf(what.position, what.name)
      } has a ${what.label} not valid ${encoding}, ${charset.namedBy}`,
      { cause },
    );
  }
}

/**
 * The part a sink gets, with its names read in the form's charset; the
 * part itself where they read alike.
 */
function withNames(
  part: MultipartPart,
  name: string,
  filename: string,
): MultipartPart {
  if (name === part.name && filename === part.filename) return part;
  return {
    name,
    filename,
    contentType: part.contentType,
    body: part.body,
    get headers() {
      return part.headers;
    },
    text: () => part.text(),
    bytes: () => part.bytes(),
  };
}

const MAX_FILES = 100;
const MAX_FIELDS = 100;
const MAX_FIELDS_BYTES = 1024 * 1024;
const MIN_BYTES_PER_SECOND = 1024;
const MIN_RATE_WINDOW_MS = 30_000;

/**
 * The multipart mode: parses the request with MultipartStream, receives
 * each file part with receiveBody into a held sink, collects the fields,
 * and commits every sink only after the closing boundary.
 */
function multipartReceiver(
  multipart: MultipartUploadOptions,
  receiveOptions: Omit<
    UploadHandlerOptions,
    "sink" | "multipart" | "acceptMultipartAsRaw" | "onComplete"
  >,
): (request: Request, context: UploadContext) => Promise<Response> {
  const what = "create upload handler";
  // Checked here, not at the first form (each was a 500 "the sink of file
  // part 1 failed to open", a TypeError logged).
  checkArgument(
    typeof multipart === "object" && multipart !== null,
    what,
    "multipart",
    "an object of options with a sink",
    multipart,
    " (write multipart: { sink: (part) => createFileSink(...) })",
  );
  checkArgument(
    typeof multipart.sink === "function",
    what,
    "multipart.sink",
    "a function opening the sink of a file part",
    multipart.sink,
    " (write multipart: { sink: (part) => createFileSink(...) })",
  );
  checkArgument(
    multipart.onComplete === undefined ||
      typeof multipart.onComplete === "function",
    what,
    "multipart.onComplete",
    "a function",
    multipart.onComplete,
  );
  // Each option read by name and the callbacks called on the object: a
  // class instance's method lost its `this` (every form a 500), and a
  // limit it defines as a getter was dropped by a rest spread.
  const {
    maxFiles = MAX_FILES,
    maxFields = MAX_FIELDS,
    maxFieldsBytes = MAX_FIELDS_BYTES,
    charset,
  } = multipart;
  const sink: MultipartUploadOptions["sink"] = (part, request, context) =>
    multipart.sink(part, request, context);
  const onComplete: NonNullable<MultipartUploadOptions["onComplete"]> =
    multipart.onComplete === undefined
      ? formCreated
      : (form, request, context) =>
        multipart.onComplete!(form, request, context);
  const limits: MultipartLimits = {
    maxParts: multipart.maxParts,
    maxHeaderBytes: multipart.maxHeaderBytes,
    maxFieldBytes: multipart.maxFieldBytes,
    maxFileBytes: multipart.maxFileBytes,
    maxTotalBytes: multipart.maxTotalBytes,
  };
  checkMax(what, "maxFiles", maxFiles);
  checkMax(what, "maxFields", maxFields);
  checkMax(what, "maxFieldsBytes", maxFieldsBytes);
  checkMultipartLimits(what, limits);
  checkArgument(
    charset === undefined || typeof charset === "string",
    what,
    "charset",
    "an encoding label (a string)",
    charset,
  );
  const optionDecoder = charset === undefined
    ? undefined
    : charsetDecoder(charset);
  if (charset !== undefined && optionDecoder === undefined) {
    throw new RangeError(
      `Cannot ${what}: charset ${
        JSON.stringify(charset.slice(0, 64))
      } is not an encoding TextDecoder knows (a WHATWG Encoding Standard label: "utf-8", "windows-1252", "shift_jis", ...)`,
    );
  }
  // UTF-8, the default, is read with the names' rule (windows-1252 for
  // bytes that are no UTF-8): undefined.
  const handlerCharset: FieldCharset | undefined =
    optionDecoder === undefined || optionDecoder.encoding === "utf-8"
      ? undefined
      : { decoder: optionDecoder, namedBy: "the handler's charset" };
  const {
    maxBytes = MAX_BODY_BYTES,
    idleTimeoutMs = IDLE_TIMEOUT_MS,
    minBytesPerSecond = MIN_BYTES_PER_SECOND,
    minRateWindowMs = MIN_RATE_WINDOW_MS,
    timeoutMs = 0,
    ...partOptions
  } = receiveOptions;
  checkIdleTimeout(what, idleTimeoutMs);
  checkMinRate(what, minBytesPerSecond, minRateWindowMs);
  checkTimerMs(what, "timeoutMs", timeoutMs);
  const parserLimits: MultipartLimits = {
    ...limits,
    maxTotalBytes: limits.maxTotalBytes ?? maxBytes,
  };
  const maxFileBytes = limits.maxFileBytes ?? MAX_BODY_BYTES;
  // The parser's refusal of the whole body names its maxTotalBytes, which
  // the user did not set when it came from maxBytes.
  const namedLimit = (error: HttpError) => {
    const said = ` exceeds maxTotalBytes ${maxBytes}`;
    if (
      limits.maxTotalBytes !== undefined || error.status !== 413 ||
      !error.message.endsWith(said)
    ) return error;
    return new HttpError(
      413,
      `${error.message.slice(0, -said.length)} exceeds maxBytes ${maxBytes}`,
      { cause: error },
    );
  };
  const tooMany = (count: string, name: string, limit: number) =>
    new HttpError(
      413,
      `Cannot accept multipart body: ${count} exceeds ${name} ${limit}`,
    );

  return async (request, context) => {
    const boundary = boundaryOf(request.headers.get("content-type"));
    if (request.body === null) {
      throw new HttpError(
        400,
        "Cannot accept multipart body: the request has no body",
      );
    }
    // The client's pace is watched on the whole body, parts and gaps alike;
    // the deadline errors the parser's input, so that a wait between parts
    // ends too.
    const deadline = bodyDeadline(timeoutMs);
    const parser = new MultipartStream(boundary, parserLimits);
    try {
      // A body already read throws its TypeError here (a server's mistake).
      pumpPacedBody(
        request.body,
        { idleTimeoutMs, minBytesPerSecond, minRateWindowMs },
        parser.writable,
        deadline.signal,
      );
    } catch (error) {
      deadline.clear();
      throw error;
    }
    const parts = parser.readable;
    const held: HeldSink[] = [];
    const form: ReceivedForm = { files: [], fields: [] };
    // The values are decoded once the form is in: its _charset_ field may
    // come after them. Their bytes are bounded as the strings were.
    const fields: HeldField[] = [];
    let formCharset: FieldCharset | undefined;
    let fieldsBytes = 0;
    const reader = parts.getReader();
    /** The part's place in the body, as the parser's errors count it. */
    let position = 0;
    try {
      while (true) {
        const next = await reader.read();
        if (next.done) break;
        const part = next.value;
        position++;
        if (part.filename === undefined) {
          if (fields.length >= maxFields) {
            throw tooMany(
              `field ${fields.length + 1}`,
              "maxFields",
              maxFields,
            );
          }
          const bytes = await part.bytes();
          fieldsBytes += bytes.length;
          if (fieldsBytes > maxFieldsBytes) {
            throw tooMany(
              `fields of ${fieldsBytes}+ bytes`,
              "maxFieldsBytes",
              maxFieldsBytes,
            );
          }
          const field: HeldField = {
            name: part.name,
            rawName: RAW_NAMES.get(part)?.name,
            bytes,
            position,
            charset: partCharset(part.contentType, position, part.name),
          };
          fields.push(field);
          // The first _charset_ names the form's; checked at once.
          if (formCharset === undefined && isCharsetField(part.name)) {
            const label = field.value = decodeField(
              field,
              undefined,
              undefined,
            );
            const decoder = charsetDecoder(label);
            if (decoder === undefined) {
              throw new HttpError(
                400,
                `Cannot accept form: ${
                  fieldOf(position, part.name)
                } names an unknown charset ${
                  JSON.stringify(label.slice(0, 64))
                }`,
              );
            }
            formCharset = {
              decoder,
              namedBy: "the charset its form's _charset_ field names",
            };
          }
          continue;
        }
        if (part.filename === "") {
          // A file input left empty: browsers send it with no file name and
          // no bytes. Bytes with no name (a File made with "" for its name,
          // curl's `filename=`) were dropped as well, the form answered 201.
          const reader = part.body.getReader();
          let result = await reader.read();
          while (!result.done && result.value.byteLength === 0) {
            result = await reader.read();
          }
          if (result.done) continue;
          await reader.cancel();
          throw new HttpError(
            400,
            `Cannot accept form: part ${position} (field ${
              JSON.stringify(part.name.slice(0, 64))
            }) has bytes but an empty file name (a Blob appended to FormData needs one under Bun: append(name, blob, fileName))`,
          );
        }
        if (form.files.length >= maxFiles) {
          throw tooMany(
            `file part ${form.files.length + 1}`,
            "maxFiles",
            maxFiles,
          );
        }
        // Its names in the form's charset as far as it is known: that of a
        // _charset_ field before it, else the handler's.
        const raw = RAW_NAMES.get(part);
        const nameCharset = formCharset ?? handlerCharset;
        const name = decodeNameIn(part.name, raw?.name, nameCharset, {
          position,
          name: part.name,
          label: "name",
        });
        const filename = decodeNameIn(
          part.filename,
          raw?.filename,
          nameCharset,
          { position, name: part.name, label: "file name" },
        );
        const named = withNames(part, name, filename);
        const opened = await serverSide(
          () => sink(named, request, context),
          `Cannot store body: the sink of file part ${
            form.files.length + 1
          } failed to open`,
        );
        const target = opened instanceof WritableStream
          ? { writable: opened, storedName: undefined }
          : opened;
        const hold = new HeldSink(target.writable, target.remove);
        held.push(hold);
        // The same receive path as a whole-body upload: limits, digests
        // (a part's own Content-Length or Content-Digest), the sink's
        // ownership. The pace is watched on the whole body above.
        const index = form.files.length + 1;
        const received = await receiveBody(part.body, hold.writable, {
          ...partOptions,
          maxBytes: maxFileBytes,
          headers: part.headers,
          idleTimeoutMs: 0,
          minBytesPerSecond: 0,
          signal: deadline.signal,
        }).catch((error) => {
          throw inPart(error, index);
        });
        const file: ReceivedFile = {
          name,
          filename,
          contentType: part.contentType,
          ...received,
        };
        if (target.storedName !== undefined) {
          file.storedName = target.storedName;
        }
        form.files.push(file);
      }
      if (deadline.signal.aborted) throw deadline.signal.reason;
      deadline.clear();
      // Before any sink commits: a name or value not valid in its charset
      // is a 400. A name is in the form's charset, not its part's.
      for (const field of fields) {
        form.fields.push({
          name: decodeNameIn(
            field.name,
            field.rawName,
            formCharset ?? handlerCharset,
            { position: field.position, name: field.name, label: "name" },
          ),
          value: decodeField(field, formCharset, handlerCharset),
        });
      }
      fields.length = 0;
      // The whole body is in: commit every part, in order.
      for (let i = 0; i < held.length; i++) {
        try {
          await held[i].commit();
        } catch (cause) {
          const message = `Cannot store body: the sink of file part ${
            i + 1
          } failed to close${await removeCommitted(held.slice(0, i))}`;
          // 507 for a full disk; a sink's HttpError stays behind this one,
          // which says which part failed and what was removed.
          throw cause instanceof HttpError
            ? new HttpError(500, message, { cause })
            : storeFailed(message, cause);
        }
      }
    } catch (cause) {
      deadline.clear();
      const error = deadline.signal.aborted
        ? deadline.signal.reason
        : cause instanceof HttpError
        ? namedLimit(cause)
        : new HttpError(
          400,
          `Cannot receive body: ${messageOf(cause)}`,
          { cause },
        );
      await Promise.all(held.map((hold) => hold.discard(error)));
      await reader.cancel(error).catch(() => {});
      throw error;
    }
    return await runOnComplete(() => onComplete(form, request, context));
  };
}

/**
 * A body check's refusal of a file part (its own Content-Length, its
 * Content-Digest) said of the part: it named the request's body and
 * `maxBytes`, where the limit is `maxFileBytes` and the length the part's.
 */
function inPart(error: unknown, index: number): unknown {
  if (!(error instanceof HttpError)) return error;
  const said = (
    [
      ["Cannot accept body: ", ""],
      // A malformed Content-Length or Content-Digest of the part's own.
      ["Cannot read body: ", ""],
      ["Cannot parse digest header: ", "its Content-Digest: "],
    ] as const
  ).find(([prefix]) => error.message.startsWith(prefix));
  if (said === undefined) return error;
  const [prefix, subject] = said;
  return new HttpError(
    error.status,
    `Cannot accept form: file part ${index}: ${subject}${
      error.message.slice(prefix.length).replace(
        /\bmaxBytes\b/,
        "maxFileBytes",
      )
    }`,
    { cause: error },
  );
}
