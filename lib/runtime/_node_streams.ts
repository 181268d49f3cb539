// Bridges between node:http2 streams and web streams, with back-pressure:
// the node stream is paused while the web stream holds too much unread.
//
// Per message, these are the runtime's part of a lockstep RPC's cost, so
// each chunk crosses with as little as possible: no extra queue, one pull
// per read at most, and no ArrayBuffer materialised where a copy is cheaper.

import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import { isBun } from "../_internal/user_agent.ts";
import { NOT_BYTES } from "../_internal/pump_bytes.ts";
import { releaseUnlessEnded } from "../_internal/release.ts";
import { allocBytes, MAX_SLAB_REQUEST } from "../rpc/wire/_alloc.ts";
import {
  type ByteSink,
  pipeToSink,
  type PushListener,
  registerPushSource,
} from "../streams/_fuse.ts";

/**
 * What a queued chunk counts beyond its bytes against `maxBufferBytes`: its
 * objects (here and the runtime's per DATA frame). Counted as bytes alone,
 * 65,536 one-byte frames queued before the stream paused.
 */
const CHUNK_OVERHEAD_BYTES = 512;
/** A chunk smaller than this takes the small chunks queued behind it. */
const MERGE_BELOW_BYTES = 16384;
/** The most bytes one merged chunk holds. */
const MERGE_BYTES = 65536;

/**
 * The readable side of a node duplex as a web stream of plain `Uint8Array`s.
 * The chunks wait in a queue of its own until read (the web stream's
 * high-water mark is 0): a chunk that arrives while a read waits fulfils it
 * directly. The node stream is paused once `maxBufferBytes` or more are
 * queued unread, each chunk counting CHUNK_OVERHEAD_BYTES more (node:http2
 * then stops reading and the peer's flow-control window fills), so at most
 * `maxBufferBytes` plus one chunk are held, and resumed when a read empties
 * the queue. A read takes a small chunk with the small ones queued behind
 * it, as one.
 *
 * It is also a push source (lib/streams/_fuse.ts): the library's own
 * consumer may take the chunks in the node stream's events instead, the
 * queued ones first. `endError`, if it gives an error at the node stream's
 * end, errors the stream with it instead of closing it.
 */
export function readableFromNode(
  stream: Duplex,
  maxBufferBytes = 65536,
  resetError: (error?: Error) => Error = (error) =>
    error ?? new Error("Cannot read stream: it was reset before its end"),
  endError?: () => Error | undefined,
): ReadableStream<Uint8Array> {
  // Done: ended, errored or cancelled (nothing more goes to the stream).
  let cancelled = false;
  let paused = false;
  let ended = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let queue: Uint8Array[] = [];
  let queuedBytes = 0;
  // A read waits for the next chunk.
  let waiting = false;
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      controller.close();
    }
  };
  // Set while the library's consumer takes the chunks itself.
  let listener: PushListener | undefined;
  const pause = () => {
    if (!paused) {
      paused = true;
      stream.pause();
    }
  };
  const resume = () => {
    if (paused) {
      paused = false;
      stream.resume();
    }
  };
  const fail = (error: unknown) => {
    cancelled = true;
    queue = [];
    queuedBytes = 0;
    controller.error(error);
    listener?.error(error);
  };
  // Small chunks queued behind `first` go with it in one, up to
  // MERGE_BYTES: a client sending tiny DATA frames (one byte each) cost a
  // web stream read per frame, 1,000,000 of them in 21 s under Deno (a
  // bare node:http2 reader took 3.6 s), other calls starved meanwhile.
  const mergeQueued = (first: Uint8Array): Uint8Array => {
    let size = first.byteLength;
    let count = 0;
    while (
      count < queue.length &&
      size + queue[count].byteLength <= MERGE_BYTES
    ) size += queue[count++].byteLength;
    if (count === 0) return first;
    const merged = new Uint8Array(size);
    merged.set(first);
    let at = first.byteLength;
    for (const chunk of queue.splice(0, count)) {
      merged.set(chunk, at);
      at += chunk.byteLength;
      queuedBytes -= chunk.byteLength + CHUNK_OVERHEAD_BYTES;
    }
    return merged;
  };
  const readable = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      stream.on("data", (chunk: Uint8Array) => {
        if (cancelled) return;
        const bytes = plainBytes(chunk);
        if (listener !== undefined) return listener.data(bytes);
        if (waiting) {
          waiting = false;
          return controller.enqueue(bytes);
        }
        queue.push(bytes);
        queuedBytes += bytes.byteLength + CHUNK_OVERHEAD_BYTES;
        if (queuedBytes >= maxBufferBytes) pause();
      });
      stream.once("end", () => {
        if (cancelled) return;
        // An end that is none: node:http2 (Deno's and Bun's) ends a client
        // stream's data when its connection dies, and a response cut short
        // read as whole (a Connect unary call succeeded with half its
        // message).
        const error = endError?.();
        if (error !== undefined) return fail(error);
        ended = true;
        // Queued chunks are read first; the last read closes.
        if (queue.length === 0) close();
        listener?.end();
      });
      stream.once("error", (error) => {
        if (!cancelled) fail(resetError(error));
      });
      stream.once("close", () => {
        // Closed (reset) before the end of the data: an error.
        if (!cancelled && !stream.readableEnded) fail(resetError());
      });
      // A 'data' listener does not start every runtime's node:http2 stream
      // flowing (Bun's stays paused): the data flows until the queue is full.
      stream.resume();
    },
    pull() {
      // A read waits.
      let next = queue.shift();
      if (next === undefined) {
        waiting = true;
        return resume();
      }
      queuedBytes -= next.byteLength + CHUNK_OVERHEAD_BYTES;
      if (queue.length > 0 && next.byteLength < MERGE_BELOW_BYTES) {
        next = mergeQueued(next);
      }
      controller.enqueue(next);
      if (queue.length > 0) return;
      if (ended) close();
      else resume();
    },
    cancel() {
      // Discard the rest: nothing reads it any more.
      cancelled = true;
      listener = undefined;
      queue = [];
      queuedBytes = 0;
      paused = false;
      stream.resume();
    },
  }, { highWaterMark: 0 });
  NOT_BYTES.add(readable);
  registerPushSource(readable, (next) => {
    if (cancelled || waiting) return;
    listener = next;
    // What is queued goes first, in order; then the end, if it came.
    const held = queue;
    queue = [];
    queuedBytes = 0;
    for (const chunk of held) {
      // Cancelled by what a chunk told its listener: nothing more to it.
      if (cancelled) break;
      next.data(chunk);
    }
    if (!cancelled) {
      if (ended) {
        close();
        next.end();
      } else resume();
    }
    return {
      pause,
      resume,
      stop() {
        if (listener === next) listener = undefined;
      },
    };
  });
  return readable;
}

