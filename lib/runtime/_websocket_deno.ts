// The WebSockets `serve` upgraded under Deno, per server, for its shutdown
// to close them with 1001 when it begins, as Deno's graceful shutdown does
// and as `serve` does under Bun. A shutdown that other requests hold to its
// shutdownTimeoutMs ends with Deno's forced close, which sent each open
// WebSocket a close frame with code 1005 (reserved: no peer may send it;
// Deno's client reports 1006 "Invalid close code", Bun's a protocol error).

/** The sockets of one server, for its shutdown. */
export type DenoSockets = Set<{ close(code?: number, reason?: string): void }>;

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
 * closes (nothing for a request `serve` did not see).
 */
export function trackDenoSocket(
  request: Request,
  socket: WebSocket,
): void {
  const sockets = (request as Remembered)[SOCKETS];
  if (!sockets) return;
  sockets.add(socket);
  socket.addEventListener("close", () => sockets.delete(socket), {
    once: true,
  });
}

/** Closes each socket with 1001 (going away) and `reason`. */
export function closeDenoSockets(sockets: DenoSockets, reason: string): void {
  for (const socket of sockets) {
    try {
      socket.close(1001, reason);
    } catch {
      // Closed already.
    }
  }
  sockets.clear();
}
