// The library's own transform streams (ScanStream, MapStream) register their
// per-chunk step here, so that a consumer in a later layer that owns both
// ends of such a stream (the RPC server, for a stream a bidi handler
// returns) can apply the step in its own loop instead of a web-stream hop
// each way. The step is exactly the stream's transform: same function,
// same state (a scan's accumulator, a map's index), same errors.
//
// The other way round, a readable the library produces (the RPC server's
// decoded requests, the client's responses) registers a burst reader, so
// that the library's own consumers (`reduce`, the RPC call loop, the
// client's receive()) take a body chunk's messages at once instead of a
// stream read each.

/** One chunk in, one value (or a promise of it) out. */
export type FusedStep = (chunk: unknown) => unknown;

const steps = new WeakMap<
  TransformStream,
  { step: () => FusedStep; written: () => boolean }
>();

/**
 * Registers `stream`'s step (called by the stream's constructor), and how
 * to tell that a chunk was written to it (see watchWrites).
 */
export function registerFusable(
  stream: TransformStream,
  step: () => FusedStep,
  written: () => boolean,
): void {
  steps.set(stream, { step, written });
}

/**
 * A writable side's strategy like `strategy` (the default: one chunk) that
 * notes each write: a chunk written before the stream is fused (a bidi
 * handler that primes its stream with a greeting) waits in the writable's
 * queue, which the fused step never sees: such a stream stays a stream.
 */
export function watchWrites<T>(
  strategy: QueuingStrategy<T> = {},
): { strategy: QueuingStrategy<T>; written: () => boolean } {
  let written = false;
  const size = strategy.size;
  return {
    strategy: {
      highWaterMark: strategy.highWaterMark ?? 1,
      size(chunk: T) {
        written = true;
        return size ? size.call(strategy, chunk) : 1;
      },
    },
    written: () => written,
  };
}

/**
 * The step of one of the library's transform streams, when nothing has
 * used it yet (no chunk written, both sides unlocked), after locking both
 * sides so that nothing else can; `undefined` for any other value.
 */
export function takeFusedStep(value: unknown): FusedStep | undefined {
  if (!(value instanceof TransformStream)) return undefined;
  const entry = steps.get(value);
  if (
    !entry || entry.written() || value.readable.locked ||
    value.writable.locked
  ) return undefined;
  // Held, never released: the stream is the step's from now on.
  value.writable.getWriter();
  value.readable.getReader();
  steps.delete(value);
  return entry.step();
}

/**
 * A burst reader over a readable whose producer is library code (the RPC
 * server's decoded requests): each `read` hands over every chunk decoded
 * so far from one input chunk (at least one) in an array, instead of a
 * promise and a queue entry per chunk; `undefined` at the end; it rejects
 * (or throws) with the stream's error. The chunks are the stream's, in
 * order, exactly those its reader would have read.
 */
export interface BurstReader {
  read(): unknown[] | undefined | Promise<unknown[] | undefined>;
  /**
   * As `read`, for a consumer that waits: the burst goes to `ready` (or the
   * error to `failed`), called in the event that produced it where the
   * producer can (see BurstProducer.fillTo), with no promise between; at
   * once if it is there.
   */
  readTo(
    ready: (burst: unknown[] | undefined) => void,
    failed: (error: unknown) => void,
  ): void;
  /** Ends burst reading: the stream's own reads work again after this. */
  release(): void;
}

const bursts = new WeakMap<
  ReadableStream,
  (reader: ReadableStreamDefaultReader<unknown>) => BurstReader
>();

/** Registers `stream`'s burst reader (called by its producer). */
export function registerBurstSource(
  stream: ReadableStream,
  open: (reader: ReadableStreamDefaultReader<unknown>) => BurstReader,
): void {
  bursts.set(stream, open);
}

/**
 * The burst reader of `stream`, for a consumer that holds `reader` (the
 * stream's lock) and reads nothing through it while the burst reader is
 * in use; `undefined` for any stream that has none. Release it before
 * releasing the lock.
 */
export function openBurstReader(
  stream: ReadableStream,
  reader: ReadableStreamDefaultReader<unknown>,
): BurstReader | undefined {
  return bursts.get(stream)?.(reader);
}

/** What {@linkcode registerBurstProducer} needs of a stream's producer. */
export interface BurstProducer<T> {
  /**
   * True while the stream holds chunks of its own (queued by a pull before
   * the burst reader opened) or has ended: those are read through it.
   */
  queued(): boolean;
  /**
   * Takes the stream's pull in progress, if any (the producer forgets it):
   * a burst read waits for it first.
   */
  takePull(): Promise<unknown> | undefined;
  /**
   * Produces the next burst into `emit`: returns (or its promise settles)
   * once it emitted at least one message, or the stream ended (closed or
   * errored). Returning nothing says it emitted synchronously.
   */
  fill(emit: (message: T) => void): void | Promise<unknown>;
  /**
   * As `fill`, with no promise: returns true if it emitted (or the stream
   * ended) at once, else calls `done` once it has, or `done(false, error)`
   * if producing failed. Optional: without it `readTo` waits on `fill`.
   */
  fillTo?(
    emit: (message: T) => void,
    done: (ok: boolean, error?: unknown) => void,
  ): boolean;
  /** Told when a burst reader opens (true) and is released (false). */
  direct(open: boolean): void;
}

