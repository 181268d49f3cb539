// The `tls` option of serve and serveHttp2: its check (two PEM strings) and
// the server's URL with it.

import { checkArgument } from "../_internal/arguments.ts";
import { serverUrl } from "./_server_url.ts";

/** A certificate chain and its private key, PEM strings. */
export interface TlsOptions {
  cert: string;
  key: string;
}

/**
 * Checks the `tls` option of `what` ("serve", "serve HTTP/2"): undefined,
 * or both PEM strings.
 */
export function checkTls(
  what: string,
  tls: unknown,
): TlsOptions | undefined {
  if (tls === undefined) return undefined;
  checkArgument(
    typeof tls === "object" && tls !== null,
    what,
    "tls",
    "an object with cert and key (PEM strings)",
    tls,
  );
  const { cert, key } = tls as { cert?: unknown; key?: unknown };
  checkPem(what, cert, "tls.cert");
  checkPem(what, key, "tls.key");
  return { cert: cert as string, key: key as string };
}

/** The server's URL: `https:` with `tls`. */
export function baseUrl(hostname: string, port: number, tls: unknown): URL {
  const url = serverUrl(hostname, port);
  if (tls) url.protocol = "https:";
  return url;
}

/**
 * Checks one PEM string: a file's path in its place (what Bun.file and
 * other servers take) got the runtime's own words ("No certificates found
 * in certificate data", "PEM routines:OPENSSL_internal:NO_START_LINE").
 */
function checkPem(what: string, value: unknown, name: string): void {
  const pem = typeof value === "string" && value.includes("-----BEGIN ");
  checkArgument(
    pem,
    what,
    name,
    "a PEM string",
    value,
    value === ""
      ? " (empty)"
      : typeof value === "string"
      ? " with no -----BEGIN line (a file's path? pass the file's contents)"
      : "",
  );
}
