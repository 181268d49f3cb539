import { Code } from "../code.ts";
import type { Frame } from "./frame_decoder.ts";
import { MAX_MESSAGE_BYTES } from "../protocol/_defaults.ts";
import { RpcError } from "../rpc_error.ts";
import { checkMax } from "../../_internal/limits.ts";
import { type Deferred, deferred } from "../../_internal/deferred.ts";
import { asyncIterable } from "../../_internal/async_iterable.ts";
import { allocBytes, MAX_SLAB_REQUEST } from "./_alloc.ts";
import { writePrefix } from "./_frame.ts";
import {
  type ByteSink,
  dropSinkable,
  registerSinkable,
} from "../../streams/_fuse.ts";

/** Options for {@linkcode FrameEncoderStream}. */
export interface FrameEncoderStreamOptions<T> {
  /**
   * Turns a written chunk into a frame (for example by serializing and
   * compressing a message). May be async.
   *
   * @default {the chunk itself, which must be a `Frame`}
   */
  toFrame?: (chunk: T) => Frame | PromiseLike<Frame>;
  /**
   * The most bytes packed into one output chunk. Frames that queued up while
   * the reader was busy are packed together up to this size; a single frame
   * larger than this is passed on as its own chunk (prefix and message,
   * without a copy).
   *
   * @default {32768}
   */
  chunkBytes?: number;
  /**
   * Queued bytes at which writes start to wait for the reader
   * (back-pressure).
   *
   * @default {65536}
   */
  maxQueueBytes?: number;
  /**
   * The largest message accepted, in bytes; a larger one errors the stream
   * with an `RpcError` of code `ResourceExhausted`.
   *
   * @default {4194304}
   */
  maxMessageBytes?: number;
  /**
   * Errors both sides with the abort reason when aborted: queued frames are
   * dropped and further writes fail.
   */
  signal?: AbortSignal;
}

/**
 * Encodes frames (or messages, with `toFrame`) as length-prefixed bytes,
 * coalescing small frames. It never waits to fill a chunk: when the reader
 * asks for bytes it gets everything queued so far at once (up to
 * `chunkBytes`), and when nothing is queued it gets the next frame as soon as
 * it is written. So a fast producer yields few large chunks while an
 * interactive, one-message-at-a-time exchange sees each message flushed
 * immediately.
 *
 * @example Encode two messages into one chunk
 * ```ts
 * import { FrameEncoderStream } from "@sluice/streams/rpc";
 * import assert from "node:assert/strict";
 *
 * const frames = ReadableStream.from([
 *   { flags: 0, data: new Uint8Array([1]) },
 *   { flags: 0, data: new Uint8Array([2]) },
 * ]);
 * const chunks = await Array.fromAsync(frames.pipeThrough(new FrameEncoderStream()));
 * assert.equal(chunks.length, 1);
 * assert.deepEqual([...chunks[0]], [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 2]);
 * ```
 */
