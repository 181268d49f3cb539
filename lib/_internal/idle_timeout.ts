import { heldBytes, heldBytesStrategy } from "./bytes.ts";
import { checkTimerMs } from "./limits.ts";
import { GrowingReader, pumpBytes } from "./pump_bytes.ts";

// The read side's pace for request bodies: a client that stops sending (an
// idle timeout) or drips bytes (a minimum rate, PacedReader) must not pin a
// handler forever.

/** The default size of one read: a pipe's. */
const READ_BYTES = 64 * 1024;

/**
 * With a hold limit, the most bytes the consumer is handed at a time
 * (pipeWithPace's `maxHeldBackMs`): a larger chunk is passed on in views of
 * this size. The consumer that is the runtime takes its next chunk only
 * once its write of the last one is done, so a take of a whole read (up to
 * 16 MiB with a Content-Length, GrowingReader) needed the client to read
 * all of it within the limit: at the 30-s default, a client reading less
 * than about 0.56 MB/s was cut although it read. Each slice is one more
 * write into the runtime: curl -T of 512 MiB through createEchoHandler()
 * under Deno 2.9.6 over HTTP/1.1 (reads of 16 MiB), five alternated runs on
 * a busy machine, medians: whole chunks 187 MB/s, 1 MiB slices 162, 256 KiB
 * 152, 64 KiB 124; over h2c, and under Bun 1.4.5 over HTTP/1.1, 64 KiB
 * slices made no difference. 256 KiB: a take then needs far less than the
 * server's socket itself does (the runtime writes again once the client
 * has read about a third of its send buffer, 1.4 MiB on Linux's loopback).
 */
const HOLD_SLICE_BYTES = 256 * 1024;

/**
 * One idle limit: how long a single wait for a source may last. `begin()`
 * marks a wait starting now (or going on after a chunk: the limit counts
 * from here), `end()` a spell that is not a wait (a chunk being handled,
 * a consumer not reading); once one wait has lasted `ms` milliseconds,
 * `onIdle` is called (once) and the watch stops. One timer, re-armed only
 * when it fires early: a timer per chunk costs more than the chunk on a
 * fast stream (measured: RSS growth of a 1 GiB echo went from 12 MiB to
 * 50-70 MiB). With `heldBack`, a consumer that stops and starts reading
 * with no call here is seen by looking: while `heldBack()` is true the
 * timer looks every eighth of the limit, and the wait after it counts from
 * the look that found room (late by at most that much, never early).
 * With `hold` as well (the echo's, whose consumer is its client), being
 * held back is limited too: a spell of `heldBack()` in which the
 * consumer's `hold.taken()` count stays the same for `hold.ms` stops the
 * watch and calls `hold.onHeld` (seen by the looks, every eighth of `ms`
 * from the spell's start, so late by at most two eighths of `ms`, never
 * early; the timer is re-armed once per spell, when `end()` starts one).
 * Without `hold`, being held back is never limited: a slow sink of the
 * server's own is not the source's fault.
 * `ms` 0 or undefined: no limit, no timer. Every idle timeout of a body is
 * kept by one of these: pipeWithPace's, withIdleTimeout's, PacedReader's,
 * the RPC server's request reads' and the resumable upload client's.
 */
export class IdleWatch {
  readonly #ms: number;
  readonly #onIdle: () => void;
  readonly #heldBack: (() => boolean) | undefined;
  readonly #pace: MessagePace | undefined;
  readonly #hold: HoldLimit | undefined;
  #since = -1; // when the current wait began; -1: not waiting
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  // The pace of the message in progress: time waited and bytes received.
  #waited = 0;
  #received = 0;
  // The spell held back with nothing taken: since when (-1: none), and
  // hold.taken() then.
  #heldSince = -1;
  #takenThen = 0;

  constructor(
    ms: number | undefined,
    onIdle: () => void,
    heldBack?: () => boolean,
    pace?: MessagePace,
    hold?: HoldLimit,
  ) {
    this.#ms = ms ?? 0;
    this.#onIdle = onIdle;
    this.#heldBack = heldBack;
    this.#pace = pace !== undefined && pace.minBytesPerSecond > 0 &&
        pace.windowMs > 0
      ? pace
      : undefined;
    this.#hold = heldBack !== undefined && hold !== undefined && hold.ms > 0
      ? hold
      : undefined;
  }

