import { bodyTooLargeMessage } from "../_internal/body_too_large.ts";
import { concatBytes } from "../_internal/bytes.ts";
import { HttpError } from "./http_error.ts";
import { parseHeaderValue } from "./_multipart_headers.ts";

/**
 * Whether `error` is an {@linkcode HttpError} of status 400-499: the
 * client's side of an exchange, which the library's handlers raise on
 * purpose (a client that went away, an idle or oversized body). The default
 * error handlers answer or drop those without logging them as failures.
 */
export function isClientError(error: unknown): error is HttpError {
  return error instanceof HttpError && error.status >= 400 &&
    error.status < 500;
}

/**
 * A failed read of a request body: the client went away or sent a
 * malformed body (a bad chunk size), which the runtime reports in its own
 * words. As a 400 HttpError, default onErrors do not log it as a server's
 * failure (a client could fill the log); an HttpError stays as it is, and a
 * framework's limit on the body is a 413 ({@linkcode bodyTooLarge}).
 */
export function requestBodyFailed(what: string, cause: unknown): HttpError {
  if (cause instanceof HttpError) return cause;
  return bodyTooLarge(what, cause) ?? new HttpError(
    400,
    `Cannot ${what}: the request body failed (the client went away, or sent a malformed body)`,
    { cause },
  );
}

/**
 * A request body failed by a framework's limit on it (srvx's
 * `maxRequestBodySize`, h3's `bodyLimit()`: an error with `status` 413):
 * a 413 HttpError in its words ("Cannot <what>: Request body exceeds
 * ..."), the error its cause; `undefined` for any other failure.
 */
export function bodyTooLarge(
  what: string,
  cause: unknown,
): HttpError | undefined {
  const message = bodyTooLargeMessage(cause);
  return message === undefined
    ? undefined
    : new HttpError(413, `Cannot ${what}: ${message}`, { cause });
}

/**
 * 405 for a method a handler does not serve, with the `Allow` header RFC
 * 9110 (section 15.5.6) requires: an `HttpError`'s plain-text answer
 * ("Cannot <what>: method DELETE is not POST or PUT").
 */
function methodNotAllowed(
  what: string,
  method: string,
  allowed: readonly string[],
): Response {
  const named = allowed.length > 1
    ? `${allowed.slice(0, -1).join(", ")} or ${allowed.at(-1)}`
    : allowed[0];
  const response = new HttpError(
    405,
    `Cannot ${what}: method ${method.slice(0, 32)} is not ${named}`,
  ).getResponse();
  response.headers.set("allow", allowed.join(", "));
  return response;
}

/** The methods the handlers that read a request body serve: uploads, echo, duplex. */
export const BODY_METHODS: readonly string[] = ["POST", "PUT"];

/**
 * A client's error for a server's answer that is no success: an HttpError
 * of its status, or 502 where no HttpError can carry it (a page's opaque
 * redirect under `redirect: "manual"` has status 0); `message` names it.
 */
export function answeredError(status: number, message: string): HttpError {
  return new HttpError(
    Number.isInteger(status) && status >= 300 && status <= 599 ? status : 502,
    message,
  );
}

/** The most bytes of an error answer's body a client quotes. */
const MAX_QUOTED_BYTES = 1024;
/** How long a client waits for an error answer's body to quote it. */
const QUOTE_WAIT_MS = 2_000;

/**
 * The server's words in an error answer, for a client's error message:
 * `": <text>"` from the start of its body (at most 1 KiB, the rest
 * cancelled), decoded in its charset (UTF-8 by default; a character cut
 * at the end left out), whitespace runs made one space and other control
 * characters escaped (a peer's bytes never drive a terminal); or "" for
 * no body, an HTML or XML page (a proxy's or a platform's, noise in a
 * message) or a body that does not end (or fill 1 KiB) within 2 s.
 */
export async function quoteBody(response: Response): Promise<string> {
  const body = response.body;
  if (!body) return "";
  const { type, params } = parseHeaderValue(
    response.headers.get("content-type") ?? "",
  );
  if (type === "text/html" || type === "application/xhtml+xml") {
    await body.cancel().catch(() => {});
    return "";
  }
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let length = 0;
  // A cancel ends the read waiting: a stalled body adds nothing (not even
  // what came of it, maybe cut anywhere).
  let incomplete = false;
  const timer = setTimeout(() => {
    incomplete = true;
    reader.cancel().catch(() => {});
  }, QUOTE_WAIT_MS);
  try {
    while (length < MAX_QUOTED_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      const part = value.subarray(0, MAX_QUOTED_BYTES - length);
      parts.push(part);
      length += part.byteLength;
    }
    await reader.cancel();
  } catch {
    // A body that fails to arrive adds nothing.
    incomplete = true;
  } finally {
    clearTimeout(timer);
  }
  if (incomplete) return "";
  const text = decoderOf(params.get("charset"))
    .decode(concatBytes(parts, length), { stream: length >= MAX_QUOTED_BYTES })
    .replace(/\s+/g, " ")
    .trim();
  if (
    !text ||
    /^(?:<!--.*?-->\s*)*<(?:!doctype|html|head|body|\?xml)\b/is.test(text)
  ) {
    return "";
  }
  return `: ${
    text.replace(
      CONTROL,
      (c) => {
        const code = c.codePointAt(0)!;
        return code > 0xffff
          ? `\\u{${code.toString(16)}}`
          : `\\u${code.toString(16).padStart(4, "0")}`;
      },
    )
  }`;
}

/**
 * The characters a quote escapes: controls (C0, DEL, C1) and format
 * characters (the bidirectional overrides that show "exe.png" for
 * "gnp.exe", zero-width ones).
 */
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\p{Cf}]/gu;

/** A decoder of a charset label, UTF-8 for none or an unknown one. */
function decoderOf(label: string | undefined): TextDecoder {
  try {
    return new TextDecoder(label ?? "utf-8");
  } catch {
    return new TextDecoder();
  }
}

/**
 * A handler's answer to a method it does not serve: `OPTIONS` 204 (a CORS
 * preflight, which no handler's work may answer), any other `405`
 * ({@linkcode methodNotAllowed}), both with `Allow` and the `headers` of the
 * handler's options, where its own `Access-Control-*` headers answer a
 * preflight (the answer's own headers win; each `Set-Cookie` is kept).
 */
export function refuseMethod(
  what: string,
  request: Request,
  allowed: readonly string[],
  headers?: HeadersInit,
): Response {
  const answer = request.method === "OPTIONS"
    ? new Response(null, {
      status: 204,
      headers: { allow: allowed.join(", ") },
    })
    : methodNotAllowed(what, request.method, allowed);
  for (const [name, value] of new Headers(headers)) {
    if (name === "set-cookie") answer.headers.append(name, value);
    else if (!answer.headers.has(name)) answer.headers.set(name, value);
  }
  return answer;
}