/**
 * Writes a web stream to a node duplex, waiting for 'drain' when its buffer
 * is full. Resolves when the source has ended (the duplex is not ended).
 */
export function writeToNode(
  source: ReadableStream<Uint8Array>,
  stream: Duplex,
): Promise<void> {
  return writeToSink(source, nodeSink(stream));
}

/** The largest write of a body's chunk into a node duplex. */
const WRITE_PIECE_BYTES = 64 * 1024;

/**
 * Writes a web stream into a sink (a node duplex's, or one that moves
 * between duplexes), waiting for `drained` when it takes no more; a chunk
 * over 64 KiB in pieces of that size.
 */
export async function writeToSink(
  source: ReadableStream<Uint8Array>,
  sink: ByteSink,
): Promise<void> {
  const reader = source.getReader();
  // Read to its end: the lock is kept (see releaseUnlessEnded).
  let ended = false;
  try {
    // The library's own body (an RPC call's) writes straight into the
    // sink, in the event that produced it.
    const sinking = pipeToSink(source, sink);
    if (sinking !== undefined) {
      await sinking;
      ended = true;
      return;
    }
    while (true) {
      const { done, value } = await reader.read();
      if (done) {
        ended = true;
        return;
      }
      if (value.byteLength <= WRITE_PIECE_BYTES) {
        if (!sink.write(value)) await sink.drained();
        continue;
      }
      // A large chunk goes in pieces, each once the one before has
      // drained: node:http2 under Deno and Bun counts a write done only
      // when all of it is sent, and serveHttp2's sendTimeoutMs sees a
      // stream's progress in its writes (a client reading 1 MiB at
      // 16 KiB/s showed none for 64 s).
      for (let at = 0; at < value.byteLength; at += WRITE_PIECE_BYTES) {
        if (!sink.write(value.subarray(at, at + WRITE_PIECE_BYTES))) {
          await sink.drained();
        }
      }
    }
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    throw error;
  } finally {
    releaseUnlessEnded(reader, ended);
  }
}

/** The duplex as a sink for the library's own bodies (_fuse.ts). */
export function nodeSink(stream: Duplex): ByteSink {
  return {
    write(chunk) {
      // An HTTP/2 stream the peer aborted (its session destroyed, its
      // socket cut) may be neither destroyed nor closed under Deno, and
      // takes every write without a drain.
      if (stream.destroyed || (stream as { aborted?: boolean }).aborted) {
        throw new Error("Cannot write stream: it was closed");
      }
      return stream.write(nodeBytes(chunk));
    },
    // Drained already if it no longer needs to (its 'drain' has passed).
    drained: () =>
      stream.writableNeedDrain ? drained(stream) : Promise.resolve(),
  };
}

