// The WebSockets `serve` upgraded under Deno, per server, for its shutdown
// to close them with 1001 when it begins, as Deno's graceful shutdown does
// and as `serve` does under Bun. A shutdown that other requests hold to its
// shutdownTimeoutMs ends with Deno's forced close, which sent each open
// WebSocket a close frame with code 1005 (reserved: no peer may send it;
// Deno's client reports 1006 "Invalid close code", Bun's a protocol error).

import { settledWithin } from "../_internal/settled_within.ts";

/** The sockets of one server, and whether its shutdown has begun. */
export interface DenoSockets {
  open: Set<WebSocket>;
  closing?: string;
}

/** Where `serve` puts a request's server's sockets (a Proxy passes it on). */
const SOCKETS = Symbol("sluice.denoSockets");

type Remembered = Request & { [SOCKETS]?: DenoSockets };

/** Remembers the sockets of the server that received `request`. */
export function rememberDenoSockets(
  request: Request,
  sockets: DenoSockets,
): void {
  (request as Remembered)[SOCKETS] = sockets;
}

/**
 * Adds `socket`, upgraded from `request`, to its server's sockets until it
 * closes (nothing for a request `serve` did not see); once the shutdown has
 * begun, it is closed as soon as it opens.
 */
export function trackDenoSocket(request: Request, socket: WebSocket): void {
  const sockets = (request as Remembered)[SOCKETS];
  if (!sockets) return;
  sockets.open.add(socket);
  socket.addEventListener("close", () => sockets.open.delete(socket), {
    once: true,
  });
  if (sockets.closing !== undefined) goAway(socket, sockets.closing);
}

/**
 * Closes each socket with 1001 (going away) and `reason`, now or, for one
 * still connecting, once it opens; resolves once all have closed, or after
 * `waitMs`, whichever comes first.
 */
export async function closeDenoSockets(
  sockets: DenoSockets,
  reason: string,
  waitMs: number,
): Promise<void> {
  sockets.closing = reason;
  const closed: Promise<unknown>[] = [];
  for (const socket of sockets.open) {
    closed.push(
      new Promise((resolve) =>
        socket.addEventListener("close", resolve, { once: true })
      ),
    );
    goAway(socket, reason);
  }
  if (closed.length === 0) return;
  await settledWithin(Promise.all(closed), waitMs);
}

/** Closes `socket` with 1001, once it is open. */
function goAway(socket: WebSocket, reason: string): void {
  if (socket.readyState === WebSocket.CONNECTING) {
    socket.addEventListener("open", () => goAway(socket, reason), {
      once: true,
    });
  } else if (socket.readyState === WebSocket.OPEN) {
    socket.close(1001, reason);
  }
}
