import { createReadStream, openAsBlob } from "node:fs";
import { stat } from "node:fs/promises";
import * as http from "node:http";
import * as https from "node:https";
import { connect as connectTls, type ConnectionOptions } from "node:tls";
import type { Duplex } from "node:stream";
import { formatDigestHeader } from "../http/digest_header.ts";
import { resolveHttpUrl } from "../http/_url.ts";
import { checkUploadOptions } from "../http/_upload_options.ts";
import { checkProgress, progressCounter } from "../streams/progress_stream.ts";
import { upload, type UploadOptions } from "../http/upload.ts";
import {
  headersFromNode,
  headersToNode,
  readableFromNode,
} from "./_node_streams.ts";

/** Options for {@linkcode uploadFile}. */
export type UploadFileOptions = Omit<
  UploadOptions,
  "contentLength" | "fetch"
>;

/**
 * The response's `body` as the caller reads it: cancelled, it closes the
 * connection (`onCancel`: the rest of the answer went on arriving, and over
 * http the socket held the process); with a `socket` kept alive, that
 * socket holds the process open only while a read waits.
 */
function responseBody(
  body: ReadableStream<Uint8Array>,
  socket: { ref(): unknown; unref(): unknown } | null,
  onCancel: () => void,
): ReadableStream<Uint8Array> {
  socket?.unref();
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      socket?.ref();
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } finally {
        socket?.unref();
      }
    },
    async cancel(reason) {
      try {
        await reader.cancel(reason);
      } finally {
        onCancel();
      }
    },
  }, { highWaterMark: 0 });
}

/** Bytes read from the file per write under Deno. */
const READ_BYTES = 1024 * 1024;

const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/**
 * The agent of one upload over https under Deno. Deno 2.9.6's node:https
 * trusts none of the CAs that DENO_CERT or --cert add (fetch does: "unable
 * to verify the first certificate"); its node:tls does
 * (docs/known-runtime-issues.md, (ac)). An Agent that connects with
 * node:tls keeps the rest of https.Agent's work: the server name (SNI and
 * the certificate's check) from the URL or a Host header, and keep-alive:
 * a request that said `Connection: close` (no agent, or one without
 * keep-alive) to a server that answered early (401, 302) and then closed
 * failed with "write EPIPE" instead of resolving with the answer. One per
 * upload, destroyed when its request or response closes: a kept socket held
 * the process open (and holds it only while a read of the response body
 * waits: `responseBody`).
 */
class TrustingAgent extends https.Agent {
  constructor() {
    super({ keepAlive: true });
  }
  override createConnection(options: ConnectionOptions) {
    return connectTls(options);
  }
}

/**
 * Uploads a file as a streaming request body with its `Content-Length`, by
 * the fastest means the runtime offers, and resolves with the response. The
 * file is read as it is sent, never held in memory.
 *
 * - Bun and Node: `upload` with the file as a disk-backed Blob
 *   (`fs.openAsBlob`), which their `fetch` sends with its length.
 * - Deno: `node:http`, writing 1 MiB blocks with a `Content-Length`. Deno's
 *   `fs.openAsBlob` reads the whole file into memory, its `fetch` sends a
 *   Blob slowly and a stream only chunked (in 64 KiB chunks, which
 *   `Deno.serve` delivers as about 32 KiB pieces); measured here, this way is
 *   2-5 times as fast as either, close to `curl -T` (see docs/performance.md
 *   in the repository).
 *
 * For an `https:` server with a private CA, add the CA to the runtime's
 * trust store: `DENO_CERT` or `--cert` under Deno (or
 * `NODE_EXTRA_CA_CERTS`), `NODE_EXTRA_CA_CERTS` under Bun and Node. (Under
 * Deno, `--unsafely-ignore-certificate-errors` does not apply to it.)
 *
 * @param url Where to send the file (`http:` or `https:`).
 * @param path The file to send.
 * @param options Content type, progress, digest, method, headers and
 *   cancellation, as for `upload`.
 * @returns The server's response, with a streamed body.
 *
 * @example Upload a file with progress
 * ```ts ignore
 * import { uploadFile } from "@sluice/streams/fs";
 *
 * const response = await uploadFile("http://127.0.0.1:9090/stream/receiver", "./big.iso", {
 *   onProgress: (sent, total) => console.log(`${sent} / ${total}`),
 * });
 * console.log(response.status, await response.text()); // 201 {"bytes":...}
 * ```
 */
