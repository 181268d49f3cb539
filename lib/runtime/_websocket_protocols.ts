// The subprotocols a WebSocket upgrade request offers, shared by
// upgradeWebSocket (which answers one only if offered) and the RPC
// handler (which needs its own offered).

/** The names in the request's `Sec-WebSocket-Protocol`, in order. */
export function offeredProtocols(request: Request): string[] {
  return (request.headers.get("sec-websocket-protocol") ?? "")
    .split(",").map((name) => name.trim());
}
