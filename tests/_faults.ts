// Fault injection for the tests/faults_*.test.ts suites: a TCP proxy that
// cuts its connections on demand (at a byte count or when a test says so),
// raw HTTP/1.1 requests written by hand, and a check that a promise settles
// within a bound.

import { connect, createServer, type Server, type Socket } from "node:net";

/** A TCP proxy in front of `127.0.0.1:<target>` that can cut connections. */
export interface FaultProxy {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number;
  /** The proxy's base URL, `http://127.0.0.1:<port>/`. */
  readonly url: URL;
  /** Bytes forwarded so far, client to server and server to client. */
  readonly bytes: { request: number; response: number };
  /** Destroys every open connection, both sides, at once. */
  cut(): void;
  /** Stops listening and cuts what is left. */
  close(): Promise<void>;
}

/** Options for {@linkcode startFaultProxy}. */
export interface FaultProxyOptions {
  /** Cut once this many request bytes have been forwarded. */
  cutAfterRequestBytes?: number;
  /** Cut once this many response bytes have been forwarded. */
  cutAfterResponseBytes?: number;
}

/** Starts a cutting proxy in front of a local port. */
export async function startFaultProxy(
  target: number,
  options: FaultProxyOptions = {},
): Promise<FaultProxy> {
  const sockets = new Set<Socket>();
  const bytes = { request: 0, response: 0 };
  const cut = () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  const forward = (
    from: Socket,
    to: Socket,
    side: "request" | "response",
    limit: number | undefined,
  ) => {
    from.on("data", (data: Uint8Array) => {
      if (limit !== undefined && bytes[side] + data.byteLength >= limit) {
        const keep = Math.max(0, limit - bytes[side]);
        bytes[side] += keep;
        if (keep > 0) to.write(data.subarray(0, keep), () => cut());
        else cut();
        return;
      }
      bytes[side] += data.byteLength;
      if (!to.write(data)) {
        from.pause();
        to.once("drain", () => from.resume());
      }
    });
    from.on("end", () => to.end());
  };
  const server: Server = createServer((client) => {
    const upstream = connect(target, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) {
      socket.on("error", close);
      socket.on("close", close);
    }
    forward(client, upstream, "request", options.cutAfterRequestBytes);
    forward(upstream, client, "response", options.cutAfterResponseBytes);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    url: new URL(`http://127.0.0.1:${port}/`),
    bytes,
    cut,
    close: () =>
      new Promise<void>((resolve) => {
        cut();
        server.close(() => resolve());
      }),
  };
}

/** A hand-written HTTP/1.1 exchange on a raw socket. */
export interface RawExchange {
  /** Writes bytes or text as they are. */
  write(data: string | Uint8Array): Promise<void>;
  /** Writes one chunk of a chunked body. */
  writeChunk(data: string | Uint8Array): Promise<void>;
  /** Destroys the socket (the client goes away). */
  destroy(): void;
  /** Everything the server sent, once the socket closed. */
  readonly reply: Promise<string>;
  /** Resolves with what the server sent as soon as it sent anything. */
  readonly firstReply: Promise<string>;
}

/** Opens a raw TCP connection to a local HTTP server. */
export async function openRaw(port: number): Promise<RawExchange> {
  const socket = connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  let text = "";
  const reply = Promise.withResolvers<string>();
  const first = Promise.withResolvers<string>();
  socket.on("data", (data) => {
    text += data;
    first.resolve(text);
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    first.resolve(text);
    reply.resolve(text);
  });
  const write = (data: string | Uint8Array) =>
    new Promise<void>((resolve) => {
      if (socket.destroyed) return resolve();
      socket.write(data, () => resolve());
    });
  return {
    write,
    async writeChunk(data) {
      const size = typeof data === "string"
        ? new TextEncoder().encode(data).byteLength
        : data.byteLength;
      await write(`${size.toString(16)}\r\n`);
      await write(data);
      await write("\r\n");
    },
    destroy: () => socket.destroy(),
    reply: reply.promise,
    firstReply: first.promise,
  };
}

/** Measures how long a promise takes to settle, and what it settled with. */
export async function settle<T>(
  promise: Promise<T>,
): Promise<
  { ms: number } & ({ value: T; error?: never } | { error: unknown })
> {
  const started = performance.now();
  try {
    const value = await promise;
    return { ms: performance.now() - started, value };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}

/** Whether a TCP connection to 127.0.0.1:`port` is refused. */
export function connectionRefused(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

/**
 * Waits (at most 100 tries, 50 ms apart) until a server shutting down
 * refuses a new request: its connection (Bun.serve and serveHttp2 close
 * their listener at once), or with `http`, an HTTP/1.1 request answered 503
 * (serve under Deno, whose listener stays open while requests are in
 * progress, until shutdownTimeoutMs). Whether it did.
 */
export async function newRequestRefused(
  port: number,
  http: boolean,
): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (await connectionRefused(port)) return true;
    if (http) {
      const status = await fetch(`http://127.0.0.1:${port}/`).then(
        async (response) => {
          await response.body?.cancel();
          return response.status;
        },
        () => 0,
      );
      if (status === 503 || status === 0) return true;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}