export class FrameEncoderStream<T = Frame>
  implements ReadableWritablePair<Uint8Array, T> {
  /** The encoded bytes. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Where frames (or messages) are written. */
  readonly writable: WritableStream<T>;

  readonly #queue: FrameQueue<T>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #writableController: WritableStreamDefaultController | undefined;

  /**
   * Creates an encoding stream.
   *
   * @param options Frame conversion, chunk size and limits.
   */
  constructor(options: FrameEncoderStreamOptions<T> = {}) {
    const { signal } = options;
    const queue = new FrameQueue<T>(options, (reason) => {
      try {
        this.#controller.error(reason);
      } catch {
        // Already closed or errored: nothing left to tell the reader.
      }
    });
    this.#queue = queue;
    let streaming: { pulled(): void; done: Promise<void> } | undefined;
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: (controller) => {
        if (streaming !== undefined) return streaming.pulled();
        // Read through the stream: it stays so (see registerSinkable below).
        dropSinkable(this.readable);
        streaming = queue.streamTo(controller);
        streaming.done.then(() => {
          // Closed and written; when failed, the stream is errored already.
          if (!queue.failed) controller.close();
        }, (error) => controller.error(error)).catch(() => {
          // Cancelled meanwhile: nothing more goes to the stream.
        });
      },
      cancel: (reason) =>
        discarding.has(this) ? queue.discard() : queue.fail(reason),
    }, { highWaterMark: 0 });
    // Async-iterable in WebKit too (see asyncIterable).
    asyncIterable(this.readable);
    // The runtime glue may take the bytes straight from the queue.
    registerSinkable(this.readable, async (sink) => {
      await queue.pipeTo(sink);
      if (queue.failed) throw queue.failure;
    });
    this.writable = new WritableStream<T>({
      start: (controller) => {
        this.#writableController = controller;
      },
      write: (chunk) => queue.accept(chunk),
      close: () => queue.close(),
      abort: (reason) => queue.error(reason),
    });
    if (signal !== undefined) {
      const onAbort = () => {
        queue.error(signal.reason);
        this.#writableController?.error(signal.reason);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    }
  }

  /**
   * Encodes a chunk directly, past the per-chunk machinery of `writable`
   * (a promise, a queue entry and state checks per chunk: about 0.5 µs
   * under Deno, more than encoding a small message). The fast path of the
   * library's own senders; the caller must hold `writable`'s lock (so that
   * nothing else writes) and must not have closed it, and must call it one
   * chunk at a time: the next only after the previous returned, or after
   * its promise settled. It returns a promise only when the chunk must wait
   * (back-pressure past `maxQueueBytes`, or an async `toFrame`). A failure
   * errors `writable` as a failed write would, and is thrown.
   *
   * @param chunk The frame, or the message for `toFrame`.
   * @returns Nothing, or a promise that settles when the chunk is queued.
   *
   * @example Write past the writable while holding its lock
   * ```ts
   * import { FrameEncoderStream } from "@sluice/streams/rpc";
   * import assert from "node:assert/strict";
   *
   * const encoder = new FrameEncoderStream();
   * const writer = encoder.writable.getWriter();
   * encoder.push({ flags: 0, data: new Uint8Array([7]) });
   * await writer.close();
   * const chunks = await Array.fromAsync(encoder.readable);
   * assert.deepEqual([...chunks[0]], [0, 0, 0, 0, 1, 7]);
   * ```
   */
  push(chunk: T): void | Promise<void> {
    try {
      const pushed = this.#queue.accept(chunk);
      if (pushed === undefined) return;
      return pushed.catch((error) => {
        this.#writableController?.error(error);
        throw error;
      });
    } catch (error) {
      this.#writableController?.error(error);
      throw error;
    }
  }

  /**
   * Sends the frames queued so far without waiting a few microtask turns
   * for more (what the readable does by default, to coalesce a burst):
   * for a writer that knows it has nothing more for now, such as a client
   * that waits for the answer to what it sent. A no-op with nothing queued.
   *
   * @example Send one frame at once, the stream still open
   * ```ts
   * import { FrameEncoderStream } from "@sluice/streams/rpc";
   * import assert from "node:assert/strict";
   *
   * const encoder = new FrameEncoderStream();
   * const writer = encoder.writable.getWriter();
   * const reader = encoder.readable.getReader();
   * encoder.push({ flags: 0, data: new Uint8Array([7]) });
   * encoder.flush();
   * assert.deepEqual([...(await reader.read()).value!], [0, 0, 0, 0, 1, 7]);
   * await writer.close();
   * ```
   */
  flush(): void {
    this.#queue.flush();
  }
}

/**
 * The encoder's queue without its streams: messages in through `accept`,
 * coalesced chunks out into a sink (`pipeTo`: the runtime glue's) or a
 * readable's controller (`streamTo`). FrameEncoderStream wraps it in a
 * readable and a writable; the RPC server drives it straight from its
 * call loop and its response body, which saves the two streams, their
 * reader and writer, and a stream hop per response chunk.
 */
