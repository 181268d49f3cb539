import { checkArgument, checkBodyUnused } from "../_internal/arguments.ts";
import { HttpError } from "./http_error.ts";
import { refuseContentCoding } from "./_compression.ts";
import { boundaryOf, CANNOT_PARSE } from "./_multipart_headers.ts";
import {
  type MultipartPart,
  MultipartStream,
  type MultipartStreamOptions,
} from "./multipart_stream.ts";

/** Options for {@linkcode parseMultipart}: the parser's limits. */
export type ParseMultipartOptions = MultipartStreamOptions;

/**
 * The parts of a `multipart/form-data` request (an HTML form, a browser's
 * `FormData`, `curl -F`), streamed: a `ReadableStream` (async iterable) of
 * {@linkcode MultipartPart}s, each with its body as a stream. Read or
 * cancel each part's body before asking for the next. The boundary comes
 * from the request's Content-Type: HttpError 415 if it is not
 * `multipart/form-data`, 400 if it has no valid boundary or the request no
 * body. Over-limit bodies error the stream with a 413, malformed ones with
 * a 400 (see {@linkcode MultipartLimits}).
 *
 * @param request The request (or response) to parse.
 * @param options Limits; see {@linkcode MultipartLimits}.
 * @returns The parts, in order.
 *
 * @example Store the files of a form upload
 * ```ts
 * import { HttpError, parseMultipart } from "@sluice/streams/http";
 *
 * async function handler(request: Request): Promise<Response> {
 *   try {
 *     const names: string[] = [];
 *     for await (const part of parseMultipart(request, { maxFileBytes: 1 << 20 })) {
 *       if (part.filename === undefined) {
 *         names.push(`${part.name}=${await part.text()}`);
 *       } else {
 *         let bytes = 0;
 *         for await (const chunk of part.body) bytes += chunk.byteLength;
 *         names.push(`${part.filename}: ${bytes} bytes`);
 *       }
 *     }
 *     return Response.json(names);
 *   } catch (error) {
 *     if (error instanceof HttpError) {
 *       return new Response(error.message, { status: error.status });
 *     }
 *     throw error;
 *   }
 * }
 * const form = new FormData();
 * form.append("file", new Blob(["hi"]), "hi.txt");
 * console.log(await (await handler(new Request("http://localhost/", { method: "POST", body: form }))).json());
 * ```
 */
export function parseMultipart(
  request: Request | Response,
  options: ParseMultipartOptions = {},
): ReadableStream<MultipartPart> {
  checkArgument(
    typeof (request as Partial<Request> | null)?.headers?.get === "function",
    "parse multipart body",
    "the request",
    "a Request or a Response",
    request,
  );
  const boundary = boundaryOf(request.headers.get("content-type"));
  // A response's body fetch may have decoded (its header stays); a
  // request's is as sent.
  if (request instanceof Request) {
    refuseContentCoding(
      request.headers.get("content-encoding"),
      "parse multipart body",
    );
  }
  if (request.body === null) {
    throw new HttpError(400, `${CANNOT_PARSE}: the request has no body`);
  }
  if (request instanceof Request) {
    checkBodyUnused("parse multipart body", request);
  }
  return request.body.pipeThrough(new MultipartStream(boundary, options));
}