  /**
   * `bytes` arrived, ending the current wait (call before `end()` or the
   * next `begin()`). With a pace, while a message is in progress the time
   * waited for it and its bytes are counted: over each window of waiting,
   * fewer than `minBytesPerSecond` stops the watch and calls `onSlow` (the
   * idle timeout restarts at every byte, so a client sending one byte a
   * minute would otherwise hold a call for ever). A cheap no-op without.
   */
  got(bytes: number): void {
    const pace = this.#pace;
    if (pace === undefined || this.#stopped) return;
    if (!pace.inMessage()) {
      this.#waited = this.#received = 0;
      return;
    }
    // Without an idle limit begin() keeps no time: the wait is unknown.
    if (this.#since < 0) return;
    this.#waited += performance.now() - this.#since;
    this.#received += bytes;
    if (this.#waited < pace.windowMs) return;
    const slow = this.#received * 1000 < pace.minBytesPerSecond * this.#waited;
    this.#waited = this.#received = 0;
    if (slow) {
      this.stop();
      pace.onSlow();
    }
  }

  /** A wait for the source begins (or goes on) now. */
  begin(): void {
    if (this.#stopped || (this.#ms === 0 && this.#pace === undefined)) return;
    this.#since = performance.now();
    if (this.#ms === 0) return;
    // An armed timer is never late for this wait: it was armed for a limit
    // no further away than this one's, and re-arms when it fires early.
    this.#timer ??= setTimeout(this.#check, this.#ms);
  }

  /** Not waiting for the source from now until the next `begin()`. */
  end(): void {
    this.#since = -1;
    // With a hold limit, a spell held back may begin here (the queue filled):
    // the timer, armed for a whole limit by begin(), looks in an eighth of it
    // instead, so that takes are seen from the start of the spell (armed for
    // the whole limit, its first look restarted the spell: fired at about
    // twice the limit). Once per spell, not per chunk: a spell lasts until a
    // look finds room.
    if (
      this.#hold !== undefined && this.#heldSince < 0 && !this.#stopped &&
      this.#ms > 0
    ) {
      this.#heldSince = performance.now();
      this.#takenThen = this.#hold.taken();
      clearTimeout(this.#timer);
      this.#timer = setTimeout(this.#check, Math.max(1, this.#ms / 8));
    }
  }

  /** No more limit: the timer goes. */
  stop(): void {
    this.#stopped = true;
    this.#since = -1;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  readonly #check = (): void => {
    this.#timer = undefined;
    if (this.#stopped) return;
    const now = performance.now();
    if (this.#heldBack?.()) {
      // Not waiting for the source: look again in an eighth of the limit.
      this.#since = -1;
      const hold = this.#hold;
      if (hold !== undefined) {
        const taken = hold.taken();
        if (this.#heldSince < 0 || taken !== this.#takenThen) {
          // Held back from now, or the consumer took something since the
          // last look: the spell counts from here.
          this.#heldSince = now;
          this.#takenThen = taken;
        } else if (now - this.#heldSince >= hold.ms) {
          this.stop();
          hold.onHeld();
          return;
        }
      }
      this.#timer = setTimeout(this.#check, Math.max(1, this.#ms / 8));
      return;
    }
    this.#heldSince = -1;
    if (this.#since < 0) {
      // Without heldBack, the next begin() re-arms; with it, room was made
      // since the last look, and the wait counts from now.
      if (this.#heldBack === undefined) return;
      this.#since = now;
    }
    const left = this.#since + this.#ms - now;
    if (left > 0) {
      this.#timer = setTimeout(this.#check, Math.max(1, left));
      return;
    }
    this.stop();
    this.#onIdle();
  };
}

/**
 * The longest an IdleWatch's consumer may hold the source back while taking
 * nothing (see `IdleWatch`): nginx's `send_timeout`, for a consumer that is
 * the client.
 */
export interface HoldLimit {
  /** The limit, in milliseconds; 0: none. */
  ms: number;
  /** A count that changes whenever the consumer takes something. */
  taken: () => number;
  onHeld: () => void;
}

/**
 * The least rate of a request message in progress (see `IdleWatch.got`).
 */
export interface MessagePace {
  minBytesPerSecond: number;
  windowMs: number;
  /** Whether the bytes that just arrived were awaited mid-message. */
  inMessage: () => boolean;
  onSlow: () => void;
}

/** The least rate of a request message, failing with what `onSlow` gives. */
export interface MessageRate {
  minBytesPerSecond: number;
  windowMs: number;
  onSlow: () => unknown;
}

/** What {@linkcode pipeWithPace} watches and adds, all in one hop. */
export interface PaceOptions {
  /**
   * The longest wait for the next chunk, in milliseconds of waiting for the
   * source; 0 or undefined: none.
   */
  idleTimeoutMs?: number;
  /** The error for an idle source. */
  onIdle?: () => unknown;
  /**
   * The longest the consumer may hold the source back (the queue full)
   * while taking nothing, in milliseconds: for a consumer that is the
   * client (the echo's response), whose not reading is its own doing, as
   * nginx's `send_timeout`. With it, a chunk larger than 256 KiB is handed
   * on in views of 256 KiB (a take is then about that much sent to the
   * client: the runtime takes its next chunk once its write of the last
   * one is done), so the consumer must take about 256 KiB per limit.
   * Counted only with an `idleTimeoutMs` (its timer looks); 0 or
   * undefined: none (a slow sink of the server's own must not time out).
   */
  maxHeldBackMs?: number;
  /** The error for a consumer past `maxHeldBackMs`. */
  onHeldBack?: () => unknown;
  /**
   * Memory, in bytes, that the chunks read ahead of the consumer may keep
   * alive (each counts its whole buffer: a high-water mark on the returned
   * stream); 0 reads at most one chunk ahead.
   */
  readAheadBytes?: number;
  /**
   * Given: a byte stream source is read through a BYOB reader (pumpBytes),
   * its reads growing up to this many bytes while they come back full; not
   * given: the source is piped.
   */
  maxReadBytes?: number;
  /**
   * When it aborts, the stream errors with `onAbort(reason)`'s error. A
   * function giving it is called only once the stream has lasted
   * `signalAfterMs` and is still going, so that a short exchange never
   * reads it (a request's: under Deno 2.9.6, reading `request.signal`
   * delays the request's `info.completed`, docs/known-runtime-issues.md
   * (ag)).
   */
  signal?: AbortSignal | (() => AbortSignal);
  /**
   * How long the stream goes before a `signal` function is called, in
   * milliseconds; an abort meanwhile is seen then. 0 or undefined: at once.
   */
  signalAfterMs?: number;
  /** The error for an aborted `signal` (default: the signal's reason). */
  onAbort?: (reason: unknown) => unknown;
  /**
   * The error for a failed read of `source` (default: its own): a request
   * body's is the client's doing (it went away, or sent a malformed body).
   */
  onSourceError?: (error: unknown) => unknown;
}

/**
 * Pipes `source` through one `TransformStream` that watches the source's
 * idle time (counting only time spent waiting for the source), reads ahead
 * and errors on an abort signal: for a request body passed on to the
 * runtime (the echo), where a pull-based stream reading `source` in JS
 * costs more per chunk. With `maxReadBytes`, a byte stream source (Deno's
 * and workerd's request bodies) is read through a BYOB reader (pumpBytes:
 * small reads copied into chunks of their own size, reads growing up to
 * `maxReadBytes` while they come back full); otherwise it is piped. Each
 * failure errors the returned stream and cancels `source` with the same
 * error.
 *
 * Waiting for the source means the queue has room. A chunk that fills the
 * queue is seen when it arrives; the consumer making room again is not (no
 * hook sees its reads), so a timer looks every eighth of the limit while
 * the queue is full: after a spell of the consumer holding the stream back,
 * the idle error may come up to that much late, never early. With
 * `maxHeldBackMs`, a consumer that holds the stream back that long while
 * taking nothing (chunks handed on 256 KiB at a time) errors it with
 * `onHeldBack()`'s error (the echo's client that reads nothing, or that
 * left without the runtime saying so). A consumer with a read loop of its
 * own uses PacedReader instead (exact, and with a minimum rate). Where a
 * handler reads the body itself and answers with a response body of its
 * own, use withIdleTimeout: under Deno 2.9.6 over HTTP/1.1, when such a
 * handler failed with a read of the request pending, its errored response
 * body closed the connection if the request body was read through a reader
 * (or an identity TransformStream), but not if it was piped through a
 * TransformStream with a transform function (the client waited forever).
 * Returns `source` itself when there is nothing to do.
 */
export function pipeWithPace(
  source: ReadableStream<Uint8Array>,
  options: PaceOptions,
): ReadableStream<Uint8Array> {
  const {
    readAheadBytes = 0,
    onAbort = (reason) => reason,
  } = options;
  const idleMs = options.idleTimeoutMs ?? 0;
  if (!idleMs && !readAheadBytes && !options.signal) return source;
  // One hop, and one IdleWatch whose timer looks at the queue while it is
  // full (no hook sees the consumer's reads). Pull-based ReadableStreams
  // reading `source` in JS measured slower than a pipe through a
  // TransformStream under Bun (1 GiB echo, curl: 0.90-0.99x a bare
  // TransformStream, with twice its RSS growth), and no faster under Deno
  // (docs/performance.md, "One TransformStream hop").
  let controller!: TransformStreamDefaultController<Uint8Array>;
  let done = false;
  // The queue has no room: the consumer holds the stream back.
  const full = () => (controller.desiredSize ?? 0) <= 0;
  // The hold limit counts only with an idle limit (its timer looks).
  const maxHeldBackMs = idleMs > 0 ? options.maxHeldBackMs ?? 0 : 0;
  // The size of the slice being enqueued (see transform), set just before
  // the queue sizes it: -1 when chunks go in whole.
  let sliceSize = -1;
  const strategy = maxHeldBackMs > 0
    ? {
      highWaterMark: Math.max(readAheadBytes, 1),
      size: (chunk: Uint8Array) => sliceSize < 0 ? heldBytes(chunk) : sliceSize,
    }
    : heldBytesStrategy(readAheadBytes);
  // What has gone into the queue, in the strategy's sizes: with the desired
  // size, a count that grows exactly when the consumer takes a chunk (what
  // came in, less what is queued, plus the high-water mark).
  let queued = 0;
  const idle = new IdleWatch(
    idleMs,
    () => fail(options.onIdle?.()),
    full,
    undefined,
    maxHeldBackMs > 0
      ? {
        ms: maxHeldBackMs,
        taken: () => queued + (controller.desiredSize ?? 0),
        onHeld: () => fail(options.onHeldBack?.()),
      }
      : undefined,
  );
  // The signal, once read (see `listen`), and the timer that reads it.
  const given = options.signal;
  let signal: AbortSignal | undefined;
  let signalTimer: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    done = true;
    idle.stop();
    clearTimeout(signalTimer);
    signal?.removeEventListener("abort", aborted);
  };
  const fail = (error: unknown) => {
    if (done) return;
    stop();
    controller.error(error);
  };
  const aborted = () => fail(onAbort(signal!.reason));
  // Reads the signal, for a stream still going: one timer per stream, not
  // per chunk, and none once the pipe has settled.
  const listen = () => {
    signalTimer = undefined;
    if (done) return;
    signal = typeof given === "function" ? given() : given!;
    if (signal.aborted) aborted();
    else signal.addEventListener("abort", aborted, { once: true });
  };
  const stream = new TransformStream<Uint8Array, Uint8Array>(
    {
      start(c) {
        controller = c;
        idle.begin();
        if (given === undefined) return;
        const after = options.signalAfterMs ?? 0;
        if (typeof given === "function" && after > 0) {
          signalTimer = setTimeout(listen, after);
        } else listen();
      },
      transform(chunk, c) {
        if (maxHeldBackMs === 0) c.enqueue(chunk);
        else if (chunk.byteLength <= HOLD_SLICE_BYTES) {
          // Sized before the queue takes it (a consumer may detach it).
          queued += heldBytes(chunk);
          c.enqueue(chunk);
        } else {
          // Handed on HOLD_SLICE_BYTES at a time, as views (no copy), so
          // that a take is about that much read by the client. The buffer
          // counts once, as a whole chunk would: each slice its bytes, the
          // last one the rest of the buffer (kept alive until it goes). A
          // consumer that transferred a slice's buffer would empty the
          // slices after it: the runtimes' response bodies do not (the
          // echo comes back byte for byte, tests/echo_client_gone.test.ts).
          const held = heldBytes(chunk);
          const length = chunk.byteLength;
          let offset = 0;
          try {
            while (length - offset > HOLD_SLICE_BYTES) {
              const end = offset + HOLD_SLICE_BYTES;
              sliceSize = HOLD_SLICE_BYTES;
              c.enqueue(chunk.subarray(offset, end));
              offset = end;
            }
            sliceSize = held - offset;
            c.enqueue(chunk.subarray(offset));
          } finally {
            sliceSize = -1;
          }
          queued += held;
        }
        // The chunk came into room: from now, waiting unless it filled the
        // queue (then the watch's timer looks until there is room again).
        if (full()) idle.end();
        else idle.begin();
      },
    },
    undefined,
    // At least one byte (as heldBytesStrategy), so that an empty queue
    // reads as waiting.
    strategy,
  );
  // The pipe settles however it ends (the source done, an error, the
  // consumer's cancel): the timer and the listener go with it. Its
  // rejection is the stream's own error, seen by the consumer.
  const onSourceError = options.onSourceError;
  const piped = options.maxReadBytes === undefined
    ? onSourceError === undefined
      ? source.pipeTo(stream.writable)
      // The source's error, told from the writable's by the pipe leaving
      // it alone, reaches the consumer as onSourceError's.
      : source.pipeTo(stream.writable, { preventAbort: true }).catch(
        (error) => {
          fail(onSourceError(error));
          throw error;
        },
      )
    : pumpBytes(source, stream.writable, {
      minReadBytes: READ_BYTES,
      maxReadBytes: options.maxReadBytes,
    }, onSourceError);
  piped.then(stop, stop);
  return stream.readable;
}

/**
 * Wraps `source` so that a read waiting more than `ms` milliseconds for the
 * next chunk errors the stream with `onIdle()`'s error and cancels the
 * source with it. Only time spent waiting for the source counts: while the
 * consumer is not reading (a slow sink, back-pressure), nothing counts
 * (an IdleWatch between pulls).
 * With `maxReadBytes`, a byte stream source is read through a
 * GrowingReader, its reads growing up to `maxReadBytes` while they come
 * back full; otherwise through a default reader. A failed read errors the
 * stream with `onReadError`'s error (default: its own). Returns `source`
 * itself when there is nothing to do.
 */
export function withIdleTimeout(
  source: ReadableStream<Uint8Array>,
  ms: number | undefined,
  onIdle: () => unknown,
  maxReadBytes?: number,
  pace?: MessageRate,
  onReadError?: (error: unknown) => unknown,
): ReadableStream<Uint8Array> {
  const paced = pace !== undefined && pace.minBytesPerSecond > 0 &&
    pace.windowMs > 0;
  if (
    !ms && maxReadBytes === undefined && !paced && onReadError === undefined
  ) return source;
  const reader = maxReadBytes === undefined
    ? source.getReader()
    : new GrowingReader(source, { minReadBytes: READ_BYTES, maxReadBytes });
  let failed = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const failWith = (error: unknown) => {
    failed = true;
    controller.error(error);
    reader.cancel(error).catch(() => {});
  };
  // The whole body is one message (a Connect unary request): in progress
  // from its first byte.
  let begun = false;
  const idle = new IdleWatch(
    ms,
    () => failWith(onIdle()),
    undefined,
    paced
      ? {
        minBytesPerSecond: pace.minBytesPerSecond,
        windowMs: pace.windowMs,
        inMessage: () => begun,
        onSlow: () => failWith(pace.onSlow()),
      }
      : undefined,
  );
  return new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    async pull() {
      idle.begin();
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
        if (!result.done) {
          idle.got(result.value.byteLength);
          begun = true;
        }
      } catch (error) {
        idle.stop();
        if (!failed) controller.error(onReadError ? onReadError(error) : error);
        return;
      } finally {
        idle.end();
      }
      if (failed) return;
      if (result.done) {
        idle.stop();
        controller.close();
        return;
      }
      controller.enqueue(result.value);
    },
    cancel(reason) {
      idle.stop();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Checks an `idleTimeoutMs` option: a non-negative finite number. */
export function checkIdleTimeout(what: string, ms: number | undefined): void {
  checkTimerMs(what, "idleTimeoutMs", ms);
}

/** What a {@linkcode PacedReader} holds its source to. */
export interface ReadPace
  extends Pick<PaceOptions, "idleTimeoutMs" | "onIdle"> {
  /**
   * The slowest accepted source, in bytes per second, measured over each
   * `minRateWindowMs` spent in reads (the first window is the grace
   * period); 0 or undefined: none.
   */
  minBytesPerSecond?: number;
  /** The window of `minBytesPerSecond`, in milliseconds spent in reads. */
  minRateWindowMs?: number;
  /** The error for a source slower than `minBytesPerSecond`. */
  onSlow?: () => unknown;
}

/**
 * A reader of `source` that holds it to a pace: a read waiting more than
 * `idleTimeoutMs` fails with `onIdle()`'s error, and fewer than
 * `minBytesPerSecond` over a window of `minRateWindowMs` spent in reads
 * (the first window is the grace period) fail with `onSlow()`'s. Only time
 * inside `read()` counts, so a consumer that stops reading (a slow sink)
 * is never held against the source, and a limit fires when it is reached,
 * not later. For a consumer with a read loop of its own (receiveBody):
 * no stream hop between the source and the loop; the idle limit is an
 * IdleWatch and the rate window one timer of its own, each re-armed only
 * when it fires early. Each failure cancels `source` with its error, and
 * the pending read and every later one reject with it.
 */
export class PacedReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #pace: ReadPace;
  #idle: IdleWatch;
  #windowMs: number;
  #needed: number;
  #readStart = -1; // when the pending read began; -1: none pending
  #waited = 0; // ms spent in reads in the current rate window
  #bytes = 0; // bytes read in the current rate window
  #timer: ReturnType<typeof setTimeout> | undefined; // the rate window's
  #failure: { error: unknown } | undefined;

  constructor(source: ReadableStream<Uint8Array>, pace: ReadPace) {
    this.#reader = source.getReader();
    this.#pace = pace;
    this.#idle = new IdleWatch(
      pace.idleTimeoutMs,
      () => this.fail(pace.onIdle?.()),
    );
    this.#windowMs = pace.minBytesPerSecond ? pace.minRateWindowMs ?? 0 : 0;
    this.#needed = (pace.minBytesPerSecond ?? 0) * this.#windowMs / 1000;
  }

  /** Reads the next chunk; rejects with the failure, if any. */
  async read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    this.#throwIfFailed();
    const rated = this.#windowMs > 0;
    this.#idle.begin();
    if (rated) {
      this.#readStart = performance.now();
      // An armed timer is never late for this read: it was armed at an
      // earlier read for a window end no further away than this one's.
      this.#timer ??= setTimeout(this.#look, this.#due(0));
    }
    let result: ReadableStreamReadResult<Uint8Array>;
    try {
      result = await this.#reader.read();
    } catch (error) {
      // The source failed (a client abort): nothing to cancel.
      this.#failure ??= { error };
      this.#stop();
      throw this.#failure.error;
    }
    this.#idle.end();
    // A failure cancelled the source: the read ended early for it.
    this.#throwIfFailed();
    if (result.done) {
      this.#stop();
      return result;
    }
    if (rated) {
      this.#waited += performance.now() - this.#readStart;
      this.#readStart = -1;
      this.#bytes += result.value.byteLength;
      this.#windowFull(0);
      this.#throwIfFailed();
    }
    return result;
  }

  /**
   * Fails the reader with `error` (the first failure wins): the source is
   * cancelled with it, and the pending read rejects with it.
   */
  fail(error: unknown): void {
    if (this.#failure) return;
    this.#failure = { error };
    this.#stop();
    this.#reader.cancel(error).catch(() => {});
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure.error;
  }

  #stop(): void {
    this.#idle.stop();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#readStart = -1;
  }

  /** Ms from now to the end of the rate window, `waiting` ms into a read. */
  #due(waiting: number): number {
    return Math.max(1, this.#windowMs - (this.#waited + waiting));
  }

  /**
   * A full rate window, `waiting` ms into a read: too few bytes fail, enough
   * start the next window (from now).
   */
  #windowFull(waiting: number): void {
    if (!this.#windowMs || this.#waited + waiting < this.#windowMs) return;
    if (this.#bytes < this.#needed) return this.fail(this.#pace.onSlow?.());
    this.#waited = -waiting;
    this.#bytes = 0;
  }

  #look = (): void => {
    this.#timer = undefined;
    // Not reading: the next read re-arms.
    if (this.#readStart < 0 || this.#failure) return;
    const waiting = performance.now() - this.#readStart;
    this.#windowFull(waiting);
    if (this.#failure) return;
    this.#timer = setTimeout(this.#look, this.#due(waiting));
  };
}