export class FrameQueue<T> {
  readonly #keepQueuedOnRefusal: boolean;
  #queue: Frame[] = [];
  #head = 0;
  #queuedBytes = 0;
  #closed = false;
  #failed = false;
  /** The reader went away and chunks are dropped from now on (`discard`). */
  #discarding = false;
  #flushing = false;
  #failure: unknown;
  /** Where chunks go once `pipeTo` (or `streamTo`) runs. */
  #sink: ByteSink | undefined;
  /** The sink asked to wait (its write returned false) and has not drained. */
  #sinkFull = false;
  /** The sink's chunks must be buffers of their own (see streamTo). */
  #ownBuffers = false;
  /** Set while the writer writes to the sink itself (`writeNow`). */
  #manual = false;
  /** Settles `pipeTo`: once closed and written, or failed; or with a sink's error. */
  #piped: Deferred<void> | undefined;
  /** A write turn is scheduled or waits for the sink to drain. */
  #writing = false;
  /** Idle turns of the gather in progress (#gatherOn), and the queue's length at the last. */
  #idle = 0;
  #seen = 0;
  /** `#take`'s target once there is a sink: writes each chunk to it. */
  readonly #toSink = {
    enqueue: (chunk: Uint8Array) => {
      if (!this.#sink!.write(chunk)) this.#sinkFull = true;
    },
  };
  #wakeWriter: { resolve(): void; reject(reason: unknown): void } | undefined;
  /**
   * Wakes whoever waits for streamTo's reader (see streamTo); set once
   * `streamTo` has made a readable's controller the sink.
   */
  #releaseDrain: (() => void) | undefined;
  readonly #onError: (reason: unknown) => void;
  readonly #toFrame: ((chunk: T) => Frame | PromiseLike<Frame>) | undefined;
  readonly #chunkBytes: number;
  readonly #maxQueueBytes: number;
  readonly #maxMessageBytes: number;

