// The few parts of Bun's API the runtime glue uses, typed here because the
// project type-checks with Deno, which has no Bun types.

/** A server returned by `Bun.serve`. */
export interface BunServer {
  readonly port: number;
  /** Requests in flight, streaming responses included. */
  readonly pendingRequests: number;
  stop(closeActiveConnections?: boolean): Promise<void>;
  upgrade(
    request: Request,
    options?: { data?: unknown; headers?: HeadersInit },
  ): boolean;
}

/** The subset of `Bun` used by the runtime glue. */
export interface BunGlobal {
  serve(options: {
    port: number;
    hostname: string;
    idleTimeout?: number;
    maxRequestBodySize?: number;
    development?: boolean;
    tls?: { cert: string; key: string };
    fetch: (request: Request, server: BunServer) => unknown;
    error?: (error: unknown) => unknown;
    // deno-lint-ignore no-explicit-any
    websocket?: any;
  }): BunServer;
  readonly version: string;
}

/** Returns the `Bun` global when running under Bun. */
export function getBun(): BunGlobal | undefined {
  return (globalThis as { Bun?: BunGlobal }).Bun;
}