/**
 * Registers the burst reader of a stream whose producer can emit straight
 * into an array: each read returns the messages of one `fill`, or what
 * the stream itself holds or its end.
 */
export function registerBurstProducer<T>(
  stream: ReadableStream<T>,
  producer: BurstProducer<T>,
): void {
  registerBurstSource(stream, (streamReader) => {
    producer.direct(true);
    const readStream = async (): Promise<unknown[] | undefined> => {
      const out: unknown[] = [];
      while (producer.queued()) {
        const result = await streamReader.read();
        if (result.done) break;
        out.push(result.value);
      }
      return out.length > 0 ? out : undefined;
    };
    const fill = (): unknown[] | undefined | Promise<unknown[] | undefined> => {
      const out: T[] = [];
      const filling = producer.fill((message) => out.push(message));
      // Filled at once (messages already decoded): no promise at all.
      if (filling === undefined && out.length > 0) return out;
      return Promise.resolve(filling).then(() =>
        out.length > 0 ? out : readStream()
      );
    };
    // What the stream holds or its end, or the next fill, once the pull
    // taken from the producer (if one was under way) has settled.
    const next = (pull: Promise<unknown> | undefined) =>
      pull !== undefined
        ? pull.then(() => producer.queued() ? readStream() : fill())
        : producer.queued()
        ? readStream()
        : fill();
    // readTo's state, made once per reader: a consumer that waits costs no
    // closure, array or promise beyond the burst's own array.
    let out: T[] = [];
    let onReady: ((burst: unknown[] | undefined) => void) | undefined;
    let onFailed: ((error: unknown) => void) | undefined;
    const emitTo = (message: T) => void out.push(message);
    const settle = (ok: boolean, error?: unknown) => {
      const ready = onReady!;
      const failed = onFailed!;
      onReady = onFailed = undefined;
      const burst = out;
      out = [];
      if (!ok) return failed(error);
      if (burst.length > 0) return ready(burst);
      // Ended, or queued in the stream meanwhile: read through it.
      readStream().then(ready, failed);
    };
    return {
      read: () => next(producer.takePull()),
      readTo(ready, failed) {
        const pull = producer.takePull();
        const fillTo = producer.fillTo;
        if (pull !== undefined || fillTo === undefined || producer.queued()) {
          let result: ReturnType<typeof next>;
          try {
            result = next(pull);
          } catch (error) {
            return failed(error);
          }
          if (result instanceof Promise) return void result.then(ready, failed);
          return ready(result);
        }
        onReady = ready;
        onFailed = failed;
        let now: boolean;
        try {
          now = fillTo(emitTo, settle);
        } catch (error) {
          onReady = onFailed = undefined;
          out = [];
          return failed(error);
        }
        if (now) settle(true);
      },
      release() {
        producer.direct(false);
      },
    };
  });
}

// Byte streams with library code at both ends (the RPC server and client
// on one side, the runtime glue over a node:http2 stream on the other)
// can skip the web stream between them: the glue hands the producer of a
// body it writes a sink to write into, and takes the chunks of a body it
// reads through a listener, each called in the node stream's own event
// (no promise, queue entry or microtask turn per chunk). A lockstep round
// trip then runs decode -> handler step -> encode -> write in the event
// that brought its request, as a bare node:http2 echo does.

/**
 * Where the producer of a byte stream writes synchronously: `write`
 * returns false once the sink holds enough (then wait for `drained`
 * before writing more), and throws once the sink is gone (its stream
 * closed or reset).
 */
export interface ByteSink {
  write(chunk: Uint8Array): boolean;
  /**
   * Resolves when the sink takes more (at once if it already does again);
   * rejects if it closes first.
   */
  drained(): Promise<void>;
}

const sinkables = new WeakMap<
  ReadableStream,
  (sink: ByteSink) => Promise<void>
>();

/**
 * Registers the sink writer of a byte stream whose producer is library
 * code: `run` writes the rest of the stream into the sink and resolves
 * once it has written its end.
 */
export function registerSinkable(
  stream: ReadableStream<Uint8Array>,
  run: (sink: ByteSink) => Promise<void>,
): void {
  sinkables.set(stream, run);
}

/**
 * Forgets `stream`'s sink writer (called by its producer once something
 * read through the stream: a pull may still be under way, and the sink
 * must not take chunks beside it).
 */
