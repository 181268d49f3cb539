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
 * (`KEY_VALUES_MISMATCH`). Each is read from its first PEM block of the
 * kind, as the servers read them: one file holding the key and the chain
 * may be given as both (Deno's createPrivateKey refused the whole of it).
 */
function checkPair(what: string, cert: string, key: string): void {
  const keyBlock =
    /-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----[\s\S]*?-----END \1-----/
      .exec(key)?.[0];
  const certBlock =
    /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/
      .exec(cert)?.[0];
  if (keyBlock === undefined) {
    throw new TypeError(
      `Cannot ${what}: tls.key holds no private key (no -----BEGIN ... PRIVATE KEY----- block)`,
    );
  }
  if (certBlock === undefined) {
    throw new TypeError(
      `Cannot ${what}: tls.cert holds no certificate (no -----BEGIN CERTIFICATE----- block)`,
    );
  }
  if (
    keyBlock.startsWith("-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
    /^Proc-Type: *4, *ENCRYPTED/m.test(keyBlock)
  ) {
    throw new TypeError(
      `Cannot ${what}: tls.key is encrypted: pass it decrypted (this option takes no passphrase)`,
    );
  }
  const read = <T>(name: string, kind: string, make: () => T): T => {
    try {
      return make();
    } catch (cause) {
      throw new TypeError(
        `Cannot ${what}: ${name} is no ${kind} the runtime can read (${
          messageOf(cause)
        })`,
        { cause },
      );
    }
  };
  const privateKey = read(
    "tls.key",
    "private key",
    () => createPrivateKey(keyBlock),
  );
  const certificate = read(
    "tls.cert",
    "certificate",
    () => new X509Certificate(certBlock),
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
