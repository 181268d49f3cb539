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
  terminate(): void;
  ping(data?: string | Uint8Array): number;
  getBufferedAmount(): number;
}

/**
 * How long a socket the server closes may go without its peer reading, in
 * milliseconds, before its connection is cut. Bun's `close()` queues the
 * close frame behind what the peer has not read yet and fires the close
 * event at once, after which `terminate()` does nothing; its connection
 * then lasts as long as the peer keeps sending, its messages read and
 * dropped (docs/known-runtime-issues.md (ah): a client that never read
 * sent 2.8 GB in 15 s to a socket closed with 1009). So the close frame
 * goes out behind a ping: once the peer's pong shows it has read all that
 * came before, the socket is closed (code and reason); if no pong comes
 * and the unsent bytes have not fallen within this grace, the connection
 * is cut (the peer sees it dropped, 1006); if nothing waits in Bun and
 * the peer sends nothing, after {@linkcode IDLE_CLOSE_GRACE_MS}.
 */
export const CLOSE_GRACE_MS = 2_000;
/**
 * How long a peer asked to close may go without reading, in milliseconds,
 * while nothing for it waits in Bun and it has sent nothing since the
 * close began: the close frame's ping then waits in the kernel's buffers
 * for a peer that paused reading (its event loop busy, a stream paused),
 * which sends nothing to be read and dropped. Cut at CLOSE_GRACE_MS, a
 * clean close became 1006 for a peer that paused 2 s
 * (docs/known-runtime-issues.md (ah)).
 */
export const IDLE_CLOSE_GRACE_MS = 10_000;
/** The payload of the ping a close waits on (a pong of Bun's own pings differs). */
const CLOSE_PING = "sluice.close";

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
  // The short grace only: a peer that neither reads nor sends held every
  // shutdown for the idle grace, all of shutdownTimeoutMs by default.
  for (const socket of sockets.get(server) ?? []) {
    socket.close(1001, reason, CLOSE_GRACE_MS);
  }
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
  /** The close asked for, sent once the peer's pong shows it reads. */
  #closing: { code?: number; reason?: string } | undefined;
  /** Checks, every CLOSE_GRACE_MS, that a peer asked to close reads. */
  #graceTimer: ReturnType<typeof setInterval> | undefined;
  /** The unsent bytes at the last check, and whether the ping went out. */
  #lastBuffered = 0;
  #pinged = false;
  /** Whether the peer sent a message since the close began. */
  #heard = false;

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

  /**
   * Starts the closing handshake: the close frame follows a ping, once the
   * peer's pong shows it reads; a peer that reads nothing within
   * {@linkcode CLOSE_GRACE_MS} has its connection cut (within
   * {@linkcode IDLE_CLOSE_GRACE_MS}, or `idleGraceMs`, if nothing for it
   * waits in Bun and it sends nothing).
   */
  close(
    code?: number,
    reason?: string,
    idleGraceMs: number = IDLE_CLOSE_GRACE_MS,
  ): void {
    if (this.#state >= 2) {
      // A shutdown during the application's close shortens its grace.
      this.#idleGraceMs = Math.min(this.#idleGraceMs, idleGraceMs);
      return;
    }
    this.#closing = { code, reason };
    this.#idleGraceMs = idleGraceMs;
    this.#state = 2;
    if (this.#ws) this.#closeAfterPing(this.#ws);
  }

  /** The idle grace of the close under way (a shutdown's is short). */
  #idleGraceMs = IDLE_CLOSE_GRACE_MS;

  #closeAfterPing(ws: BunServerWebSocket): void {
    this.#lastBuffered = ws.getBufferedAmount();
    // 0: dropped (past Bun's backpressureLimit); tried again at each check.
    this.#pinged = ws.ping(CLOSE_PING) !== 0;
    this.#heard = false;
    const started = performance.now();
    this.#graceTimer = setInterval(() => {
      const buffered = ws.getBufferedAmount();
      if (!this.#pinged) this.#pinged = ws.ping(CLOSE_PING) !== 0;
      if (buffered < this.#lastBuffered) {
        this.#lastBuffered = buffered;
        return;
      }
      // Nothing waits in Bun and the peer sends nothing: it may only have
      // paused reading, and costs nothing while it waits.
      if (
        buffered === 0 && !this.#heard &&
        performance.now() - started < this.#idleGraceMs
      ) {
        return;
      }
      // No pong, and nothing it has not read went out: it does not read.
      this.#stopGrace();
      ws.terminate();
    }, CLOSE_GRACE_MS);
  }

  #stopGrace(): void {
    clearInterval(this.#graceTimer);
    this.#graceTimer = undefined;
  }

  /** @internal Called by the Bun `open` handler. */
  open(ws: BunServerWebSocket): void {
    this.#ws = ws;
    if (this.#state === 2) {
      this.#closeAfterPing(ws);
      return;
    }
    this.#state = 1;
    this.dispatchEvent(new Event("open"));
  }

  /**
   * @internal Called by the Bun `pong` handler: the answer to the ping of a
   * close shows the peer has read all before it, and will read the close.
   */
  pong(data: Uint8Array): void {
    if (this.#graceTimer === undefined || !this.#ws) return;
    if (new TextDecoder().decode(data) !== CLOSE_PING) return;
    this.#stopGrace();
    this.#ws.close(this.#closing?.code ?? 1000, this.#closing?.reason);
  }

  /** @internal Called by the Bun `message` handler. */
  message(data: string | Uint8Array): void {
    if (this.#graceTimer !== undefined) this.#heard = true;
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
    this.#stopGrace();
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
  pong(ws: BunServerWebSocket, data: Uint8Array): void {
    adapter(ws)?.pong(data);
  },
};
