// Bun glue for server WebSockets. Bun delivers socket events to the
// `websocket` handlers given to `Bun.serve`, not to the socket, so `serve`
// installs `bunWebSocketHandlers`, which forward each event to the
// BunWebSocket adapter passed as `data` to `server.upgrade`. The adapter
// looks like a WHATWG WebSocket to `websocketDuplex`.

import type { BunServer } from "./_bun.ts";

/** The part of Bun's `ServerWebSocket` the adapter uses. */
interface BunServerWebSocket {
  readonly data: unknown;
  readonly readyState: number;
  send(data: string | Uint8Array): number;
  close(code?: number, reason?: string): void;
  getBufferedAmount(): number;
}

// What `serve` received, on the request itself: a router that hands the
// handler a Proxy of it (itty-router's AutoRouter, for its params) passes
// these through, where a WeakMap keyed by the request missed, and Bun
// upgrades only the request it handed over. (A copy, `new Request(url,
// request)`, has neither: Bun cannot upgrade it.) Two properties cost less
// than one WeakMap entry per request.
const SERVER = Symbol("sluice.bunServer");
const ORIGINAL = Symbol("sluice.bunRequest");
interface Remembered {
  [SERVER]?: BunServer;
  [ORIGINAL]?: Request;
}

/** Each server's sockets not yet closed, for its shutdown to close them. */
const sockets = new WeakMap<BunServer, Set<BunWebSocket>>();

/**
 * Closes every WebSocket `server` upgraded that is still open, with 1001
 * (going away), as Deno.serve's shutdown does: Bun's `stop()` waits for
 * them, so a server with a WebSocket call open never finished stopping, and
 * neither side of the call heard of it.
 */
export function closeBunSockets(server: BunServer, reason: string): void {
  for (const socket of sockets.get(server) ?? []) socket.close(1001, reason);
}

/** How many sockets `server` holds as open (tests). */
export function openBunSockets(server: BunServer): number {
  return sockets.get(server)?.size ?? 0;
}

/** Remembers which Bun server received `request`, for `upgradeWebSocket`. */
export function rememberBunServer(request: Request, server: BunServer): void {
  const remembered = request as Remembered;
  remembered[SERVER] = server;
  remembered[ORIGINAL] = request;
}

/** The Bun server that received `request` (or what stands for it), if `serve` saw it. */
export function bunServerFor(request: Request): BunServer | undefined {
  return (request as Remembered)[SERVER];
}

/**
 * The request `serve` received, for `server.upgrade`: `request` itself, or
 * the one a router's Proxy of it stands for.
 */
export function bunRequestFor(request: Request): Request {
  return (request as Remembered)[ORIGINAL] ?? request;
}

function closeEvent(code: number, reason: string): Event {
  return Object.assign(new Event("close"), { code, reason });
}

/** A WHATWG-WebSocket-like view of a Bun server WebSocket. */
export class BunWebSocket extends EventTarget {
  #ws: BunServerWebSocket | undefined;
  #state = 0;
  #server: BunServer | undefined;
  /** A close asked for before the socket opened. */
  #closing: { code?: number; reason?: string } | undefined;

  /** @param server The server that upgrades it (its shutdown closes it). */
  constructor(server?: BunServer) {
    super();
    if (server === undefined) return;
    this.#server = server;
    let open = sockets.get(server);
    if (open === undefined) sockets.set(server, open = new Set());
    open.add(this);
  }
  /** Kept for the interface; messages are delivered as `Uint8Array`. */
  binaryType = "arraybuffer";

  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  get readyState(): number {
    return this.#state;
  }

  /** Bytes queued in Bun and not yet sent. */
  get bufferedAmount(): number {
    return this.#ws && this.#state === 1 ? this.#ws.getBufferedAmount() : 0;
  }

  /** Sends one message; Bun queues it under back-pressure. */
  send(data: Uint8Array | string): void {
    if (!this.#ws || this.#state !== 1) {
      throw new TypeError("Cannot send on WebSocket: it is not open");
    }
    // 0 is a dropped message, or an empty one sent (closeWrite's): Bun
    // answers the bytes it sent.
    const length = typeof data === "string" ? data.length : data.byteLength;
    if (
      this.#ws.send(data) === 0 && (length > 0 || this.#ws.readyState !== 1)
    ) {
      throw new TypeError("Cannot send on WebSocket: the connection dropped");
    }
  }

  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void {
    if (this.#state >= 2) return;
    if (this.#state === 0) this.#closing = { code, reason };
    this.#state = 2;
    this.#ws?.close(code, reason);
  }

  /** @internal Called by the Bun `open` handler. */
  open(ws: BunServerWebSocket): void {
    this.#ws = ws;
    if (this.#state === 2) {
      ws.close(this.#closing?.code ?? 1000, this.#closing?.reason);
      return;
    }
    this.#state = 1;
    this.dispatchEvent(new Event("open"));
  }

  /** @internal Called by the Bun `message` handler. */
  message(data: string | Uint8Array): void {
    this.dispatchEvent(new MessageEvent("message", { data }));
  }

  /**
   * @internal Called when Bun refused the upgrade: the socket never opens,
   * so its server must not keep it among those to close.
   */
  refused(): void {
    this.#state = 3;
    if (this.#server) sockets.get(this.#server)?.delete(this);
  }

  /** @internal Called by the Bun `close` handler. */
  closed(code: number, reason: string): void {
    this.#state = 3;
    if (this.#server) sockets.get(this.#server)?.delete(this);
    this.dispatchEvent(closeEvent(code, reason));
  }

  /** @internal Called by the Bun `drain` handler. */
  drain(): void {
    this.dispatchEvent(new Event("drain"));
  }
}

function adapter(ws: BunServerWebSocket): BunWebSocket | undefined {
  return ws.data instanceof BunWebSocket ? ws.data : undefined;
}

/** The `websocket` option for `Bun.serve`. */
export const bunWebSocketHandlers = {
  open(ws: BunServerWebSocket): void {
    adapter(ws)?.open(ws);
  },
  message(ws: BunServerWebSocket, data: string | Uint8Array): void {
    adapter(ws)?.message(data);
  },
  close(ws: BunServerWebSocket, code: number, reason: string): void {
    adapter(ws)?.closed(code, reason);
  },
  drain(ws: BunServerWebSocket): void {
    adapter(ws)?.drain();
  },
};
