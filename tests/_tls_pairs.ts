// The TLS key and certificate checks `serve` and `serveHttp2` share
// (lib/runtime/_tls.ts), run through either server's start: a key that is
// not the certificate's, PEMs of the other kind, an encrypted key, and one
// file holding both (which must start). tests/serve_tls.test.ts,
// tests/serve_http2_tls.test.ts.

import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";

/** A certificate and its key, PEM strings. */
export interface Pair {
  cert: string;
  key: string;
}

/**
 * Checks that `start` (a server given `tls`) refuses the bad pairs made
 * from `pair` with the messages of `what` ("serve", "serve HTTP/2"), and
 * starts with one file holding the key and the certificate.
 */
export async function assertPairsChecked(
  what: string,
  pair: Pair,
  start: (tls: Pair) => Promise<{ shutdown(): Promise<void> }>,
): Promise<void> {
  const refused = (tls: Pair, message: string) =>
    assert.rejects(start(tls), { name: "TypeError", message });
  const other = generateKeyPairSync("ec", { namedCurve: "prime256v1" })
    .privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  await refused(
    { cert: pair.cert, key: other },
    `Cannot ${what}: tls.key is not the key of tls.cert (its first certificate's public key is another key's)`,
  );
  // Swapped: each a PEM, of the other kind.
  await refused(
    { cert: pair.key, key: pair.cert },
    `Cannot ${what}: tls.key holds no private key (no -----BEGIN ... PRIVATE KEY----- block)`,
  );
  const encrypted = generateKeyPairSync("ec", { namedCurve: "prime256v1" })
    .privateKey.export({
      type: "pkcs8",
      format: "pem",
      cipher: "aes-256-cbc",
      passphrase: "secret",
    }) as string;
  await refused(
    { cert: pair.cert, key: encrypted },
    `Cannot ${what}: tls.key is encrypted: pass it decrypted (this option takes no passphrase)`,
  );
  // One file with the key and the certificate, given as both (Deno's
  // createPrivateKey refused the whole of it, though the server takes it).
  const both = `${pair.key}\n${pair.cert}`;
  const started = await start({ cert: both, key: both });
  await started.shutdown();
}