export async function uploadFile(
  url: string | URL,
  path: string,
  options: UploadFileOptions = {},
): Promise<Response> {
  // The checks upload() makes, made at once on both paths.
  checkUploadOptions("upload file", options);
  if (options.onProgress !== undefined) {
    checkProgress(
      options.onProgress,
      options.progressIntervalMs ?? 100,
      "progressIntervalMs",
    );
  }
  options.signal?.throwIfAborted();
  // Before either path: Node's fetch said only "fetch failed", and a URL
  // that is none only "Invalid URL".
  const target = resolveHttpUrl("upload file", url);
  if (!("Deno" in globalThis)) {
    // stat first: Node's openAsBlob names neither the path nor ENOENT.
    if (!(await stat(path)).isFile()) {
      throw new TypeError(
        `Cannot upload file: ${JSON.stringify(path)} is not a file`,
      );
    }
    // upload() follows no redirect either, as under Deno (node:http
    // follows none): Bun's fetch sent a disk-backed Blob again as an empty
    // body, and the server stored an empty file.
    // No fetch of a caller's (plain JS may pass one): it would follow.
    return await upload(url, await openAsBlob(path), {
      ...options,
      fetch: undefined,
    });
  }

  const info = await stat(path);
  if (!info.isFile()) {
    throw new TypeError(
      `Cannot upload file: ${JSON.stringify(path)} is not a file`,
    );
  }
  const size = info.size;
  const { method = "POST", onProgress, signal, sha256 } = options;
  const progressIntervalMs = options.progressIntervalMs ?? 100;
  const headers = new Headers(options.headers);
  headers.set(
    "content-type",
    options.contentType ?? headers.get("content-type") ??
      "application/octet-stream",
  );
  headers.set("content-length", String(size));
  if (sha256) {
    headers.set("content-digest", formatDigestHeader({ "sha-256": sha256 }));
  }

  return await new Promise<Response>((resolve, reject) => {
    const file = createReadStream(path, { highWaterMark: READ_BYTES });
    const agent = target.protocol === "https:"
      ? new TrustingAgent()
      : undefined;
    const request = (agent === undefined ? http : https).request(
      target,
      {
        method,
        headers: headersToNode(headers),
        ...(agent === undefined ? {} : { agent }),
      },
    );
    let settled = false;
    const fail = (error: unknown) => {
      file.destroy();
      // Once the response has arrived, a failed send (the server stopped
      // reading) must not cut the response short.
      if (settled) return;
      settled = true;
      request.destroy();
      reject(signal?.aborted ? signal.reason : error);
    };
    const onAbort = () => {
      fail(signal!.reason);
      request.destroy();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    request.once("close", () => {
      signal?.removeEventListener("abort", onAbort);
      agent?.destroy();
    });
    request.on("error", fail);
    file.once("error", fail);

    if (onProgress) {
      // A callback that throws fails the upload (it was thrown from the
      // file's event, nobody's to catch: under Deno it ended the process).
      const counter = progressCounter(
        (sent, total) => {
          try {
            onProgress(sent, total);
          } catch (error) {
            fail(error);
          }
        },
        size,
        progressIntervalMs,
      );
      file.on(
        "data",
        (chunk: string | Uint8Array) => counter.add(chunk.length),
      );
      file.once("end", () => counter.end());
    }
    file.pipe(request);

    request.once("response", (incoming) => {
      settled = true;
      // The server may answer before it has read the whole body (a refusal):
      // stop sending, the answer is what counts.
      const cut = !file.readableEnded;
      if (cut) file.destroy();
      const status = incoming.statusCode ?? 0;
      let body = NULL_BODY_STATUSES.has(status) || method === "HEAD"
        ? null
        : readableFromNode(incoming as unknown as Duplex, 65536);
      if (body === null) incoming.resume();
      else {
        // A connection kept alive holds the process while its body waits
        // to be read: a program that looked at the status alone never
        // exited (Deno.serve keeps it open). It counts only while a read
        // waits, as fetch's bodies do.
        body = responseBody(
          body,
          incoming.socket,
          () => {
            incoming.destroy();
            request.destroy();
          },
        );
      }
      const responseHeaders = headersFromNode(
        incoming.headers as Record<string, string | string[] | undefined>,
      );
      const onAbortBody = () => incoming.destroy(signal!.reason);
      signal?.addEventListener("abort", onAbortBody, { once: true });
      incoming.once("close", () => {
        signal?.removeEventListener("abort", onAbortBody);
        // Its body cut short, the request never ends, nor does its
        // connection, which held the process open: closed with the answer.
        if (cut) request.destroy();
        agent?.destroy();
      });
      resolve(
        new Response(body, {
          status,
          statusText: incoming.statusMessage,
          headers: responseHeaders,
        }),
      );
    });
  });
}