export function dropSinkable(stream: ReadableStream<Uint8Array>): void {
  sinkables.delete(stream);
}

/**
 * Hands the rest of `stream` to `sink`, for a consumer that holds its lock
 * and has read nothing through it; `undefined` for a stream that has no
 * such producer (read it as usual). Resolves once the end is written;
 * rejects if the sink failed (then cancel the stream, as after a failed
 * read).
 */
export function pipeToSink(
  stream: ReadableStream<Uint8Array>,
  sink: ByteSink,
): Promise<void> | undefined {
  const run = sinkables.get(stream);
  if (run === undefined) return undefined;
  sinkables.delete(stream);
  return run(sink);
}

/** Receives the chunks of a push source, in its stream's own events. */
export interface PushListener {
  data(chunk: Uint8Array): void;
  end(): void;
  error(reason: unknown): void;
}

/** What the consumer of a push source controls. */
export interface PushSource {
  /** Stops the chunks until `resume` (back-pressure). */
  pause(): void;
  resume(): void;
  /** Ends pushing: chunks go to the stream's queue again. */
  stop(): void;
}

const pushSources = new WeakMap<
  ReadableStream,
  (listener: PushListener) => PushSource | undefined
>();

/** Registers the push source of a byte stream the runtime glue produces. */
export function registerPushSource(
  stream: ReadableStream<Uint8Array>,
  open: (listener: PushListener) => PushSource | undefined,
): void {
  pushSources.set(stream, open);
}

/**
 * From now on, `stream`'s chunks go to `listener` as they arrive instead
 * of to its queue; for a consumer that holds its lock and has no read
 * pending. Without `read`, `undefined` when it cannot (the stream has no
 * push source, or holds queued chunks, or has ended): read on as usual.
 * With `read` (the consumer's own reader's), any other stream is pumped
 * through it (see pumpReads).
 */
export function openPushSource(
  stream: ReadableStream<Uint8Array>,
  listener: PushListener,
): PushSource | undefined;
export function openPushSource(
  stream: ReadableStream<Uint8Array>,
  listener: PushListener,
  read: () => Promise<ReadableStreamReadResult<Uint8Array>>,
): PushSource;
export function openPushSource(
  stream: ReadableStream<Uint8Array>,
  listener: PushListener,
  read?: () => Promise<ReadableStreamReadResult<Uint8Array>>,
): PushSource | undefined {
  const source = pushSources.get(stream)?.(listener);
  if (source !== undefined || read === undefined) return source;
  return pumpReads(read, listener);
}

/**
 * A push source over any byte stream (a fetch body): reads through `read`,
 * one at a time, each chunk handed to `listener` in the read's own promise
 * reaction. One read is always under way, paused or not, so that a body
 * that fails (a client that went away) is told to `error` at once: a fetch
 * server may say so in no other way while its handler waits (Deno.serve
 * cancels the response body only when no read of the request is pending).
 * While paused, the chunk it brings is held (not read past) until `resume`;
 * so a chunk whose buffer the next read reuses (ChunkReader) stays valid
 * until `data` returns. The end comes after the last chunk. `stop` ends
 * the reads; a read under way or a held chunk is then dropped (for a
 * consumer that ended or failed).
 */
function pumpReads(
  read: () => Promise<ReadableStreamReadResult<Uint8Array>>,
  listener: PushListener,
): PushSource {
  let paused = false;
  let stopped = false;
  // The chunk (or the end) read while paused.
  let held: ReadableStreamReadResult<Uint8Array> | undefined;
  // Tells the listener of a failure. If its error() throws too, nothing is
  // left to tell: dropped rather than left to reject a read's reaction,
  // which nothing handles (a process-ending unhandled rejection).
  const tell = (reason: unknown) => {
    try {
      listener.error(reason);
    } catch {
      // See above.
    }
  };
  const deliver = (result: ReadableStreamReadResult<Uint8Array>) => {
    if (result.done) {
      stopped = true;
      try {
        listener.end();
      } catch (error) {
        // The listener's own failure at the end: told as one.
        tell(error);
      }
      return;
    }
    try {
      listener.data(result.value);
    } catch (error) {
      // The listener's own failure: no more reads, as after a failed one.
      return onError(error);
    }
    if (!stopped) next();
  };
  const onResult = (result: ReadableStreamReadResult<Uint8Array>) => {
    if (stopped) return;
    if (paused) held = result;
    else deliver(result);
  };
  const onError = (reason: unknown) => {
    if (stopped) return;
    stopped = true;
    held = undefined;
    tell(reason);
  };
  const next = () => void read().then(onResult, onError);
  next();
  return {
    pause() {
      paused = true;
    },
    resume() {
      if (!paused) return;
      paused = false;
      const result = held;
      held = undefined;
      if (result !== undefined && !stopped) deliver(result);
    },
    stop() {
      stopped = true;
      held = undefined;
    },
  };
}
