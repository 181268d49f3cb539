// A raw HTTP/2 client on a TCP socket, for attacks the node:http2 client
// will not make: streams over the server's SETTINGS_MAX_CONCURRENT_STREAMS
// (node:http2 queues them) and HPACK bombs (one dynamic-table entry
// referenced thousands of times in one header block). It writes the frames
// it is told to, answers the server's SETTINGS with an ACK and counts what
// comes back.

import { connect, createServer, type Socket } from "node:net";

const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const enc = new TextEncoder();

/** Frame types (RFC 9113, 6). */
export const FRAME = {
  DATA: 0,
  HEADERS: 1,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;

/** One frame: a 9-byte header and its payload. */
export function frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(9 + payload.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.byteLength << 8);
  out[3] = type;
  out[4] = flags;
  view.setUint32(5, streamId & 0x7fffffff);
  out.set(payload, 9);
  return out;
}

/** An HPACK integer with an `n`-bit prefix whose high bits are `first`. */
function hpackInt(value: number, n: number, first = 0): number[] {
  const max = (1 << n) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  value -= max;
  while (value >= 128) {
    out.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  out.push(value);
  return out;
}

/** An HPACK string literal, not Huffman-coded. */
function hpackString(text: string): number[] {
  const bytes = enc.encode(text);
  return [...hpackInt(bytes.byteLength, 7), ...bytes];
}

/**
 * The header block of `GET <path>` (static table entries for :method and
 * :scheme, literals without indexing for :path and :authority).
 */
export function requestBlock(path: string): number[] {
  return [
    0x82, // :method GET
    0x86, // :scheme http
    ...hpackInt(4, 4), // :path, literal without indexing
    ...hpackString(path),
    ...hpackInt(1, 4), // :authority
    ...hpackString("127.0.0.1"),
  ];
}

/**
 * A header block that decodes to far more than it weighs: one literal
 * `x-bomb: <valueBytes × "b">` added to the dynamic table, then referenced
 * `repeats` more times with a one-byte indexed field (index 62, the newest
 * dynamic entry). Decoded, the list is about `repeats × valueBytes` bytes.
 */
export function bombBlock(
  path: string,
  valueBytes: number,
  repeats: number,
): Uint8Array {
  const head = [
    ...requestBlock(path),
    0x40, // literal with incremental indexing, new name
    ...hpackString("x-bomb"),
    ...hpackString("b".repeat(valueBytes)),
  ];
  const out = new Uint8Array(head.length + repeats);
  out.set(head);
  out.fill(0x80 | 62, head.length);
  return out;
}

/** What the server sent back on a raw connection. */
export interface RawOutcome {
  /** Streams answered with a HEADERS frame, by :status-less count. */
  answered: number;
  /** RST_STREAM frames received, by error code. */
  resets: Record<string, number>;
  /** The GOAWAY error code, if one came. */
  goaway?: number;
  /** True if the server closed the connection. */
  closed: boolean;
}

/** A raw HTTP/2 connection (prior knowledge, cleartext). */
export interface RawH2 {
  /** Writes frames (the preface and an empty SETTINGS went first). */
  write(...frames: Uint8Array[]): void;
  /** What came back so far. */
  readonly outcome: RawOutcome;
  /** Resolves once the server closed the connection. */
  readonly closed: Promise<void>;
  /** Resolves when `n` streams have been answered or reset, or on close. */
  settled(n: number): Promise<void>;
  destroy(): void;
}

/** Opens a raw HTTP/2 connection to 127.0.0.1:`port`. */
export async function openRawH2(port: number): Promise<RawH2> {
  const socket: Socket = connect(port, "127.0.0.1");
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.on("error", () => {});
  const outcome: RawOutcome = { answered: 0, resets: {}, closed: false };
  const closed = new Promise<void>((resolve) =>
    socket.once("close", () => {
      outcome.closed = true;
      check();
      resolve();
    })
  );
  const waiters: { n: number; resolve: () => void }[] = [];
  const settledCount = () =>
    outcome.answered +
    Object.values(outcome.resets).reduce((a, b) => a + b, 0);
  const check = () => {
    for (const waiter of waiters.slice()) {
      if (outcome.closed || settledCount() >= waiter.n) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };
  let buffer = new Uint8Array(0);
  socket.on("data", (data: Uint8Array) => {
    const joined = new Uint8Array(buffer.byteLength + data.byteLength);
    joined.set(buffer);
    joined.set(data, buffer.byteLength);
    buffer = joined;
    let at = 0;
    while (buffer.byteLength - at >= 9) {
      const view = new DataView(buffer.buffer, buffer.byteOffset + at);
      const length = view.getUint32(0) >>> 8;
      if (buffer.byteLength - at < 9 + length) break;
      const type = buffer[at + 3];
      const flags = buffer[at + 4];
      const payload = new DataView(buffer.buffer, buffer.byteOffset + at + 9);
      if (type === FRAME.SETTINGS && !(flags & ACK)) {
        socket.write(frame(FRAME.SETTINGS, ACK, 0));
      } else if (type === FRAME.HEADERS) {
        outcome.answered++;
      } else if (type === FRAME.RST_STREAM) {
        const code = String(payload.getUint32(0));
        outcome.resets[code] = (outcome.resets[code] ?? 0) + 1;
      } else if (type === FRAME.GOAWAY) {
        outcome.goaway = payload.getUint32(4);
      }
      at += 9 + length;
    }
    buffer = buffer.slice(at);
    check();
  });
  // A large connection window, so that answers are not held back by flow
  // control while the test reads nothing.
  const windowUpdate = new Uint8Array(4);
  new DataView(windowUpdate.buffer).setUint32(0, 1 << 30);
  socket.write(PREFACE);
  socket.write(frame(FRAME.SETTINGS, 0, 0));
  socket.write(frame(FRAME.WINDOW_UPDATE, 0, 0, windowUpdate));
  return {
    write: (...frames) => {
      if (socket.destroyed) return;
      const total = frames.reduce((n, f) => n + f.byteLength, 0);
      const out = new Uint8Array(total);
      let at = 0;
      for (const f of frames) {
        out.set(f, at);
        at += f.byteLength;
      }
      socket.write(out);
    },
    outcome,
    closed,
    settled: (n) =>
      new Promise<void>((resolve) => {
        waiters.push({ n, resolve });
        check();
      }),
    destroy: () => socket.destroy(),
  };
}

/** A GET request's HEADERS frame on `streamId`, ending the stream. */
export function getFrame(streamId: number, path: string): Uint8Array {
  return frame(
    FRAME.HEADERS,
    END_STREAM | END_HEADERS,
    streamId,
    new Uint8Array(requestBlock(path)),
  );
}

/** An RST_STREAM frame with `code` (8 is CANCEL). */
export function resetFrame(streamId: number, code = 8): Uint8Array {
  const payload = new Uint8Array(4);
  new DataView(payload.buffer).setUint32(0, code);
  return frame(FRAME.RST_STREAM, 0, streamId, payload);
}

/**
 * The frames of a header block on `streamId` ending the stream: HEADERS,
 * then CONTINUATION frames, each at most 16 KiB (the default frame size).
 */
export function headerFrames(
  streamId: number,
  block: Uint8Array,
): Uint8Array[] {
  const size = 16384;
  const frames: Uint8Array[] = [];
  for (let at = 0; at === 0 || at < block.byteLength; at += size) {
    const last = at + size >= block.byteLength;
    frames.push(frame(
      at === 0 ? FRAME.HEADERS : FRAME.CONTINUATION,
      (at === 0 ? END_STREAM : 0) | (last ? END_HEADERS : 0),
      streamId,
      block.subarray(at, at + size),
    ));
  }
  return frames;
}

/**
 * A bare HTTP/2 server on 127.0.0.1 (node:net, no node:http2): it sends its
 * SETTINGS, acknowledges the client's, and calls `onRequest` with each
 * request's stream id, a writer of raw frames and a cut of the connection,
 * to answer in ways no compliant server library would (a reset instead of
 * trailers, say).
 */
/**
 * Calls `onFrame` with each frame a client sends on `socket`, once the
 * client's connection preface has come (frames split across reads joined).
 */
export function readFrames(
  socket: Socket,
  onFrame: (
    type: number,
    flags: number,
    streamId: number,
    payload: Uint8Array,
  ) => void,
): void {
  let buffered = new Uint8Array(0);
  let prefaceSeen = false;
  socket.on("data", (data: Uint8Array) => {
    const joined = new Uint8Array(buffered.byteLength + data.byteLength);
    joined.set(buffered);
    joined.set(data, buffered.byteLength);
    buffered = joined;
    if (!prefaceSeen) {
      if (buffered.byteLength < PREFACE.byteLength) return;
      buffered = buffered.subarray(PREFACE.byteLength);
      prefaceSeen = true;
    }
    while (buffered.byteLength >= 9) {
      const length = (buffered[0] << 16) | (buffered[1] << 8) | buffered[2];
      if (buffered.byteLength < 9 + length) break;
      const type = buffered[3];
      const flags = buffered[4];
      const streamId = new DataView(
        buffered.buffer,
        buffered.byteOffset + 5,
      ).getUint32(0) & 0x7fffffff;
      const payload = buffered.slice(9, 9 + length);
      buffered = buffered.subarray(9 + length);
      onFrame(type, flags, streamId, payload);
    }
  });
}

export async function rawH2Server(
  onRequest: (
    streamId: number,
    write: (frame: Uint8Array) => void,
    cut: () => void,
  ) => void,
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.write(frame(FRAME.SETTINGS, 0, 0));
    readFrames(socket, (type, flags, streamId) => {
      if (type === FRAME.SETTINGS && !(flags & ACK)) {
        socket.write(frame(FRAME.SETTINGS, ACK, 0));
      } else if (type === FRAME.HEADERS) {
        onRequest(streamId, (f) => socket.write(f), () => socket.destroy());
      }
    });
  });
  await new Promise<void>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve())
  );
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A response's HEADERS frame: status 200 and `content-type`. */
export function responseHeaders(
  streamId: number,
  contentType: string,
): Uint8Array {
  // :status 200 is static entry 8; content-type (entry 31) a literal
  // without indexing.
  const block = [0x88, 0x0f, 0x10, ...hpackString(contentType)];
  return frame(FRAME.HEADERS, END_HEADERS, streamId, new Uint8Array(block));
}
