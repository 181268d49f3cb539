// Servers for the browser tests: throw-away certificates for HTTPS (where
// Chromium speaks HTTP/2), and a Deno.serve server that a test can close
// without waiting on connections that carry no request.
//
// Why not `server.shutdown()`: Deno 2.9.6's graceful shutdown waits until
// every connection is closed by its client, and Chromium keeps a spare TLS
// connection it opened ahead of need (a preconnect that lost the race to the
// connection that carried the page) idle, without sending a byte, until its
// 60 s idle timeout: the shutdown then takes a minute
// (docs/known-runtime-issues.md (h)). `close()` waits instead for the
// requests the server has seen to be answered (bounded), starts the graceful
// shutdown and waits for it only briefly: what is left then is connections
// without a request, which end when their client closes them.

import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** A test server's certificate, its key and the CA that signed it. */
export interface Tls {
  cert: string;
  key: string;
  /** base64 SHA-256 of the leaf's SubjectPublicKeyInfo. */
  spki: string;
  /** The CA's certificate (PEM), for clients other than Chromium. */
  ca: string;
}

/** A throw-away CA and a leaf for 127.0.0.1 signed by it (Deno refuses a
 * self-signed CA:TRUE certificate as a server certificate). */
export async function makeCertificates(dir: string): Promise<Tls> {
  await mkdir(dir, { recursive: true });
  const openssl = (...args: string[]) =>
    execFileSync("openssl", args, {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
  openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-subj",
    "/CN=sluice test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  );
  openssl(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "leaf.key",
    "-out",
    "leaf.csr",
    "-subj",
    "/CN=127.0.0.1",
  );
  await writeFile(
    join(dir, "leaf.ext"),
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n" +
      "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
  );
  openssl(
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-out",
    "leaf.crt",
    "-extfile",
    "leaf.ext",
  );
  const publicKey = openssl("x509", "-in", "leaf.crt", "-pubkey", "-noout");
  const der = execFileSync("openssl", ["pkey", "-pubin", "-outform", "der"], {
    input: publicKey,
  });
  return {
    cert: await readFile(join(dir, "leaf.crt"), "utf8"),
    key: await readFile(join(dir, "leaf.key"), "utf8"),
    spki: createHash("sha256").update(der).digest("base64"),
    ca: await readFile(join(dir, "ca.crt"), "utf8"),
  };
}

/** A server from {@linkcode serveForTest}. */
export interface TestServer {
  /** The port it listens on (127.0.0.1). */
  port: number;
  /** Requests seen whose response has not been handed over yet. */
  open(): number;
  /**
   * Waits up to `waitMs` for every request seen to be answered, then shuts
   * the server down gracefully (answers are flushed, connections get
   * GOAWAY or are closed when idle), waiting at most `graceMs` for the
   * connections to close: past it, the only ones left carry no request, and
   * the shutdown ends in the background when their clients close them.
   * When a request is still unanswered after `waitMs`, the server is ended
   * at once instead (cutting it) and `close()` rejects naming the count.
   */
  close(waitMs?: number, graceMs?: number): Promise<void>;
  /** Resolves when the server has stopped, its last connection closed. */
  finished: Promise<void>;
}

/**
 * `Deno.serve` on 127.0.0.1, port 0, over TLS when `tls` is given, with a
 * `close()` that does not wait for idle connections.
 */
export async function serveForTest(
  handler: (request: Request) => Response | Promise<Response>,
  tls?: { cert: string; key: string },
): Promise<TestServer> {
  const controller = new AbortController();
  let open = 0;
  let settled = Promise.withResolvers<void>();
  const { promise: listening, resolve } = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: controller.signal,
    onListen: ({ port }) => resolve(port),
    ...(tls ? { cert: tls.cert, key: tls.key } : {}),
  }, (request, info) => {
    open++;
    // Settles once the response has been handed over (not yet flushed) or
    // has failed (the client went away): either way the request is over.
    const done = () => {
      if (--open === 0) settled.resolve();
    };
    (info as { completed?: Promise<void> }).completed!.then(done, done);
    return handler(request);
  });
  const port = await listening;
  const within = async (promise: Promise<unknown>, ms: number) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), ms);
    });
    try {
      return await Promise.race([promise.then(() => "done"), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    port,
    open: () => open,
    finished: server.finished,
    async close(waitMs = 10_000, graceMs = 1_000) {
      if (open > 0) {
        settled = Promise.withResolvers<void>();
        if (await within(settled.promise, waitMs) === "timeout") {
          const late = open;
          // op_http_cancel: closes the listener and every connection now.
          // (Not after shutdown() has begun: Deno 2.9.6 then throws
          // BadResource from the signal's listener, uncaught.)
          controller.abort();
          await server.finished;
          throw new Error(
            `${late} request(s) still unanswered ${waitMs} ms after the test`,
          );
        }
      }
      const shutdown = server.shutdown();
      // Ends when idle clients close their connections; nothing to report.
      shutdown.catch(() => {});
      await within(shutdown, graceMs);
    },
  };
}
