// A TCP proxy for the resumable-upload fault tests: it forwards
// 127.0.0.1:<port> to a target port and, each time the request bytes it has
// forwarded (over all connections) cross the next of a list of cut points,
// forwards the bytes up to the point and destroys every open connection,
// as a phone network dropping the link would.

import { connect, createServer, type Socket } from "node:net";

/** A cutting proxy. */
export interface CuttingProxy {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number;
  /** Request bytes forwarded so far. */
  readonly forwarded: () => number;
  /** Cuts made so far. */
  readonly cuts: () => number;
  /** Stops listening and destroys what is left. */
  close(): Promise<void>;
}

/**
 * `count` distinct cut points in `[1, total)`, sorted, from a seeded
 * generator (so a failure can be replayed with the same seed).
 */
export function cutPoints(count: number, total: number, seed: number) {
  let x = seed >>> 0;
  const points = new Set<number>();
  while (points.size < count) {
    x = (x * 1664525 + 1013904223) >>> 0;
    points.add(1 + (x % (total - 1)));
  }
  return [...points].sort((a, b) => a - b);
}

/** Starts a proxy to `target` that cuts at each of `points` (request bytes). */
export async function startCuttingProxy(
  target: number,
  points: readonly number[],
): Promise<CuttingProxy> {
  const sockets = new Set<Socket>();
  let forwarded = 0;
  let next = 0;
  let cuts = 0;
  const cutAll = () => {
    cuts++;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  const server = createServer((client) => {
    const upstream = connect(target, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", drop);
    upstream.on("error", drop);
    client.on("close", drop);
    upstream.on("close", drop);
    // Once cut, a connection forwards nothing more: bytes that arrive
    // before the sockets close must not reach the server after a gap.
    let dead = false;
    client.on("data", (data: Uint8Array) => {
      if (dead) return;
      const limit = points[next];
      if (limit !== undefined && forwarded + data.byteLength >= limit) {
        const keep = limit - forwarded;
        forwarded = limit;
        next++;
        dead = true;
        if (keep > 0) upstream.write(data.subarray(0, keep), () => cutAll());
        else cutAll();
        return;
      }
      forwarded += data.byteLength;
      if (!upstream.write(data)) {
        client.pause();
        upstream.once("drain", () => client.resume());
      }
    });
    upstream.on("data", (data: Uint8Array) => {
      if (!client.write(data)) {
        upstream.pause();
        client.once("drain", () => upstream.resume());
      }
    });
  });
  await new Promise<void>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve())
  );
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    forwarded: () => forwarded,
    cuts: () => cuts,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
