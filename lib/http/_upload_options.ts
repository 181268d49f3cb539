// The options upload() and uploadFile() share, checked alike at the call
// on every path (uploadFile's own under Deno, upload()'s under Bun and
// Node).

import {
  checkArgument,
  checkDigestBytes,
  checkHeadersOption,
  checkOneOf,
  checkSignal,
} from "../_internal/arguments.ts";

/**
 * Fetch's `credentials` values (spelled out: `RequestCredentials` is a DOM
 * type that Workers' types lack).
 */
type Credentials = "omit" | "same-origin" | "include";
const CREDENTIALS: readonly Credentials[] = [
  "omit",
  "same-origin",
  "include",
];

/** What both take: see `UploadOptions` in upload.ts. */
interface SharedUploadOptions {
  signal?: AbortSignal;
  method?: string;
  headers?: HeadersInit;
  credentials?: Credentials;
  sha256?: Uint8Array;
}

/**
 * Checks the options upload() and uploadFile() share (`what`: "upload",
 * "upload file"); returns the credentials to send, if given.
 */
export function checkUploadOptions(
  what: string,
  options: SharedUploadOptions,
): Credentials | undefined {
  checkSignal(what, options.signal);
  checkArgument(
    options.method === undefined || typeof options.method === "string",
    what,
    "method",
    "a string",
    options.method,
  );
  checkHeadersOption(what, options.headers);
  checkDigestBytes(what, "sha256", options.sha256);
  return options.credentials === undefined
    ? undefined
    : checkOneOf(what, "credentials", options.credentials, CREDENTIALS);
}
