import * as http2 from "node:http2";
import type { UniversalHandler } from "../rpc/universal.ts";
import {
  headersFromNode,
  headersToNode,
  readableFromNode,
  writeToNode,
} from "./_node_streams.ts";
import { deferred } from "../_internal/deferred.ts";

/** Options for {@linkcode serveHttp2}. */
export interface ServeHttp2Options {
  /**
   * Port to listen on; `0` picks a free one.
   *
   * @default {0}
   */
  port?: number;
  /**
   * Address to listen on.
   *
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /** Closes the server when aborted. */
  signal?: AbortSignal;
  /**
   * Bytes of request body buffered per call before the peer is paused.
   *
   * @default {65536}
   */
  readBufferBytes?: number;
}

/** A running server returned by {@linkcode serveHttp2}. */
export interface Http2Server {
  /** The base URL, such as `http://127.0.0.1:45123`. */
  readonly url: URL;
  /** The port actually bound. */
  readonly port: number;
  /** Stops accepting connections, closes open sessions and resolves when closed. */
  shutdown(): Promise<void>;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
}

/**
 * Serves a universal RPC handler over cleartext HTTP/2 (h2c, prior
 * knowledge) with `node:http2`, which can send the HTTP trailers native gRPC
 * needs. The same server also answers gRPC-Web and Connect requests over
 * h2c. Works under Deno, Bun and Node.
 *
 * @param handler The handler, from `createUniversalHandler`.
 * @param options Where to listen and how to stop.
 * @returns The running server.
 *
 * @example Serve StreamingCalcService over native gRPC
 * ```ts ignore
 * import { createUniversalHandler } from "@sluice/streams/rpc";
 * import { serveHttp2 } from "@sluice/streams/grpc-node";
 *
 * const server = await serveHttp2(createUniversalHandler(implementation), {
 *   port: 9090,
 * });
 * console.log(`gRPC on ${server.url}`);
 * ```
 */
export async function serveHttp2(
  handler: UniversalHandler,
  options: ServeHttp2Options = {},
): Promise<Http2Server> {
  const {
    port = 0,
    hostname = "127.0.0.1",
    signal,
    readBufferBytes = 65536,
  } = options;
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  server.on("stream", (stream, headers) => {
    const serverStream = stream as http2.ServerHttp2Stream;
    handleStream(handler, serverStream, headers, readBufferBytes).catch(
      (error) => {
        console.error("sluice: HTTP/2 stream failed:", error);
        if (!stream.destroyed) {
          stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        }
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const bound = typeof address === "object" && address ? address.port : port;
  const finished = deferred<void>();
  server.once("close", () => finished.resolve());
  let stopping = false;
  const shutdown = () => {
    if (!stopping) {
      stopping = true;
      server.close();
      for (const session of sessions) session.close();
    }
    return finished.promise;
  };
  signal?.addEventListener("abort", () => void shutdown(), { once: true });
  return {
    url: new URL(`http://${hostname}:${bound}`),
    port: bound,
    shutdown,
    finished: finished.promise,
  };
}

async function handleStream(
  handler: UniversalHandler,
  stream: http2.ServerHttp2Stream,
  incoming: http2.IncomingHttpHeaders,
  readBufferBytes: number,
): Promise<void> {
  const abort = new AbortController();
  let ended = false;
  stream.once("close", () => {
    if (!ended) {
      abort.abort(new Error("Cannot serve call: the client reset the stream"));
    }
  });
  const response = await handler({
    method: String(incoming[":method"]),
    url: `http://${incoming[":authority"] ?? "localhost"}${
      incoming[":path"] ?? "/"
    }`,
    headers: headersFromNode(incoming),
    body: readableFromNode(stream, readBufferBytes),
    signal: abort.signal,
  });
  if (isGone(stream)) {
    await response.body?.cancel();
    return;
  }
  const head = {
    ":status": response.status,
    ...headersToNode(response.headers),
  };
  if (response.body === undefined) {
    // Trailers-Only (gRPC) or a body-less reply.
    ended = true;
    stream.respond(head, { endStream: true });
    return;
  }
  const wantTrailers = response.trailers !== undefined;
  stream.respond(head, { waitForTrailers: wantTrailers });
  try {
    await writeToNode(response.body, stream);
  } catch {
    // The client went away; the abort signal has told the call.
    return;
  }
  const trailers = wantTrailers
    ? headersToNode(await response.trailers!)
    : undefined;
  if (isGone(stream)) return;
  if (trailers?.["grpc-status"] === "4" && await closesWithin(stream)) {
    // Deadline exceeded, and the client reset the stream itself, as clients
    // enforcing their own deadline do at the same moment. Waiting for that
    // reset first avoids two races: trailers written into a reset stream
    // crashed Deno's node:http2 now and then, and a server RST_STREAM that
    // won made grpc-js report CANCELLED instead of DEADLINE_EXCEEDED.
    return;
  }
  if (trailers !== undefined) {
    stream.once("wantTrailers", () => {
      ended = true;
      if (!isGone(stream)) stream.sendTrailers(trailers);
    });
  } else {
    ended = true;
  }
  stream.end();
}

/** How long a deadline-exceeded status waits for the client's own reset. */
const DEADLINE_GRACE_MS = 50;

// Resolves true if the stream closes within DEADLINE_GRACE_MS.
function closesWithin(stream: http2.Http2Stream): Promise<boolean> {
  if (isGone(stream)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      stream.off("close", onClose);
      resolve(false);
    }, DEADLINE_GRACE_MS);
    const onClose = () => {
      clearTimeout(timer);
      resolve(true);
    };
    stream.once("close", onClose);
  });
}

// A stream the peer has reset (or that is closed) must not be written to.
function isGone(stream: http2.Http2Stream): boolean {
  return stream.destroyed || stream.closed || stream.aborted;
}