  /**
   * @param options As FrameEncoderStream's (`signal` is not read here).
   * @param onError Called once when a chunk fails (it cannot be converted,
   * or is over maxMessageBytes) or `error` is called.
   * @param keepQueuedOnRefusal A chunk that cannot be converted, or is too
   * large, is refused instead (its error thrown to the writer, `onError`
   * not called, the queue not failed): what was queued before it still goes
   * out once the queue is closed (the RPC server's responses, whose status
   * then carries that error, as grpc-js and connect-node send them).
   */
  constructor(
    options: FrameEncoderStreamOptions<T>,
    onError: (reason: unknown) => void,
    keepQueuedOnRefusal = false,
  ) {
    this.#keepQueuedOnRefusal = keepQueuedOnRefusal;
    const {
      toFrame,
      chunkBytes = 32768,
      maxQueueBytes = 65536,
      maxMessageBytes = MAX_MESSAGE_BYTES,
    } = options;
    this.#chunkBytes = checkMax("create encoder", "chunkBytes", chunkBytes);
    this.#maxQueueBytes = checkMax(
      "create encoder",
      "maxQueueBytes",
      maxQueueBytes,
    );
    this.#maxMessageBytes = checkMax(
      "create encoder",
      "maxMessageBytes",
      maxMessageBytes,
    );
    this.#toFrame = toFrame;
    this.#onError = onError;
  }

  /** True once failed (cancelled, errored, or a chunk failed). */
  get failed(): boolean {
    return this.#failed;
  }

  /** Why it failed, once `failed`. */
  get failure(): unknown {
    return this.#failure;
  }

  /** True once `pipeTo` (or `streamTo`) has given it a sink. */
  get hasSink(): boolean {
    return this.#sink !== undefined;
  }

  /** True once `streamTo` has made a readable's controller its sink. */
  get intoStream(): boolean {
    return this.#releaseDrain !== undefined;
  }

  /** No more chunks: the sink's writer ends once the queue is empty. */
  close(): void {
    this.#closed = true;
    this.#wake();
  }

  /**
   * Queues a chunk; returns a promise only when it must wait (see
   * FrameEncoderStream.push). Throws (and fails the queue) if it cannot be
   * converted or is too large.
   */
  accept(chunk: T): void | Promise<void> {
    if (this.#failed) throw this.#failure;
    if (this.#discarding) return;
    const toFrame = this.#toFrame;
    if (!toFrame) return this.#push(chunk as unknown as Frame);
    let frame: Frame | PromiseLike<Frame>;
    try {
      frame = toFrame(chunk);
    } catch (error) {
      this.#refuse(error);
    }
    if (isFrame(frame)) return this.#push(frame);
    return Promise.resolve(frame).then(
      (f) => this.#push(f),
      (error) => this.#refuse(error),
    );
  }

  /** Throws `error` for a refused chunk, failing the queue unless kept. */
  #refuse(error: unknown): never {
    if (!this.#keepQueuedOnRefusal) this.error(error);
    throw error;
  }

  #push(frame: Frame): void | Promise<void> {
    if (this.#failed) throw this.#failure;
    if (frame.data.byteLength > this.#maxMessageBytes) {
      const error = new RpcError(
        Code.ResourceExhausted,
        `Cannot encode frame: length ${frame.data.byteLength} exceeds maxMessageBytes ${this.#maxMessageBytes}`,
      );
      this.#refuse(error);
    }
    this.#queue.push(frame);
    this.#queuedBytes += 5 + frame.data.byteLength;
    if (!this.#manual) this.#wake();
    if (this.#queuedBytes < this.#maxQueueBytes) return;
    return new Promise<void>((resolve, reject) => {
      this.#wakeWriter = { resolve, reject };
    });
  }

  /**
   * Sends what is queued without waiting for more: the writer has nothing
   * more for now (a client waiting for a response). A no-op with nothing
   * queued.
   */
  flush(): void {
    if (this.#head === this.#queue.length) return;
    // Written now if there is a sink that takes it; otherwise a gather in
    // progress stops at its next turn.
    if (this.#sink === undefined || !this.writeNow()) this.#flushing = true;
  }

  /**
   * Writes the chunks from now on into `sink` (the runtime glue's, see
   * lib/streams/_fuse.ts), in coalesced chunks, waiting for its drain when
   * it is full; resolves once closed and empty, or failed
   * (see `failed`). Throws what the sink throws.
   */
  pipeTo(sink: ByteSink, ownBuffers = false): Promise<void> {
    this.#sink = sink;
    this.#ownBuffers = ownBuffers;
    this.#piped = deferred<void>();
    this.#scheduleWrite();
    return this.#piped.promise;
  }

  /**
   * Writes the chunks from now on into a readable's `controller` (high-water
   * mark 0), as the sink writer does: a chunk goes in as soon as it is
   * gathered while a read waits for it, and at most one more waits in the
   * stream; call `pulled` from the readable's pull. `done` settles as
   * pipeTo's promise. The chunks are buffers of their own (a reader may
   * transfer them).
   */
  streamTo(
    controller: ReadableStreamDefaultController<Uint8Array>,
  ): { pulled(): void; done: Promise<void> } {
    // One drain for every waiter (the write turn, and the RPC server's
    // synchronous writer may wait at once), released by a pull, or by a
    // failure (a cancelled readable pulls no more: the write turn then
    // ends, and the writers find the queue failed).
    let drain: Deferred<void> | undefined;
    const release = () => {
      const waiting = drain;
      drain = undefined;
      waiting?.resolve();
    };
    this.#releaseDrain = release;
    const done = this.pipeTo({
      write(chunk) {
        controller.enqueue(chunk);
        // 0: it went to a waiting read; below: it waits in the stream.
        return controller.desiredSize! >= 0;
      },
      drained: () =>
        controller.desiredSize! >= 0
          ? Promise.resolve()
          : (drain ??= deferred<void>()).promise,
    }, true);
    return { pulled: release, done };
  }

  /**
   * With a sink, the writer itself writes what is queued, at once and in
   * order (the RPC server's synchronous path): nothing is written while
   * the sink is full. True if the sink takes more; throws once failed.
   */
  writeNow(): boolean {
    if (this.#failed) throw this.#failure;
    if (this.#sinkFull) return false;
    while (this.#head < this.#queue.length) this.#take(this.#toSink);
    return !this.#sinkFull;
  }

  /** Resolves when the sink takes more (at once if it does). */
  whenDrained(): Promise<void> {
    if (!this.#sinkFull) return Promise.resolve();
    return this.#sink!.drained().then(() => {
      this.#sinkFull = false;
    });
  }

  /**
   * While on, a queued frame does not wake the sink's writer: the writer
   * calls `writeNow` itself. Turning it off wakes it.
   */
  manual(on: boolean): void {
    this.#manual = on;
    if (!on) this.#wake();
  }

  // After the first frame arrives, give the writer a few microtask turns to
  // add more: a burst written in a loop (or piped from a stream) lands in
  // one chunk, while a lone interactive message waits only microseconds.
  // A writer that says it has nothing more (flush) skips the wait, or with
  // a sink writes the queue itself (the gather then ends, the queue empty):
  // in a lockstep round trip over h2c the sixteen idle turns cost each side
  // 0.6-0.9 µs of CPU under Bun. (The RPC server's ordinary path flushes
  // after a request chunk's answers only when its body goes to a readable
  // (streamTo, a fetch server's response): over node:http2 writing them
  // that much sooner made Deno 2.9.6's server abort, known-runtime-issues.md
  // (e), and its synchronous path writes them through the sink.)
  /** A gather starts: no idle turn yet, the queue's length now. */
  #startGather(): void {
    this.#idle = 0;
    this.#seen = this.#queue.length;
  }

  /**
   * Whether the gather waits one more microtask turn (called once a turn):
   * not once closed, failed, flushed or empty, nor with a chunk's worth
   * queued, nor after GATHER_TURNS turns in a row that added no frame.
   */
  #gatherOn(): boolean {
    if (
      this.#idle >= GATHER_TURNS || this.#closed || this.#failed ||
      this.#flushing || this.#head === this.#queue.length ||
      this.#queuedBytes >= this.#chunkBytes
    ) {
      return false;
    }
    const length = this.#queue.length;
    this.#idle = length > this.#seen ? 0 : this.#idle + 1;
    this.#seen = length;
    return true;
  }

  #wake(): void {
    if (this.#piped !== undefined) this.#scheduleWrite();
  }

  // With a sink, the writer is a microtask turn scheduled when a frame
  // arrives, not a loop awaiting a promise per frame: the same gather (up
  // to GATHER_TURNS idle turns while more frames come), then everything
  // queued is written. A lockstep sender that flushes has written its frame
  // before the turn runs, which then finds the queue empty: one microtask
  // per message instead of the loop's five or six promises (780 bytes of
  // garbage per round trip under Deno, measured).
  #scheduleWrite(): void {
    if (this.#writing) return;
    this.#writing = true;
    this.#startGather();
    void RESOLVED.then(this.#writeTurn);
  }

  readonly #writeTurn = (): void => {
    const piped = this.#piped!;
    if (this.#failed) {
      this.#writing = false;
      return piped.resolve();
    }
    if (this.#head === this.#queue.length) {
      this.#writing = false;
      if (this.#closed) piped.resolve();
      return;
    }
    if (this.#sinkFull) return this.#writeWhenDrained();
    if (this.#gatherOn()) {
      void RESOLVED.then(this.#writeTurn);
      return;
    }
    try {
      while (this.#head < this.#queue.length && !this.#sinkFull) {
        this.#take(this.#toSink);
      }
    } catch (error) {
      this.#writing = false;
      return piped.reject(error);
    }
    // Full: wait for its drain now, before the event can pass unseen.
    if (this.#sinkFull) return this.#writeWhenDrained();
    this.#writing = false;
    if (this.#closed) piped.resolve();
  };

  #writeWhenDrained(): void {
    this.whenDrained().then(() => {
      this.#writing = false;
      this.#scheduleWrite();
    }, (error) => {
      this.#writing = false;
      this.#piped!.reject(error);
    });
  }

  /** Enqueues one chunk of what is queued (which is not empty). */
  #take(controller: { enqueue(chunk: Uint8Array): void }): void {
    const queue = this.#queue;
    const first = queue[this.#head];
    if (5 + first.data.byteLength >= this.#chunkBytes) {
      this.#head++;
      this.#dequeued(5 + first.data.byteLength);
      const prefix = new Uint8Array(5);
      writePrefix(prefix, 0, first);
      controller.enqueue(prefix);
      if (first.data.byteLength > 0) controller.enqueue(first.data);
      return;
    }
    let size = 0;
    let end = this.#head;
    while (end < queue.length) {
      const next = 5 + queue[end].data.byteLength;
      if (size + next > this.#chunkBytes) break;
      size += next;
      end++;
    }
    // For the glue's sink (a node stream, which writes the bytes and keeps
    // nothing else of them) a small chunk comes from allocBytes, carved from
    // the shared slab: a new ArrayBuffer costs about 3,000 instructions
    // under Deno 2.9.6 (callgrind), a view about 500 (under Bun a tiny one
    // is an array of its own, cheaper there). A chunk for the readable
    // stays a buffer of its own, which its reader may transfer.
    const chunk = controller === this.#toSink && !this.#ownBuffers &&
        size <= MAX_SLAB_REQUEST
      ? allocBytes(size)
      : new Uint8Array(size);
    let offset = 0;
    for (let i = this.#head; i < end; i++) {
      const frame = queue[i];
      const data = frame.data;
      const length = data.byteLength;
      writePrefix(chunk, offset, frame);
      offset += 5;
      if (length <= 16) {
        // A byte loop beats TypedArray.prototype.set for tiny messages.
        for (let j = 0; j < length; j++) chunk[offset + j] = data[j];
      } else {
        chunk.set(data, offset);
      }
      offset += length;
    }
    this.#head = end;
    this.#dequeued(size);
    controller.enqueue(chunk);
  }

  #dequeued(bytes: number): void {
    this.#queuedBytes -= bytes;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
      // Flushed: what comes next gathers again.
      this.#flushing = false;
    } else if (this.#head > 1024) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    if (this.#queuedBytes < this.#maxQueueBytes && this.#wakeWriter) {
      const writer = this.#wakeWriter;
      this.#wakeWriter = undefined;
      writer.resolve();
    }
  }

  /** The reader went away: drops the queue, refuses further chunks. */
  fail(reason: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#failure = reason;
    this.#queue = [];
    this.#head = 0;
    this.#queuedBytes = 0;
    const writer = this.#wakeWriter;
    this.#wakeWriter = undefined;
    writer?.reject(reason);
    this.#releaseDrain?.();
    this.#wake();
  }

  /**
   * The reader went away but the writer may go on (the RPC client's
   * request stream, whose server stopped reading it): drops what is queued
   * and every chunk from now on, and closing succeeds.
   */
  discard(): void {
    if (this.#failed || this.#discarding) return;
    this.#discarding = true;
    this.#queue = [];
    this.#head = 0;
    this.#queuedBytes = 0;
    const writer = this.#wakeWriter;
    this.#wakeWriter = undefined;
    writer?.resolve();
    this.#releaseDrain?.();
    this.#wake();
  }

  /** The writer failed: as `fail`, and tells `onError`. */
  error(reason: unknown): void {
    if (this.#failed) return;
    this.fail(reason);
    this.#onError(reason);
  }
}

/** Encoders whose chunks are dropped once their reader cancels. */
const discarding = new WeakSet<FrameEncoderStream<never>>();

/**
 * Makes `encoder` drop what is written once its readable is cancelled,
 * instead of failing the writes: the RPC client's request stream, whose
 * server may stop reading it (a call that ends early, with its status in
 * the response): sending then succeeds as it does over a connection whose
 * peer no longer reads, and the call's outcome comes with the responses.
 * Internal (not exported by the module's entry point).
 */
export function discardAfterCancel<T>(encoder: FrameEncoderStream<T>): void {
  discarding.add(encoder as FrameEncoderStream<never>);
}

const GATHER_TURNS = 16;
const RESOLVED = Promise.resolve();

function isFrame(value: Frame | PromiseLike<Frame>): value is Frame {
  return typeof (value as PromiseLike<Frame>).then !== "function";
}
