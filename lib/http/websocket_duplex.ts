import { messageOf, withoutQueries } from "../_internal/message_of.ts";
import { checkArgument } from "../_internal/arguments.ts";
import {
  DuplexStream,
  type DuplexStreamOptions,
} from "../streams/duplex_stream.ts";
import { checkMax, checkTimerMs } from "../_internal/limits.ts";
import { deferred } from "../_internal/deferred.ts";
import { settledWithin } from "../_internal/settled_within.ts";
import { shownUrl } from "./_url.ts";

/** The default for {@linkcode WebSocketDuplexOptions.maxBufferedBytes}: 16 MiB. */
const DEFAULT_WEBSOCKET_MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/** The default for {@linkcode WebSocketDuplexOptions.sendHighWaterMark}: 1 MiB. */
const DEFAULT_WEBSOCKET_SEND_HIGH_WATER_MARK = 1024 * 1024;
/** The default for {@linkcode WebSocketDuplexOptions.sendLowWaterMark}: 256 KiB. */
const DEFAULT_WEBSOCKET_SEND_LOW_WATER_MARK = 256 * 1024;
/**
 * The longest wait for a socket to open that was failed while connecting,
 * before it is closed as it is.
 */
const ABORTED_OPEN_WAIT_MS = 2_000;

/** The default for {@linkcode WebSocketDuplexOptions.openTimeoutMs}: 30 s. */
const DEFAULT_WEBSOCKET_OPEN_TIMEOUT_MS = 30_000;

/**
 * The close code sent when the read queue passes `maxBufferedBytes` (4009
 * from a client `WebSocket`, which may not send 1009).
 */
export const WEBSOCKET_CLOSE_TOO_BIG = 1009;
/**
 * The close code sent when the stream is closed with a reason, an abort (4011
 * from a client `WebSocket`, which may not send 1011).
 */
export const WEBSOCKET_CLOSE_ABORTED = 1011;

const CONNECTING = 0;
const OPEN = 1;
/** How long a write on a closing socket waits for the close code. */
const CLOSE_EVENT_WAIT_MS = 2_000;
/** Longest wait between two looks at `bufferedAmount`, in milliseconds. */
const MAX_DRAIN_POLL_MS = 16;

/**
 * The part of the WHATWG `WebSocket` interface the duplex stream uses: what
 * the `WebSocket` client, Deno's and Workers' server sockets have, and what
 * the Bun glue in `@sluice/streams/websocket` provides.
 */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** Bytes queued by `send` and not yet sent; absent on some runtimes. */
  readonly bufferedAmount?: number;
  /** How binary messages arrive; the duplex stream sets `"arraybuffer"`. */
  binaryType: string;
  /** Sends one message. */
  send(data: Uint8Array<ArrayBuffer> | string): void;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
  /** Listens for `open`, `message`, `close`, `error` (and `drain`). */
  addEventListener(
    type: string,
    // `any`: the runtimes' own `Event` types differ in detail.
    // deno-lint-ignore no-explicit-any
    listener: (event: any) => void,
  ): void;
  /** Stops listening. */
  // deno-lint-ignore no-explicit-any
  removeEventListener(type: string, listener: (event: any) => void): void;
}

/**
 * What a received message counts against `maxBufferedBytes`: its bytes and
 * what the runtime keeps for a message besides (its event, its buffer and
 * view: 1,000,000 one-byte messages took 237 MiB of Deno's heap, 443 MiB
 * of Bun's RSS).
 */
const MESSAGE_OVERHEAD_BYTES = 512;
const queuedSize = (chunk: Uint8Array) =>
  chunk.byteLength + MESSAGE_OVERHEAD_BYTES;

