// The `tls` option of serve and serveHttp2: its check (two PEM strings) and
// the server's URL with it.

import { createPrivateKey, X509Certificate } from "node:crypto";
import { checkArgument } from "../_internal/arguments.ts";
import { messageOf } from "../_internal/message_of.ts";
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
  checkPair(what, cert as string, key as string);
  return { cert: cert as string, key: key as string };
}

/**
 * Checks that the key is the certificate's: a pair that does not match
 * started serveHttp2 under Deno, whose every client then failed its
 * handshake with no word on the server ("Client network socket
 * disconnected"), and Bun threw OpenSSL's own words
 * (`KEY_VALUES_MISMATCH`).
 */
function checkPair(what: string, cert: string, key: string): void {
  const read = <T>(name: string, kind: string, make: () => T): T => {
    try {
      return make();
    } catch (cause) {
      throw new TypeError(
        `Cannot ${what}: ${name} is no ${kind} PEM the runtime can read (${
          messageOf(cause)
        })`,
        { cause },
      );
    }
  };
  const privateKey = read(
    "tls.key",
    "private key",
    () => createPrivateKey(key),
  );
  const certificate = read(
    "tls.cert",
    "certificate",
    () => new X509Certificate(cert),
  );
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new TypeError(
      `Cannot ${what}: tls.key is not the key of tls.cert (its first certificate's public key is another key's)`,
    );
  }
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
