// What the clients' network failures look like, for the tests of their
// messages (tests/client_fetch_failures.test.ts,
// tests/fetch_duplex_network_error.test.ts).

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { serve, type Server } from "../lib/runtime/serve.ts";
import { makeCertificates } from "./browser/_test_server.ts";
import { deadline, makeTempDir, removeDir } from "./_helpers.ts";

// Deno: "tcp connect error: Connection refused (os error 111)" in its fetch
// error's cause; Bun: "ECONNREFUSED: Unable to connect. ..." as the message.
export const REFUSED = /Connection refused|ECONNREFUSED/;
// Deno: "invalid peer certificate: UnknownIssuer" in its fetch error's cause;
// Bun: "unable to verify the first certificate" as the message.
export const UNTRUSTED =
  /invalid peer certificate: UnknownIssuer|unable to verify the first certificate/;

/** A URL on 127.0.0.1 whose port was just closed: connecting is refused. */
export async function refusedUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}/`;
}

/** What `promise` rejected with (it must reject, within 20 s). */
export function rejection(
  promise: Promise<unknown>,
  what: string,
): Promise<unknown> {
  return deadline(
    promise.then(
      () => assert.fail(`${what} resolved`),
      (error: unknown) => error,
    ),
    20_000,
    what,
  );
}

/** What the runtime's own fetch of a streamed POST to `url` rejects with. */
export function fetchRejection(url: string | URL): Promise<Error> {
  return rejection(
    fetch(url, {
      method: "POST",
      body: new ReadableStream<Uint8Array>({
        start: (controller) => controller.enqueue(new Uint8Array([120])),
      }),
      duplex: "half",
    } as RequestInit),
    "fetch",
  ) as Promise<Error>;
}

/**
 * An https echo server whose certificate no client trusts, started by
 * `start()` (a describe's `before`) and stopped by `stop()` (its `after`).
 */
export function untrustedServer(): {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly url: URL;
} {
  let dir: string | undefined;
  let server: Server | undefined;
  return {
    async start() {
      dir = await makeTempDir("tls-");
      const { cert, key } = await makeCertificates(dir);
      server = await serve((request) => new Response(request.body), {
        hostname: "127.0.0.1",
        port: 0,
        tls: { cert, key },
      });
    },
    async stop() {
      await server?.shutdown();
      if (dir !== undefined) await removeDir(dir);
    },
    get url() {
      return server!.url;
    },
  };
}