/** Options for {@linkcode websocketDuplex}. */
export interface WebSocketDuplexOptions extends DuplexStreamOptions {
  /**
   * The most received bytes queued unread. A WebSocket cannot be paused, so
   * a consumer that reads slower than the peer sends lets messages queue up
   * to this bound; past it the socket is closed with code 1009 and reads
   * reject with a `RangeError`. A message queued behind others counts 512
   * bytes more than its own, about what the runtime keeps for one
   * (one-byte messages counted by their bytes alone held 28 times the
   * bound).
   *
   * @default {16777216}
   */
  maxBufferedBytes?: number;
  /**
   * `write` waits while the socket's `bufferedAmount` is above this many
   * bytes...
   *
   * @default {1048576}
   */
  sendHighWaterMark?: number;
  /**
   * ...until it falls to this many.
   *
   * @default {262144}
   */
  sendLowWaterMark?: number;
  /**
   * The longest wait for a socket still connecting to open, in
   * milliseconds; 0 waits for ever. Past it the socket is closed and reads
   * and writes reject with a `TypeError`. A server socket opens within
   * milliseconds of its handler's answer on a live connection, but one
   * whose client reset the connection before the answer went out never
   * opens nor closes under Deno 2.9.6 (docs/known-runtime-issues.md
   * (aa)): without a bound, its stream waited for good. The default leaves
   * a client's opening handshake (TCP, TLS, one HTTP round trip) room for
   * lost packets: Linux resends a lost SYN after 1, 3, 7 and 15 s.
   *
   * @default {30000}
   */
  openTimeoutMs?: number;
}

/**
 * Turns a WebSocket into a {@linkcode DuplexStream}: binary messages carry
 * the bytes (text messages are read as their UTF-8 bytes), with
 * back-pressure both ways and a half-close.
 *
 * - Sending: `write` sends one binary message, then waits while the
 *   socket's `bufferedAmount` is above `sendHighWaterMark`, until it falls to
 *   `sendLowWaterMark` (polled: the WebSocket API has no drain event). A
 *   socket still connecting is waited for, up to `openTimeoutMs` (30 s by
 *   default); past it the socket is closed and the stream fails.
 * - Receiving: messages queue up to `maxBufferedBytes` unread (each behind
 *   another counting 512 bytes more than its own); the socket cannot be
 *   paused, so past that bound it is closed with 1009 (4009 from a client
 *   `WebSocket`, whose API refuses 1009) and reads reject with a
 *   `RangeError`.
 * - Half-close: `closeWrite` sends an empty binary message, which the peer's
 *   duplex stream reads as the end of its input; once both directions have
 *   ended the socket is closed with 1000.
 * - Close codes: 1000 and 1005 (no code) end the input cleanly; any other
 *   code, or a dropped connection (1006; Deno reports it as code 0), errors
 *   it with a `TypeError` naming the code and reason (for a close without
 *   a reason, the message of the socket's last `error` event, such as
 *   "Invalid UTF-8"). `close(reason)` closes with 1011 (4011 from a client
 *   `WebSocket`) and the reason's message; a socket still connecting is
 *   closed that way once it opens (within 2 s, or `openTimeoutMs` if
 *   shorter; then as it is), not at once
 *   (Deno's client could then send a close frame without a code: a clean
 *   end to the peer).
 * - Message size: each write is one message, and the runtimes bound one
 *   message (a Bun server refuses one over 16 MiB, a Deno server one of
 *   about 64 MiB), whatever `maxBufferedBytes` says.
 *
 * @param socket A `WebSocket` (open or connecting) or a server socket from
 *   `upgradeWebSocket` in `@sluice/streams/websocket`.
 * @param options Queue bounds, send watermarks, the open timeout and read
 *   limits.
 * @returns The duplex stream over the socket.
 *
 * @example Talk to a WebSocket echo server
 * ```ts ignore
 * import { websocketDuplex } from "@sluice/streams/http";
 *
 * const stream = websocketDuplex(new WebSocket("ws://127.0.0.1:8000/echo"));
 * await stream.write("Hello, ");
 * await stream.write("World!");
 * await stream.closeWrite();
 * for await (const chunk of stream) console.log(new TextDecoder().decode(chunk));
 * ```
 */
