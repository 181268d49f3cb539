/**
 * Serve a fetch handler with the runtime's own HTTP server: `Deno.serve` under
 * Deno, `Bun.serve` under Bun. This is runtime glue; the library's handlers
 * are plain `(request: Request) => Response | Promise<Response>` functions and
 * work with any server, including a Workers `export default { fetch }`.
 *
 * @module
 */

import { type BunServer, getBun } from "./_bun.ts";
import { bunWebSocketHandlers, rememberBunServer } from "./_websocket_bun.ts";
import { deferred } from "../_internal/deferred.ts";
import { checkMs } from "../_internal/limits.ts";

/** Options for {@linkcode serve}. */
export interface ServeOptions {
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
  /** Closes the server (gracefully) when aborted. */
  signal?: AbortSignal;
  /**
   * Milliseconds a connection may stay idle before the server closes it,
   * rounded up to whole seconds, at most 255 s (Bun only; Deno has no such
   * setting). `0` disables the timeout, which long-running streams need.
   *
   * @default {0}
   */
  idleTimeoutMs?: number;
  /**
   * Called with an error the handler threw; its result is sent instead. The
   * default logs the error and answers 500.
   */
  onError?: (error: unknown) => Response | Promise<Response>;
}

/** A running server returned by {@linkcode serve}. */
export interface Server {
  /** The base URL, such as `http://127.0.0.1:45123/`. */
  readonly url: URL;
  /** The port actually bound. */
  readonly port: number;
  /** Stops accepting connections and resolves when open requests are done. */
  shutdown(): Promise<void>;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
}

function defaultOnError(error: unknown): Response {
  console.error("sluice: handler failed:", error);
  return new Response("Internal Server Error", { status: 500 });
}

/**
 * Serves a fetch handler on the current runtime (`Deno.serve` or `Bun.serve`)
 * and resolves once it is listening.
 *
 * @param handler The fetch handler to serve (a `FetchHandler` from
 *   `@sluice/streams/http`, or any function that returns a `Response` or a
 *   promise of one).
 * @param options Where to listen and how to stop.
 * @returns The running server, with its URL and a `shutdown()` method.
 *
 * @example Serve a handler on a free port
 * ```ts ignore
 * import { serve } from "@sluice/streams/serve";
 *
 * const server = await serve((request) => new Response(request.body));
 * console.log(`listening on ${server.url}`);
 * await server.shutdown();
 * ```
 */
export async function serve(
  handler: (request: Request) => Response | Promise<Response>,
  options: ServeOptions = {},
): Promise<Server> {
  const {
    port = 0,
    hostname = "127.0.0.1",
    signal,
    idleTimeoutMs = 0,
  } = options;
  checkMs("serve", "idleTimeoutMs", idleTimeoutMs);
  if (idleTimeoutMs > 255_000) {
    throw new RangeError(
      `Cannot serve: idleTimeoutMs must be at most 255000 (Bun's limit), got ${idleTimeoutMs}`,
    );
  }
  const onError = options.onError ?? defaultOnError;
  const bun = getBun();
  if (bun) {
    const server: BunServer = bun.serve({
      port,
      hostname,
      idleTimeout: Math.ceil(idleTimeoutMs / 1000),
      // Bodies are streamed and bounded by the handlers' own limits.
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
      // Remembered so that upgradeWebSocket can reach server.upgrade.
      fetch: (request: Request, server: BunServer) => {
        rememberBunServer(request, server);
        return handler(request);
      },
      error: onError,
      websocket: bunWebSocketHandlers,
    });
    const finished = deferred<void>();
    let stopped = false;
    const shutdown = async () => {
      if (!stopped) {
        stopped = true;
        await server.stop(false);
        finished.resolve();
      }
      return finished.promise;
    };
    signal?.addEventListener("abort", () => void shutdown(), { once: true });
    const url = new URL(`http://${hostname}:${server.port}/`);
    return { url, port: server.port, shutdown, finished: finished.promise };
  }
  if (typeof Deno === "undefined") {
    throw new TypeError(
      "Cannot serve: no Deno.serve or Bun.serve in this runtime; pass the handler to your server instead",
    );
  }
  const listening = deferred<Deno.NetAddr>();
  const server = Deno.serve({
    port,
    hostname,
    signal,
    onListen: (addr) => listening.resolve(addr),
    onError,
  }, handler);
  const addr = await listening.promise;
  return {
    url: new URL(`http://${addr.hostname}:${addr.port}/`),
    port: addr.port,
    shutdown: async () => {
      await server.shutdown();
    },
    finished: server.finished,
  };
}