/** Resolves on the duplex's next 'drain'; rejects if it closes first. */
export function drained(stream: Duplex): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      stream.off("drain", onDrain);
      stream.off("close", onClose);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onClose = () => {
      cleanup();
      reject(new Error("Cannot write stream: it was closed"));
    };
    stream.on("drain", onDrain);
    stream.on("close", onClose);
  });
}

// Under Bun, a small typed array (up to about 1,000 bytes, such as a
// message's frame or a Buffer node:http2 emits for it) keeps its bytes in
// the JS heap with no ArrayBuffer; the first `.buffer` or `subarray` on it
// (a view of it, node's Writable converting it, a frame decoder slicing it)
// allocates one and moves the bytes there: 150-200 ns each in a loop, and
// 7-14% of the CPU samples of a lockstep client and server under Bun. So
// under Bun a small chunk read is copied into allocBytes's bytes (up to 64
// bytes a heap array of its own, which the frame decoder copies messages out
// of rather than slicing; above, a slab view, cheap to slice), and a small
// chunk written is copied into a Buffer (30-40 ns), which node writes as is.
// Under Deno and Node every typed array already has its ArrayBuffer and a new
// one costs about 0.5 µs under Deno: a view is the cheap way there.
const BUN_COPY_MAX_BYTES = 1024;
const BUN = isBun();

/** A chunk node emitted (a Buffer) as a plain `Uint8Array`. */
function plainBytes(chunk: Uint8Array): Uint8Array {
  const n = chunk.byteLength;
  if (n <= MAX_SLAB_REQUEST && BUN) {
    const bytes = allocBytes(n);
    bytes.set(chunk);
    return bytes;
  }
  return new Uint8Array(chunk.buffer, chunk.byteOffset, n);
}

/** A chunk to write, as node's Writable takes it without converting. */
export function nodeBytes(chunk: Uint8Array): Uint8Array {
  if (
    chunk.byteLength <= BUN_COPY_MAX_BYTES && BUN && !Buffer.isBuffer(chunk)
  ) {
    return Buffer.from(chunk);
  }
  return chunk;
}

/** Node's incoming headers (pseudo-headers dropped) as web `Headers`. */
export function headersFromNode(
  incoming: Record<string, string | string[] | undefined>,
): Headers {
  const headers = new Headers();
  for (const [key, value] of Object.entries(incoming)) {
    if (key.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) {
      for (const v of value) headers.append(key, v);
    } else headers.append(key, String(value));
  }
  return headers;
}

/** Fields that only HTTP/1.1 has: HTTP/2 must not send them (RFC 9113, 8.2.2). */
const CONNECTION_FIELDS = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);

/**
 * Sets `key` in node outgoing headers; a second value (only `Set-Cookie`
 * comes apart in `Headers.forEach`) makes an array, as node sends each.
 */
function put(
  out: Record<string, string | string[]>,
  key: string,
  value: string,
): void {
  const had = out[key];
  if (had === undefined) out[key] = value;
  else out[key] = Array.isArray(had) ? [...had, value] : [had, value];
}

/**
 * Web `Headers` as node:http2 outgoing headers, without the connection
 * fields of HTTP/1.1 (a response's headers copied from an HTTP/1.1 one, say)
 * and those its `Connection` names: node:http2 refuses them, which reset
 * the stream or, in trailers, left it open for good. `TE` goes only as
 * `trailers`.
 */
export function headersToH2(
  headers: Headers,
): Record<string, string | string[]> {
  const named = headers.get("connection")?.toLowerCase().split(",")
    .map((name) => name.trim());
  const out: Record<string, string | string[]> = {};
  headers.forEach((value, key) => {
    if (CONNECTION_FIELDS.has(key) || named?.includes(key)) return;
    if (key === "te" && value.trim().toLowerCase() !== "trailers") return;
    put(out, key, value);
  });
  return out;
}

/**
 * HTTP/2's measure of a header list (RFC 9113, 6.5.2): name and value
 * octets plus 32 per field (node:http2 keeps values as Latin-1 strings, a
 * character an octet).
 */
export function headerListBytes(
  headers: Record<string, string | string[] | undefined>,
): number {
  let total = 0;
  for (const [name, value] of Object.entries(headers)) {
    const values = Array.isArray(value) ? value : [value ?? ""];
    for (const v of values) total += name.length + String(v).length + 32;
  }
  return total;
}

/** Web `Headers` as node outgoing headers. */
export function headersToNode(
  headers: Headers,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  headers.forEach((value, key) => put(out, key, value));
  return out;
}