export function websocketDuplex(
  socket: WebSocketLike,
  options: WebSocketDuplexOptions = {},
): DuplexStream {
  const ws = socket as Partial<WebSocketLike> | null | undefined;
  checkArgument(
    typeof ws?.addEventListener === "function" &&
      typeof ws.send === "function" && typeof ws.close === "function",
    "open WebSocket duplex",
    "socket",
    "a WebSocket",
    socket,
    typeof socket === "string" || socket instanceof URL
      ? " (open one first: new WebSocket(url))"
      : "",
  );
  const maxBufferedBytes = checkMax(
    "open WebSocket duplex",
    "maxBufferedBytes",
    options.maxBufferedBytes ?? DEFAULT_WEBSOCKET_MAX_BUFFERED_BYTES,
  );
  const high = checkMax(
    "open WebSocket duplex",
    "sendHighWaterMark",
    options.sendHighWaterMark ?? DEFAULT_WEBSOCKET_SEND_HIGH_WATER_MARK,
  );
  const low = Math.min(
    high,
    checkMax(
      "open WebSocket duplex",
      "sendLowWaterMark",
      options.sendLowWaterMark ?? DEFAULT_WEBSOCKET_SEND_LOW_WATER_MARK,
    ),
  );
  checkTimerMs("open WebSocket duplex", "openTimeoutMs", options.openTimeoutMs);
  const openTimeoutMs = options.openTimeoutMs ??
    DEFAULT_WEBSOCKET_OPEN_TIMEOUT_MS;
  socket.binaryType = "arraybuffer";
  const encoder = new TextEncoder();
  let localEnded = false;
  let remoteEnded = false;
  let closed: { code: number; reason: string } | undefined;
  let input!: ReadableStreamDefaultController<Uint8Array>;
  const opened = deferred<void>();
  // Resolves on the close event, which brings the close code.
  const closeEvent = deferred<void>();
  // Wakes a writer waiting for the buffer to drain (Bun's glue sends
  // "drain"; elsewhere the wait polls).
  let wake: (() => void) | undefined;
  let openTimer: ReturnType<typeof setTimeout> | undefined;

  const closeIfDone = () => {
    if (localEnded && remoteEnded && socket.readyState === OPEN) {
      socket.close(1000);
    }
  };
  // A socket that never opened is named by its URL, where it has one (a
  // client's): Deno's words for a refused connection name no host.
  let everOpened = false;
  const socketTo = () => {
    const url = (socket as { url?: unknown }).url;
    return !everOpened && typeof url === "string" && url !== ""
      ? ` to ${shownUrl(url)}`
      : "";
  };
  const closeError = (code: number, reason: string) => {
    const to = socketTo();
    // A page is not told why (the status of a refused upgrade included):
    // the likely causes are named instead.
    const why = to !== "" && code === 1006 && reason === ""
      ? " before it opened (the server down, or the upgrade refused: a wrong path, an origin not allowed; or too many sockets open, 255 in Chromium)"
      : "";
    return new TypeError(
      `Cannot use WebSocket: the connection${to} closed with code ${code}${
        reason ? ` (${reason})` : ""
      }${why}`,
    );
  };

  const onMessage = (event: Event) => {
    if (remoteEnded) return;
    const data = (event as MessageEvent).data;
    const bytes = typeof data === "string"
      ? encoder.encode(data)
      : data instanceof ArrayBuffer
      ? new Uint8Array(data)
      : ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : undefined;
    if (!bytes) {
      const error = new TypeError(
        "Cannot read from WebSocket: unexpected message type",
      );
      // The input has failed: later messages are not read (nor taken for
      // an overflow of the errored queue).
      remoteEnded = true;
      input.error(error);
      closeWith(socket, WEBSOCKET_CLOSE_ABORTED, "unexpected message type");
      return;
    }
    if (bytes.byteLength === 0) {
      if (typeof data === "string") return;
      // The peer's closeWrite.
      remoteEnded = true;
      input.close();
      closeIfDone();
      return;
    }
    // A message alone in the queue (or going straight to a reader that
    // waits) needs only room for its bytes.
    const room = input.desiredSize ?? 0;
    if (
      bytes.byteLength > room ||
      (room < maxBufferedBytes && queuedSize(bytes) > room)
    ) {
      remoteEnded = true;
      input.error(
        new RangeError(
          `Cannot read from WebSocket: more than maxBufferedBytes ${maxBufferedBytes} received and unread; closed with ${WEBSOCKET_CLOSE_TOO_BIG}`,
        ),
      );
      closeWith(socket, WEBSOCKET_CLOSE_TOO_BIG, "read queue full");
      return;
    }
    input.enqueue(bytes);
  };
  // The reason of a failure while the socket was connecting, sent once it
  // opens: see abortSocket.
  let abortOnOpen: string | undefined;
  let abortTimer: ReturnType<typeof setTimeout> | undefined;
  const onOpen = () => {
    clearTimeout(openTimer);
    clearTimeout(abortTimer);
    if (abortOnOpen !== undefined) {
      closeWith(socket, WEBSOCKET_CLOSE_ABORTED, abortOnOpen);
    }
    everOpened = true;
    opened.resolve();
  };
  // Closes the socket for a failure (1011, 4011 from a client). One still
  // connecting is closed once it opens, or at openTimeoutMs: Deno 2.9.6's
  // client, closed while connecting, sends a close frame with no code when
  // the 101 comes in at that moment, which the peer read as a clean end
  // (1005) of an input whose bytes were never sent
  // (docs/known-runtime-issues.md (aj)).
  // The wait is bounded by ABORTED_OPEN_WAIT_MS too (openTimeoutMs may be
  // 0, or 30 s): a socket whose 101 never comes was held open that long.
  const abortSocket = (reason: unknown) => {
    if (socket.readyState === OPEN) {
      closeWith(socket, WEBSOCKET_CLOSE_ABORTED, reasonText(reason));
    } else if (socket.readyState === CONNECTING && abortOnOpen === undefined) {
      abortOnOpen = reasonText(reason);
      abortTimer = setTimeout(() => {
        if (socket.readyState === CONNECTING) {
          closeWith(socket, WEBSOCKET_CLOSE_ABORTED, abortOnOpen!);
        }
      }, ABORTED_OPEN_WAIT_MS);
    }
  };
  const onDrain = () => wake?.();
  // The runtime's word on a failed connection ("Invalid UTF-8" from Deno,
  // "Server sent invalid UTF8" from Bun's client), which its close event
  // does not repeat: kept as the reason of a close that brings none.
  let lastError = "";
  const onError = (event: Event) => {
    const message = (event as ErrorEvent).message;
    // A URL in it (Bun names the socket's) without its query.
    if (typeof message === "string" && message) {
      lastError = withoutQueries(message);
    }
    // A connection that failed: the standard's socket is CLOSED by now and
    // its close event follows. Node 20's (undici 6) stays CONNECTING and
    // fires no close at all ("Received network error or non-101 status
    // code."): every read and write of it waited for good.
    if (socket.readyState === CONNECTING) {
      onClose(Object.assign(new Event("close"), { code: 1006, reason: "" }));
    }
  };
  const onClose = (event: Event) => {
    let { code = 1005, reason = "" } = event as CloseEvent;
    // Deno reports a connection dropped without a close frame (after a
    // text message of invalid UTF-8, say) as code 0: 1006, as the
    // WebSocket standard names it.
    if (code === 0) code = 1006;
    if (!reason && code !== 1000 && code !== 1005) reason = lastError;
    end(code, reason, closeError(code, reason));
  };
  // Ends the stream: the socket closed, or never opened.
  const end = (code: number, reason: string, error: Error) => {
    // Once: a close after the one made up for Node's failed connection, or
    // after the open timeout.
    if (closed) return;
    closed = { code, reason };
    clearTimeout(openTimer);
    clearTimeout(abortTimer);
    closeEvent.resolve();
    socket.removeEventListener("message", onMessage);
    socket.removeEventListener("open", onOpen);
    socket.removeEventListener("close", onClose);
    socket.removeEventListener("error", onError);
    socket.removeEventListener("drain", onDrain);
    const clean = code === 1000 || code === 1005;
    opened.reject(error);
    wake?.();
    if (!remoteEnded) {
      remoteEnded = true;
      if (clean) input.close();
      else input.error(error);
    }
  };
  // A socket that never opens (under Deno, a server socket whose client
  // reset the connection before the 101 went out) fires no event at all,
  // nor once closed while connecting (its readyState stays 2): closed, and
  // the stream failed, so that its reads and writes end.
  const onOpenTimeout = () => {
    if (closed || socket.readyState === OPEN) return;
    const reason = `not open after ${openTimeoutMs} ms`;
    if (socket.readyState === CONNECTING) {
      closeWith(socket, WEBSOCKET_CLOSE_ABORTED, reason);
    }
    end(
      1006,
      reason,
      new TypeError(
        `Cannot open WebSocket${socketTo()}: ${reason} (openTimeoutMs): the peer went away during the handshake, or never answered it`,
      ),
    );
  };
  opened.promise.catch(() => {});
  socket.addEventListener("message", onMessage);
  socket.addEventListener("open", onOpen);
  socket.addEventListener("close", onClose);
  socket.addEventListener("error", onError);
  socket.addEventListener("drain", onDrain);

  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      input = controller;
    },
    cancel(reason) {
      remoteEnded = true;
      // Without a reason, the input only (its later messages dropped): the
      // output stays writable, and the socket closes once it is closed too.
      // It closed the socket at once, the next write lost silently and the
      // peer reading a clean end. A reason is a failure: the socket goes.
      if (reason === undefined) closeIfDone();
      else abortSocket(reason);
    },
  }, { highWaterMark: maxBufferedBytes, size: queuedSize });
  // Once the input exists: a socket closed already ends it at once.
  if (socket.readyState === OPEN) {
    everOpened = true;
    opened.resolve();
  } else if (socket.readyState !== CONNECTING) {
    onClose(Object.assign(new Event("close"), { code: 1006, reason: "" }));
  } else if (openTimeoutMs > 0) {
    openTimer = setTimeout(onOpenTimeout, openTimeoutMs);
  }

  const sendable = async () => {
    if (!closed && socket.readyState !== OPEN) {
      // Closing: the peer's close frame can come before the close event that
      // brings its code. Wait for the event (briefly), so that the error
      // names the code whichever comes first.
      await settledWithin(closeEvent.promise, CLOSE_EVENT_WAIT_MS);
    }
    if (closed) throw closeError(closed.code, closed.reason);
    if (socket.readyState !== OPEN) {
      throw new TypeError("Cannot write to WebSocket: the socket is closing");
    }
  };
  const drained = async () => {
    let delay = 1;
    while ((socket.bufferedAmount ?? 0) > low) {
      await sendable();
      const woken = deferred<void>();
      wake = woken.resolve;
      const timer = setTimeout(woken.resolve, delay);
      await woken.promise;
      clearTimeout(timer);
      wake = undefined;
      delay = Math.min(delay * 2, MAX_DRAIN_POLL_MS);
    }
  };

  const writable = new WritableStream<Uint8Array>({
    start: () => opened.promise,
    async write(chunk) {
      await sendable();
      socket.send(chunk as Uint8Array<ArrayBuffer>);
      if ((socket.bufferedAmount ?? 0) > high) await drained();
    },
    close() {
      localEnded = true;
      if (closed || socket.readyState !== OPEN) return;
      socket.send(new Uint8Array(0));
      closeIfDone();
    },
    abort(reason) {
      localEnded = true;
      abortSocket(reason);
    },
    // One chunk may wait here while the previous one drains.
  }, new ByteLengthQueuingStrategy({ highWaterMark: 1 }));

  return new DuplexStream(readable, writable, options);
}

/**
 * Closes `socket` with `code`. The WHATWG `WebSocket` client accepts only
 * 1000 and 3000-4999, so a refused protocol code is sent as 4000 + its last
 * three digits (1009 → 4009, 1011 → 4011).
 */
function closeWith(socket: WebSocketLike, code: number, reason: string): void {
  try {
    socket.close(code, reason);
  } catch {
    socket.close(4000 + (code % 1000), reason);
  }
}

/** A close reason: at most 123 bytes of UTF-8, as the protocol allows. */
function reasonText(reason: unknown): string {
  const text = messageOf(reason);
  const bytes = new TextEncoder().encode(text);
  if (bytes.byteLength <= 123) return text;
  return new TextDecoder().decode(bytes.subarray(0, 120)).replace(
    /\uFFFD$/,
    "",
  );
}
