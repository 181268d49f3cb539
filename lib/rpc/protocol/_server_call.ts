// The protocol-neutral part of serving one call, every kind and all three
// protocols: decode the requests, run the handler, encode the responses
// (coalesced), enforce the deadline, the idle timeout and cancellation, and
// end with the protocol's end-of-stream frame (gRPC-Web, Connect
// streaming), the status for HTTP trailers (gRPC), or the one response
// message, returned whole (Connect unary). The response head waits until
// the first response message is ready or the call has ended, so headers the
// handler sets before either are sent, however long it waits first.

import { messageOf } from "../../_internal/message_of.ts";
import { bodyTooLargeMessage } from "../../_internal/body_too_large.ts";
import { bodyBound, bodyTooLarge } from "./_read_all.ts";
import { Code } from "../code.ts";
import {
  type Compression,
  decompressMessage,
  messageToFrame,
} from "./_compression.ts";
import { linkDeadline } from "./_deadline.ts";
import {
  codecFor,
  type CodecName,
  decodeMessage,
  encodeMessage,
} from "./_codec.ts";
import { ByteAccumulator, emptyStream } from "../../_internal/bytes.ts";
import { FrameQueue } from "../wire/frame_encoder_stream.ts";
import type { Frame } from "../wire/frame_decoder.ts";
import { writePrefix } from "../wire/_frame.ts";
import type {
  HandlerContext,
  MessageSource,
  Protocol,
  ServiceImplementation,
} from "../server/implement_service.ts";
import { MessageDecoder } from "../wire/_message_decoder.ts";
import { RpcError } from "../rpc_error.ts";
import { handlerHeaders, statusTrailers } from "./_protocol_headers.ts";
import { IdleWatch, type MessageRate } from "../../_internal/idle_timeout.ts";
import { deferred } from "../../_internal/deferred.ts";
import {
  dropSinkable,
  type FusedStep,
  openBurstReader,
  openPushSource,
  type PushSource,
  registerBurstProducer,
  registerSinkable,
  takeFusedStep,
} from "../../streams/_fuse.ts";
import { ChunkReader } from "../../streams/_chunk_reader.ts";
import { isThenable } from "../../_internal/thenable.ts";
import { releaseUnlessEnded } from "../../_internal/release.ts";
import { asyncIterable } from "../../_internal/async_iterable.ts";
import { streamFrom } from "../../_internal/stream_from.ts";

type Entry = ServiceImplementation["handlers"] extends ReadonlyMap<
  string,
  infer E
> ? E
  : never;

/** The outcome of a call: an error (or none, for OK) and the trailers. */
export interface CallStatus {
  error: RpcError | undefined;
  trailers: Headers;
}

export interface ServerCallInit {
  entry: Entry;
  protocol: Protocol;
  codecName: CodecName;
  requestMethod: string;
  requestHeaders: Headers;
  requestBody: ReadableStream<Uint8Array>;
  requestSignal: AbortSignal | undefined;
  requestCompression: Compression | null;
  responseCompression: Compression | null;
  compressMinBytes: number;
  maxMessageBytes: number;
  timeoutMs: number | undefined;
  /** Fails the call when no request bytes arrive for this long. */
  idleTimeoutMs: number | undefined;
  /**
   * Fails the call when, while a request message is incomplete, fewer
   * bytes than this arrive per second over `minRateWindowMs` of waiting.
   */
  minBytesPerSecond: number;
  minRateWindowMs: number;
  /** Returns the bytes that end the body (trailer frame), if any. */
  end: (status: CallStatus) => Uint8Array | undefined;
  /**
   * Connect unary: the request body is one bare message, and the response
   * message comes whole in `message` rather than as a body.
   */
  bare?: boolean;
  /**
   * Told once of a call that fails by the server's fault (see
   * `callError`); `UniversalHandlerOptions.onError`, guarded.
   */
  onError?: (error: unknown, context: HandlerContext) => void;
}

export interface ServerCall {
  /**
   * Resolves when the response head may go out: the first response message
   * is ready, or the call has ended. `responseHeaders` then gives what the
   * handler set (protocol headers left out: the protocol sets those).
   */
  head: Promise<void>;
  responseHeaders: Headers;
  body: ReadableStream<Uint8Array>;
  status: Promise<CallStatus>;
  /** Bare calls: the response message as a frame (flag 1 if compressed). */
  message: Promise<Frame | undefined>;
}

/**
 * The bytes that end the body (`init.end`'s): the call's status, or, if
 * it cannot be encoded (an error's details changed after it was made, say),
 * an INTERNAL status that says why, so that the body still ends.
 */
function endOfBody(
  init: ServerCallInit,
  status: CallStatus,
): Uint8Array | undefined {
  try {
    return init.end(status);
  } catch (reason) {
    return init.end({
      error: new RpcError(
        Code.Internal,
        `Cannot send status: ${messageOf(reason)}`,
      ),
      trailers: new Headers(),
    });
  }
}

/**
 * The error a call ends with when a read of its request body failed: the
 * client went away (CANCELED), or a framework's limit on the body failed it
 * (srvx's `maxRequestBodySize`, h3's `bodyLimit()`: an error with `status`
 * 413), RESOURCE_EXHAUSTED in its words, as a body over `maxMessageBytes`.
 */
function requestBodyFailed(reason: unknown): RpcError {
  const tooLarge = bodyTooLargeMessage(reason);
  return tooLarge === undefined
    ? new RpcError(
      Code.Canceled,
      "Cannot finish call: the request body failed (the client went away)",
      { cause: reason },
    )
    : new RpcError(Code.ResourceExhausted, `Cannot read request: ${tooLarge}`, {
      cause: reason,
    });
}

/**
 * Errors the server made that are its own fault, not the handler's answer:
 * a response message the codec cannot encode.
 */
const serverFaults = new WeakSet<object>();

/** Marks `error` as the server's fault (see `callError`), and returns it. */
function serverFault(error: unknown): unknown {
  if (typeof error === "object" && error !== null) serverFaults.add(error);
  return error;
}

/**
 * The error a call ends with, for what failed it: the abort's reason once
 * the call was aborted (its deadline, the client gone, an idle request),
 * else `reason`. A failure that is the server's fault is told to
 * `init.onError` first, with the call's context: the handler threw or
 * rejected with anything but an `RpcError` (a TypeError of its own, a
 * string, `undefined`), or a response message could not be encoded. A
 * thrown `RpcError` is the handler's answer, and an `RpcError` the call made
 * of the request (malformed, too large, a cardinality violation) the
 * client's fault: neither is told. Called only once a call has failed.
 */
function callError(
  init: ServerCallInit,
  context: HandlerContext,
  signal: AbortSignal,
  reason: unknown,
): RpcError {
  if (signal.aborted) return RpcError.from(signal.reason);
  if (!(reason instanceof RpcError) || serverFaults.has(reason)) {
    init.onError?.(reason, context);
  }
  return RpcError.from(reason);
}

export function startServerCall(init: ServerCallInit): ServerCall {
  const { entry, timeoutMs } = init;
  const { method } = entry;
  if (method.kind === "unary") return startUnaryCall(init);
  const inputCodec = codecFor(method.input, init.codecName);
  const outputCodec = codecFor(method.output, init.codecName);

  // Aborted on deadline or cancellation: the handler sees it as ctx.signal.
  const abort = new AbortController();
  // Set when the call is over: an unread request then stops being read
  // (endRequests fails it). No AbortController for it: one with a listener
  // costs about 0.8 KB of heap per call under Deno, all the life of an
  // idle call.
  let ended = false;
  const unlink = linkDeadline(
    abort,
    timeoutMs,
    init.requestSignal,
    "Cannot finish call: the client cancelled",
  );
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;

  const context: HandlerContext = {
    method,
    protocol: init.protocol,
    requestMethod: init.requestMethod,
    signal: abort.signal,
    deadline,
    requestHeaders: init.requestHeaders,
    responseHeaders: new Headers(),
    responseTrailers: new Headers(),
  };

  const onIdle = () => {
    const error = idleError(init.idleTimeoutMs!);
    abort.abort(error);
    return error;
  };
  const rate: MessageRate = {
    minBytesPerSecond: init.minBytesPerSecond,
    windowMs: init.minRateWindowMs,
    onSlow: () => {
      const error = slowError(init);
      abort.abort(error);
      return error;
    },
  };
  const head = deferred<void>();
  // Once the head is out, a client that leaves cancels the response body.
  let headed = false;
  // The requests, and the synchronous path of a fused call (runDirect in
  // decodeRequests).
  const [inputs, direct, endRequests] = decodeRequests(
    init.requestBody,
    (copyFrames) =>
      new MessageDecoder({
        codec: inputCodec,
        typeName: method.input.typeName,
        maxMessageBytes: init.maxMessageBytes,
        compression: init.requestCompression,
        errorCode: Code.InvalidArgument,
        copyFrames,
      }),
    init.idleTimeoutMs,
    onIdle,
    rate,
    [abort.signal],
    () => !headed,
    (reason) => abort.abort(requestBodyFailed(reason)),
  );

  const frameOf = responseFrames(init, outputCodec);
  const toFrame = (value: unknown) => {
    headed = true;
    head.resolve();
    return frameOf(value);
  };
  // A failed message (one that cannot be serialized, or too large) fails
  // the call, through pipeDirect; the messages before it still go out, then
  // the status carries the error.
  const encoder = new FrameQueue<unknown>(
    {
      maxMessageBytes: init.maxMessageBytes,
      toFrame,
    },
    () => {},
    true,
  );
  const message = deferred<Frame | undefined>();
  message.promise.catch(() => {});

  let outputs: Promise<ReadableStream<unknown> | Fused | Iterated>;
  try {
    outputs = invoke(entry, inputs, context);
  } catch (error) {
    outputs = Promise.reject(error);
  }
  // Observed here: raceAbort does not wait for it once the call aborts.
  outputs.catch(() => {});

  const status = (async (): Promise<CallStatus> => {
    let error: RpcError | undefined;
    try {
      const stream = await raceAbort(outputs, abort.signal);
      if (stream instanceof Fused) {
        await pipeDirect(inputs, encoder, abort.signal, stream.step, direct);
      } else if (stream instanceof Iterated) {
        await pipeIterable(stream.source, encoder, abort.signal);
      } else {
        await pipeDirect(stream, encoder, abort.signal);
      }
    } catch (reason) {
      error = callError(init, context, abort.signal, reason);
      message.resolve(undefined);
    } finally {
      unlink();
      ended = true;
      const over = new RpcError(
        Code.Canceled,
        "Cannot read request: the call has ended",
      );
      endRequests(over);
    }
    // The body ends once the queued messages are out.
    encoder.close();
    head.resolve();
    return {
      error,
      trailers: statusTrailers(context.responseTrailers, error),
    };
  })();

  // Read through the stream (a fetch server's response), the queue writes
  // into it as into the glue's sink: the fused call loop may then answer
  // each request in the reaction that read it (pipeDirect).
  let streaming: { pulled(): void; done: Promise<void> } | undefined;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (streaming !== undefined) return streaming.pulled();
      // No sink takes chunks beside the stream's.
      dropSinkable(body);
      streaming = encoder.streamTo(controller);
      // Closed and written, or failed (a message could not be serialized:
      // the status carries that error and goes in the end frame).
      streaming.done.then(() => status).then((ended) => {
        const last = endOfBody(init, ended);
        if (last !== undefined) controller.enqueue(last);
        controller.close();
      }).catch(() => {
        // Cancelled meanwhile: the stream takes nothing more.
      });
    },
    cancel(reason) {
      // Only while the handler runs: the gRPC handler discards the body of
      // a call that failed before its first message (a Trailers-Only
      // answer), whose handler's signal then told of a client gone.
      if (!ended) {
        abort.abort(
          new RpcError(
            Code.Canceled,
            "Cannot finish call: the client went away",
            { cause: reason },
          ),
        );
      }
      encoder.fail(reason);
    },
  }, { highWaterMark: 0 });
  // The runtime glue over node:http2 takes the chunks straight from the
  // queue (lib/streams/_fuse.ts), and the fused call loop may then write
  // them itself, in the event that brought the requests.
  registerSinkable(body, async (sink) => {
    await encoder.pipeTo(sink);
    const last = endOfBody(init, await status);
    if (last !== undefined) sink.write(last);
  });

  return {
    head: head.promise,
    get responseHeaders() {
      return handlerHeaders(context.responseHeaders);
    },
    body,
    status,
    message: message.promise,
  };
}

/**
 * The decoded requests of a streaming call: the body read by this stream's
 * own pulls (a ChunkReader) and pushed through the decoder `decoderFor`
 * makes (told whether chunks are borrowed), with the idle timeout kept here
 * (as withIdleTimeout: only while a pull waits) and an abort of any of
 * `signals` failing it with that signal's reason. What `body.pipeThrough(MessageDecoderStream)` over withIdleTimeout
 * did, in one stream instead of three (measured under Deno: 30% of the
 * server's CPU per small message).
 *
 * While the response head waits for the handler (`waitingForHead`) and the
 * queue holds a message the handler has not read, one read of the body
 * stays pending (one chunk ahead, no more): a client that goes away is then
 * still noticed, as a failed read, by a handler that waits without reading
 * — a fetch server may say so in no other way before the head is out (then
 * the response body's cancel does; reading ahead on every message cost 10-
 * 15% of a bidi stream's rate). Such a failure calls `onGone` (the call ends
 * `Canceled`); a message that does not decode reaches the handler as its
 * requests' error.
 *
 * `reduce` and the call loop read it through its burst reader
 * (lib/streams/_fuse.ts): each read decodes the next body chunk and hands
 * over all its messages at once, the stream's own pulls standing still
 * meanwhile; messages a pull queued before come first, through the stream.
 *
 * The second value runs the rest of the requests synchronously, for the
 * call loop of a fused handler (see DirectRequests); the third fails the
 * requests with the reason given (the call is over: an unread request
 * stops being read), as an abort of `signals` does.
 */
function decodeRequests<T>(
  body: ReadableStream<Uint8Array>,
  decoderFor: (copyFrames: boolean) => MessageDecoder<T>,
  idleMs: number | undefined,
  onIdle: () => unknown,
  rate: MessageRate,
  signals: AbortSignal[],
  waitingForHead: () => boolean,
  onGone: (reason: unknown) => void,
): [ReadableStream<T>, DirectRequests<T>, (reason: unknown) => void] {
  // A chunk may be a view of a buffer the next read reuses: the decoder
  // then keeps no view of it.
  const reader = new ChunkReader(body);
  const decoder = decoderFor(reader.borrowed);
  let controller!: ReadableStreamDefaultController<T>;
  // The idle clock: a wait for bytes begins at each read (and at each
  // chunk pushed to runDirect), and ends while a chunk's messages are
  // handled.
  // A message begun must go on arriving (the idle clock restarts at each
  // byte): counted while the decoder holds an incomplete one.
  const idle = new IdleWatch(idleMs, () => fail(onIdle()), undefined, {
    minBytesPerSecond: rate.minBytesPerSecond,
    windowMs: rate.windowMs,
    inMessage: () => decoder.pending,
    onSlow: () => fail(rate.onSlow()),
  });
  let over = false;
  // The read started while no pull was waiting, if any.
  let ahead: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
  // Set while runDirect runs: ends it with a failure.
  let directFail: ((reason: unknown) => void) | undefined;
  const stop = () => {
    over = true;
    idle.stop();
    for (const signal of signals) {
      signal.removeEventListener("abort", onAbort);
    }
  };
  const fail = (error: unknown) => {
    if (over) return;
    stop();
    controller.error(error);
    reader.cancel(error).catch(() => {});
    directFail?.(error);
  };
  function onAbort(this: AbortSignal) {
    fail(this.reason);
  }
  // A read of the body failed: the client went away. The call ends
  // `Canceled` (onGone aborts one of `signals`; RESOURCE_EXHAUSTED for a
  // framework's limit on the body, see requestBodyFailed), and the
  // requests fail with that error, not the runtime's ("Cannot read request
  // body as underlying resource unavailable", Deno).
  const gone = (reason: unknown) => {
    if (over) return;
    onGone(reason);
    fail(reason);
  };
  const readAhead = () => {
    const read = reader.read();
    ahead = read;
    read.catch((reason) => {
      // Only while no pull waits for it: a pull reports its own failure.
      if (ahead === read) gone(reason);
    });
  };
  // Reads body chunks until one completes a message (all of that chunk's
  // messages go to `emit`), the body ends (the stream closes) or fails
  // (the stream errors); false when nothing was emitted.
  const fill = async (emit: (message: T) => void): Promise<boolean> => {
    let emitted = false;
    const counted = (message: T) => {
      emitted = true;
      emit(message);
    };
    try {
      while (!emitted && !over) {
        if (decoder.held) {
          // The rest of a chunk whose messages decompressed to more than
          // one batch: before anything read after it.
          const resumed = decoder.resume(counted);
          if (resumed !== undefined) await resumed;
          continue;
        }
        idle.begin();
        let result: ReadableStreamReadResult<Uint8Array>;
        const read = ahead ?? reader.read();
        ahead = undefined;
        try {
          result = await read;
          if (!result.done) idle.got(result.value.byteLength);
        } catch (reason) {
          // Under a read the handler waits on, as ahead of it.
          gone(reason);
          return emitted;
        } finally {
          idle.end();
        }
        if (over) return emitted;
        if (result.done) {
          decoder.finish();
          stop();
          controller.close();
          return emitted;
        }
        const pushed = decoder.push(result.value, counted);
        if (pushed !== undefined) await pushed;
      }
    } catch (error) {
      fail(error);
    }
    return emitted;
  };
  // While a burst reader is open, the stream's own pulls do nothing: the
  // burst reader reads the body itself.
  let direct = false;
  let pulling: Promise<void> | undefined;
  const emitToStream = (message: T) => controller.enqueue(message);
  const stream = new ReadableStream<T>({
    start(c) {
      controller = c;
      for (const signal of signals) {
        if (signal.aborted) return fail(signal.reason);
        signal.addEventListener("abort", onAbort);
      }
    },
    pull(c) {
      if (direct) return;
      return pulling = (async () => {
        await fill(emitToStream);
        if (!over && (c.desiredSize ?? 0) <= 0 && waitingForHead()) {
          readAhead();
        }
      })();
    },
    cancel(reason) {
      stop();
      directFail?.(reason);
      return reader.cancel(reason);
    },
  }, { highWaterMark: 1 });
  registerBurstProducer(stream, {
    // Queued in the stream (by a pull before the burst reader opened), or
    // the stream is closed or errored.
    queued: () => over || (controller.desiredSize ?? 0) < 1,
    takePull() {
      const pull = pulling;
      pulling = undefined;
      return pull;
    },
    fill,
    direct(open) {
      direct = open;
    },
  });

  const runDirect: DirectRequests<T> = (handle) => {
    // Only between bursts, with nothing queued or read ahead: no request
    // is skipped or reordered.
    if (over || ahead !== undefined || (controller.desiredSize ?? 0) < 1) {
      return undefined;
    }
    // While busy, chunks wait in the backlog (as while opening the source).
    let busy = true;
    let ended = false;
    const backlog: Uint8Array[] = [];
    // The push source, once opened (no chunk is taken before: busy).
    const opened: { source?: PushSource } = {};
    const { promise, resolve, reject } = deferred<void>();
    const finish = () => {
      try {
        decoder.finish();
      } catch (error) {
        return fail(error);
      }
      directFail = undefined;
      opened.source?.stop();
      stop();
      controller.close();
      resolve();
    };
    // What the handler returned for a chunk's messages: the next chunk
    // waits for it (the source paused, the idle timer still).
    const wait = (pending: Promise<unknown>) => {
      busy = true;
      idle.end();
      opened.source?.pause();
      pending.then(() => {
        busy = false;
        // The rest of a chunk held back by the decoder (its messages
        // decompressed to more than one batch) comes first.
        while ((decoder.held || backlog.length > 0) && !busy && !over) {
          take(decoder.held ? undefined : backlog.shift()!);
        }
        if (busy || over) return;
        if (ended) return finish();
        idle.begin();
        opened.source?.resume();
      }, fail);
    };
    // A chunk, or (undefined) the frames the decoder held back.
    const take = (chunk: Uint8Array | undefined) => {
      const messages: T[] = [];
      let pending: void | Promise<unknown>;
      try {
        const collect = (message: T) => void messages.push(message);
        const pushed = chunk === undefined
          ? decoder.resume(collect)
          : decoder.push(chunk, collect);
        pending = pushed === undefined
          ? messages.length > 0 ? handle(messages) : undefined
          : pushed.then(() =>
            messages.length > 0 ? handle(messages) : undefined
          );
      } catch (error) {
        return fail(error);
      }
      if (pending !== undefined) wait(pending);
    };
    // The glue's push source, or else the body's reads pumped (a fetch
    // server's request): each chunk's requests are answered in the event
    // or read reaction that brought them.
    const source = openPushSource(body, {
      data(chunk) {
        if (over) return;
        if (busy) return void backlog.push(chunk);
        idle.got(chunk.byteLength);
        if (over) return;
        idle.begin();
        take(chunk);
      },
      end() {
        ended = true;
        if (!busy && !over) finish();
      },
      // Told while the handler waits too: a push source reports a failed
      // body paused or not.
      error: gone,
    }, () => reader.read());
    opened.source = source;
    directFail = (reason) => {
      directFail = undefined;
      source.stop();
      reject(reason);
    };
    wait(Promise.resolve());
    return promise;
  };
  // A client-streaming or bidi handler's requests: async-iterable in WebKit
  // too (see asyncIterable), as the handler types promise.
  asyncIterable(stream);
  return [stream, runDirect, fail];
}

/**
 * Runs the rest of a call's requests through `handle`, each body chunk's
 * messages in the event that brought them (the node stream's, or the
 * reaction to a fetch body's read: a push source, see
 * lib/streams/_fuse.ts); a promise `handle` returns holds the next chunk
 * back until it settles. Resolves at the end of the requests, rejects with
 * what failed them (or `handle`). `undefined` when it cannot start:
 * requests are queued or read ahead.
 */
type DirectRequests<T> = (
  handle: (messages: T[]) => void | Promise<unknown>,
) => Promise<void> | undefined;

/**
 * Turns response messages into frames (compressed when negotiated). What
 * fails here is the server's fault (told to `onError`): a message the codec
 * cannot write (`Internal`, naming its type), one over the server's own
 * `maxMessageBytes` (`ResourceExhausted`).
 */
function responseFrames(
  init: ServerCallInit,
  codec: ReturnType<typeof codecFor>,
): ReturnType<typeof messageToFrame> {
  const typeName = init.entry.method.output.typeName;
  const toFrame = messageToFrame(
    {
      ...codec,
      encode: (value: unknown) => encodeMessage(codec, typeName, value),
    },
    init.responseCompression,
    init.compressMinBytes,
    init.maxMessageBytes,
  );
  const max = init.maxMessageBytes;
  const checked = (frame: Frame): Frame => {
    if (frame.data.byteLength > max) throw overSize(frame, max);
    return frame;
  };
  const fault = (error: unknown): never => {
    throw serverFault(error);
  };
  return (value) => {
    let frame: Frame | Promise<Frame>;
    try {
      frame = toFrame(value);
    } catch (error) {
      throw serverFault(error);
    }
    return isThenable(frame) ? frame.then(checked, fault) : checked(frame);
  };
}

/** A response frame over `maxMessageBytes`: the server's fault. */
function overSize(frame: Frame, maxMessageBytes: number): unknown {
  return serverFault(
    new RpcError(
      Code.ResourceExhausted,
      `Cannot send response: size ${frame.data.byteLength} exceeds maxMessageBytes ${maxMessageBytes}`,
    ),
  );
}

/**
 * A unary call in one async function: read the request (a bare message,
 * Connect unary; else one frame), decode, call the handler, encode. Same
 * limits, deadline, idle timeout and cancellation as the streaming path,
 * without its streams (a request stream, a response stream, an encoder and
 * their promises per call: measured 2x the server CPU of a bare handler on
 * 256 KiB Connect echoes, and 28% more server CPU per gRPC unary call over
 * serveHttp2 under load).
 */
function startUnaryCall(init: ServerCallInit): ServerCall {
  const { entry, timeoutMs } = init;
  const { method } = entry;
  const abort = new AbortController();
  const unlink = linkDeadline(
    abort,
    timeoutMs,
    init.requestSignal,
    "Cannot finish call: the client cancelled",
  );
  const context: HandlerContext = {
    method,
    protocol: init.protocol,
    signal: abort.signal,
    deadline: timeoutMs === undefined ? undefined : Date.now() + timeoutMs,
    requestMethod: init.requestMethod,
    requestHeaders: init.requestHeaders,
    responseHeaders: new Headers(),
    responseTrailers: new Headers(),
  };
  const message = deferred<Frame | undefined>();
  message.promise.catch(() => {});
  const status = (async (): Promise<CallStatus> => {
    let error: RpcError | undefined;
    try {
      const inputCodec = codecFor(method.input, init.codecName);
      const frameOf = responseFrames(
        init,
        codecFor(method.output, init.codecName),
      );
      const input = init.bare
        ? await readBareMessage(init, abort, inputCodec)
        : await readOneFrame(init, abort, inputCodec);
      let output = entry.handler(input, context);
      if (isThenable(output)) {
        output = await raceAbort(Promise.resolve(output), abort.signal);
      }
      let frame = frameOf(output);
      if (isThenable(frame)) frame = await raceAbort(frame, abort.signal);
      if (frame.data.byteLength > init.maxMessageBytes) {
        throw overSize(frame, init.maxMessageBytes);
      }
      if (abort.signal.aborted) throw abort.signal.reason;
      message.resolve(frame);
    } catch (reason) {
      error = callError(init, context, abort.signal, reason);
      message.resolve(undefined);
    } finally {
      unlink();
    }
    return {
      error,
      trailers: statusTrailers(context.responseTrailers, error),
    };
  })();
  let body: ReadableStream<Uint8Array> | undefined;
  return {
    head: status.then(() => {}),
    get responseHeaders() {
      return handlerHeaders(context.responseHeaders);
    },
    // A bare call's response goes in `message`, its body empty.
    get body() {
      return body ??= init.bare
        ? emptyStream()
        : oneFrameBody(init, message.promise, status);
    },
    status,
    message: message.promise,
  };
}

/**
 * The request message of a bare call: the whole body, decompressed,
 * decoded.
 */
async function readBareMessage(
  init: ServerCallInit,
  abort: AbortController,
  codec: ReturnType<typeof codecFor>,
): Promise<unknown> {
  let data = await readBareBody(init, abort);
  if (init.requestCompression !== null && data.byteLength > 0) {
    try {
      data = await raceAbort(
        decompressMessage(init.requestCompression, data, init.maxMessageBytes),
        abort.signal,
      );
    } catch (error) {
      throw RpcError.from(error, Code.InvalidArgument);
    }
  }
  return decodeMessage(
    codec,
    init.entry.method.input.typeName,
    data,
    Code.InvalidArgument,
  );
}

/**
 * The one request message of a unary call in frames (gRPC, gRPC-Web,
 * Connect streaming), decoded as the streaming path decodes them, with
 * its cardinality checked as it arrives: a second message fails the call
 * at once, none by the end of the body too (Unimplemented, gRPC's
 * "cardinality violation"; the Connect conformance suite).
 */
async function readOneFrame(
  init: ServerCallInit,
  abort: AbortController,
  codec: ReturnType<typeof codecFor>,
): Promise<unknown> {
  const reader = new ChunkReader(init.requestBody);
  const messages: unknown[] = [];
  const emit = (value: unknown) => messages.push(value);
  const decoder = new MessageDecoder({
    codec,
    typeName: init.entry.method.input.typeName,
    maxMessageBytes: init.maxMessageBytes,
    compression: init.requestCompression,
    errorCode: Code.InvalidArgument,
    copyFrames: reader.borrowed,
  });
  const more = () =>
    new RpcError(
      Code.Unimplemented,
      "Cannot handle unary call: the request has more than one message",
    );
  await readRequest(init, abort, reader, () => decoder.pending, (chunk) => {
    const pushed = decoder.push(chunk, emit);
    return pushed === undefined && !decoder.held ? checkOne() : drain(pushed);
  });
  decoder.finish();
  if (messages.length === 0) {
    throw new RpcError(
      Code.Unimplemented,
      "Cannot handle unary call: the request has no message",
    );
  }
  return messages[0];

  function checkOne(): void {
    if (messages.length > 1) throw more();
  }
  async function drain(pushed: void | Promise<void>): Promise<void> {
    await pushed;
    while (decoder.held) {
      checkOne();
      await decoder.resume(emit);
    }
    checkOne();
  }
}

/**
 * The response body of a unary call in frames: its message's frame and
 * the bytes that end the body (gRPC-Web's trailer frame, Connect's
 * EndStreamResponse), in one chunk.
 */
function oneFrameBody(
  init: ServerCallInit,
  message: Promise<Frame | undefined>,
  status: Promise<CallStatus>,
): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const frame = await message;
      const last = endOfBody(init, await status);
      const size = (frame === undefined ? 0 : 5 + frame.data.byteLength) +
        (last?.byteLength ?? 0);
      if (size > 0) {
        const bytes = new Uint8Array(size);
        if (frame !== undefined) {
          writePrefix(bytes, 0, frame);
          bytes.set(frame.data, 5);
        }
        if (last !== undefined) bytes.set(last, size - last.byteLength);
        controller.enqueue(bytes);
      }
      controller.close();
    },
  }, { highWaterMark: 0 });
}

/**
 * The whole request body of a bare call, within maxMessageBytes (refused
 * at once when its Content-Length says more).
 */
async function readBareBody(
  init: ServerCallInit,
  abort: AbortController,
): Promise<Uint8Array> {
  // Compressed, the limit is the message's, checked once decompressed.
  const compressed = init.requestCompression !== null;
  const max = bodyBound(init.maxMessageBytes, compressed);
  // Into one reused buffer where the body is a byte stream (see
  // ChunkReader), each chunk copied.
  const reader = new ChunkReader(init.requestBody);
  const tooLarge = () =>
    bodyTooLarge("read request", init.maxMessageBytes, compressed);
  const declared = Number(init.requestHeaders.get("content-length"));
  if (declared > max) {
    const error = tooLarge();
    await reader.cancel(error).catch(() => {});
    throw error;
  }
  // Copied, not kept as views (see ByteAccumulator); sized from the
  // Content-Length up to 64 KiB (a request may lie about it and stall: 960
  // streams declaring 1 MiB took 801 MiB of buffers before a byte came).
  const bytes = new ByteAccumulator(
    Number.isSafeInteger(declared) && declared > 0
      ? Math.min(declared, 64 * 1024)
      : 0,
  );
  await readRequest(
    init,
    abort,
    reader,
    // The whole body is the message, begun at its first byte.
    () => bytes.byteLength > 0,
    (chunk) => {
      if (bytes.byteLength + chunk.byteLength > max) throw tooLarge();
      bytes.push(chunk);
    },
  );
  return bytes.bytes();
}

/**
 * Reads a unary call's request body to its end into `take` (a throw, or a
 * rejection, of `take` cancels the read with that error), failing the call
 * when no bytes arrive for idleTimeoutMs, or too few per second while
 * `inMessage()`; an abort of the call cancels the read.
 */
async function readRequest(
  init: ServerCallInit,
  abort: AbortController,
  reader: ChunkReader,
  inMessage: () => boolean,
  take: (chunk: Uint8Array) => void | Promise<void>,
): Promise<void> {
  const idleMs = init.idleTimeoutMs;
  const signal = abort.signal;
  const onAbort = () => reader.cancel(signal.reason).catch(() => {});
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  // The read loop always waits for bytes: a wait begins at each chunk.
  const idle = new IdleWatch(
    idleMs,
    () => abort.abort(idleError(idleMs!)),
    undefined,
    {
      minBytesPerSecond: init.minBytesPerSecond,
      windowMs: init.minRateWindowMs,
      inMessage,
      onSlow: () => abort.abort(slowError(init)),
    },
  );
  idle.begin();
  // Read to its end: the lock is kept (see releaseUnlessEnded).
  let ended = false;
  try {
    while (true) {
      let read: ReadableStreamReadResult<Uint8Array>;
      try {
        read = await reader.read();
      } catch (reason) {
        if (signal.aborted) throw signal.reason;
        // The client went away (as decodeRequests' onGone): not the
        // server's fault, nor the runtime's words for it ("Cannot read
        // request body as underlying resource unavailable", Deno).
        throw requestBodyFailed(reason);
      }
      const { done, value } = read;
      if (!done) idle.got(value.byteLength);
      if (signal.aborted) throw signal.reason;
      if (done) {
        ended = true;
        return;
      }
      idle.begin();
      try {
        const taken = take(value);
        if (taken !== undefined) await raceAbort(taken, signal);
      } catch (error) {
        await reader.cancel(error).catch(() => {});
        throw error;
      }
    }
  } finally {
    idle.stop();
    signal.removeEventListener("abort", onAbort);
    releaseUnlessEnded(reader, ended);
  }
}

// A producer that never waits (a sync pull or generator, a fetch server
// that takes every chunk at once, a compression that ends in microtasks)
// makes a response loop a chain of microtasks: with 250 Connect calls whose
// clients had stopped reading, the event loop did not turn for 5-30 s
// (timers, new connections and their heads waiting), and the runtime's
// response pump, which needs turns to see its socket full, let every call's
// handler produce its whole stream. So pipeDirect's and pipeIterable's
// loops look at the clock every TURN_CHECK messages (every message cost 11%
// of a stream of small ones under Deno), and past TURN_MS without a turn of
// the event loop wait for one, each call on a timer of its own: one promise
// shared by every call was a promise of another request under workerd, which
// never settled once that request was cancelled (every later call failed).
// A turn the loop did not ask for counts too: `lastTurn` is kept fresh by a
// timer nobody awaits (without it, a call in lockstep waited for a timer
// every 10 ms: Deno's p99 doubled).
const TURN_MS = 10;
const TURN_CHECK = 16;
let lastTurn = performance.now();
let beatAt = -Infinity;
const beat = () => {
  lastTurn = performance.now();
};

/** A wait for the event loop's next turn, or undefined if it turned lately. */
function nextTurn(): Promise<void> | undefined {
  const now = performance.now();
  if (now - beatAt >= TURN_MS) {
    // At most one beat in flight (a dropped one, in workerd, is replaced).
    beatAt = now;
    setTimeout(beat, 0);
  }
  if (now - lastTurn < TURN_MS) return undefined;
  return new Promise<void>((resolve) => setTimeout(resolve, 0)).then(beat);
}

/**
 * `source.pipeTo(encoder, { preventClose: true, preventAbort: true, signal
 * })`, each chunk through `encoder.accept`. Like `pipeTo`, it locks the
 * source while it runs, cancels it when the encoder fails or the signal
 * aborts, and rejects with that reason.
 *
 * With a fused `step` and the call's `direct` path, once the response body
 * has a sink (the runtime glue over node:http2, or the readable a fetch
 * server reads), the rest runs in the events that bring the requests (the
 * node stream's, or a fetch body read's reaction): decode, step, encode
 * and write, with no promise per message (as a bare node:http2 echo: a
 * lockstep round trip's server side costs the same as one that writes in
 * its 'data' event).
 */
async function pipeDirect<T>(
  source: ReadableStream<T>,
  encoder: FrameQueue<T>,
  signal: AbortSignal,
  step?: FusedStep,
  direct?: DirectRequests<T>,
): Promise<void> {
  const reader = source.getReader();
  const onAbort = () => reader.cancel(signal.reason).catch(() => {});
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  const waits = abortableWaits(signal);
  // The decoded requests come a burst (one body chunk's messages) at a
  // time, without a promise and a stream hop each.
  const burst = openBurstReader(source, reader);
  // Read to its end: the lock is kept (see releaseUnlessEnded).
  let ended = false;
  try {
    while (burst !== undefined) {
      if (step && direct && encoder.hasSink) {
        const running = runSynchronously(encoder, signal, step, direct, waits);
        if (running !== undefined) {
          await running;
          ended = true;
          return;
        }
      }
      let values = burst.read();
      if (isThenable(values)) values = await values;
      if (values === undefined) {
        if (signal.aborted) throw signal.reason;
        ended = true;
        return;
      }
      for (let i = 0; i < values.length; i++) {
        if (signal.aborted) throw signal.reason;
        let output = values[i] as T;
        if (step) {
          output = step(output) as T;
          if (isThenable(output)) output = await waits.wait(output) as T;
        }
        const written = encoder.accept(output);
        if (written !== undefined) await waits.wait(written);
      }
      // A burst's answers are all queued: read through the stream (a fetch
      // server's response), they go at once instead of after the queue's
      // gather of up to 16 idle turns (3,400 instructions of compiled JS
      // per round trip under Deno, callgrind). Not with the glue's sink:
      // over node:http2 writing that much sooner made Deno 2.9.6's server
      // abort (docs/known-runtime-issues.md (e)).
      if (!encoder.hasSink || encoder.intoStream) encoder.flush();
    }
    let sent = 0;
    while (true) {
      const { done, value } = await reader.read();
      if (signal.aborted) throw signal.reason;
      if (done) {
        ended = true;
        return;
      }
      let output = value;
      if (step) {
        output = step(value) as T;
        if (isThenable(output)) output = await waits.wait(output) as T;
      }
      const written = encoder.accept(output);
      if (written !== undefined) await waits.wait(written);
      if (++sent % TURN_CHECK === 0) {
        const turn = nextTurn();
        if (turn !== undefined) await waits.wait(turn);
      }
    }
  } catch (error) {
    const reason = signal.aborted ? signal.reason : error;
    await reader.cancel(reason).catch(() => {});
    throw reason;
  } finally {
    burst?.release();
    signal.removeEventListener("abort", onAbort);
    waits.dispose();
    releaseUnlessEnded(reader, ended);
  }
}

/**
 * pipeDirect's synchronous path: each body chunk's requests through `step`
 * into `encoder`, written to its sink before the event returns. An async
 * step result, a full queue or a full sink hold the next chunk back.
 * `undefined` when `direct` cannot start.
 */
function runSynchronously<T>(
  encoder: FrameQueue<T>,
  signal: AbortSignal,
  step: FusedStep,
  direct: DirectRequests<T>,
  waits: ReturnType<typeof abortableWaits>,
): Promise<void> | undefined {
  // Writes what is queued; resolves once all of it is written and the
  // sink takes more.
  const writeAll = async () => {
    while (!encoder.writeNow()) await waits.wait(encoder.whenDrained());
  };
  // The rest of a chunk's messages from values[i], whose step returned
  // `output` (a promise), or which `accepted` (the promise of a full
  // queue). The sink's own writer drains the queue meanwhile.
  const rest = async (
    values: T[],
    i: number,
    output: unknown,
    accepted: boolean,
  ) => {
    encoder.manual(false);
    for (;;) {
      if (accepted) await waits.wait(output as Promise<void>);
      else {
        if (isThenable(output)) output = await waits.wait(output);
        const written = encoder.accept(output as T);
        if (written !== undefined) await waits.wait(written);
      }
      accepted = false;
      if (++i === values.length) break;
      if (signal.aborted) throw signal.reason;
      output = step(values[i]);
    }
    encoder.manual(true);
    await writeAll();
  };
  const handle = (values: T[]): void | Promise<void> => {
    for (let i = 0; i < values.length; i++) {
      if (signal.aborted) throw signal.reason;
      const output = step(values[i]);
      if (isThenable(output)) return rest(values, i, output, false);
      const written = encoder.accept(output as T);
      if (written !== undefined) return rest(values, i, written, true);
    }
    if (!encoder.writeNow()) return writeAll();
  };
  encoder.manual(true);
  const running = direct(handle);
  if (running === undefined) {
    encoder.manual(false);
    return undefined;
  }
  return running.finally(() => encoder.manual(false));
}

/**
 * Waits that an abort of `signal` fails. Not `Promise.race` with one
 * never-settling abort promise: each race leaves a reaction on it, held
 * until the call ends (measured: 450 MiB of peak RSS over 300,000 messages
 * raced that way).
 */
function abortableWaits(signal: AbortSignal): {
  wait<V>(promise: PromiseLike<V>): Promise<V>;
  dispose(): void;
} {
  let fail: ((reason: unknown) => void) | undefined;
  const onAbort = () => fail?.(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  return {
    wait: (promise) =>
      new Promise((resolve, reject) => {
        if (signal.aborted) reject(signal.reason);
        fail = reject;
        promise.then(resolve, reject);
      }),
    dispose: () => signal.removeEventListener("abort", onAbort),
  };
}

/**
 * `pipeDirect` for a handler's iterable, read by its own iterator instead
 * of through `ReadableStream.from` (a queue entry and two promises less
 * per message), with its semantics: sync iterables' values are awaited,
 * and an abort stops the wait and returns the iterator.
 */
async function pipeIterable<T>(
  source: AsyncIterable<T> | Iterable<T>,
  encoder: FrameQueue<T>,
  signal: AbortSignal,
): Promise<void> {
  const waits = abortableWaits(signal);
  const wait = waits.wait;
  const iterator: AsyncIterator<T> | Iterator<T> =
    Symbol.asyncIterator in source
      ? source[Symbol.asyncIterator]()
      : (source as Iterable<T>)[Symbol.iterator]();
  let sent = 0;
  let done = false;
  try {
    while (true) {
      if (signal.aborted) throw signal.reason;
      let result = iterator.next();
      if (isThenable(result)) result = await wait(result);
      if (signal.aborted) throw signal.reason;
      if (result.done) {
        done = true;
        return;
      }
      let value = result.value;
      if (isThenable(value)) value = await wait(value) as T;
      const written = encoder.accept(value);
      if (written !== undefined) await wait(written);
      if (++sent % TURN_CHECK === 0) {
        const turn = nextTurn();
        if (turn !== undefined) await wait(turn);
      }
    }
  } catch (error) {
    throw signal.aborted ? signal.reason : error;
  } finally {
    waits.dispose();
    if (!done) {
      // As ReadableStream.from's cancel: let the iterator clean up.
      try {
        const returned = iterator.return?.();
        if (isThenable(returned)) returned.then(undefined, () => {});
      } catch {
        // Its own failure; the call already has its error.
      }
    }
  }
}

/** A handler's iterable (not a stream), read by `pipeIterable`. */
class Iterated {
  constructor(readonly source: AsyncIterable<unknown> | Iterable<unknown>) {}
}

/**
 * A bidi handler's own ScanStream or MapStream, run in the call's loop:
 * each decoded request goes through the stream's step straight into the
 * encoder, instead of being piped into the stream's writable and read from
 * its readable (two web-stream hops, a queue entry and a promise each).
 */
class Fused {
  constructor(readonly step: FusedStep) {}
}

/** The error of a call whose client sent nothing for `ms` milliseconds. */
/** The call's request message arrived too slowly (see IdleWatch.got). */
function slowError(init: ServerCallInit): RpcError {
  return new RpcError(
    Code.DeadlineExceeded,
    `Cannot read request: fewer than ${init.minBytesPerSecond} bytes per second arrived over ${init.minRateWindowMs} ms while a message was incomplete (minBytesPerSecond)`,
  );
}

export function idleError(ms: number): RpcError {
  return new RpcError(
    Code.DeadlineExceeded,
    `Cannot read request: no bytes arrived for ${ms} ms (idleTimeoutMs)`,
  );
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  });
}

function toStream<T>(source: MessageSource<T>): ReadableStream<T> | Iterated {
  if (source instanceof ReadableStream) return source;
  if (
    source === null || typeof source !== "object" ||
    !(Symbol.asyncIterator in source || Symbol.iterator in source)
  ) {
    throw new TypeError(
      "Cannot stream responses: the handler returned neither a stream nor an iterable",
    );
  }
  return new Iterated(source);
}

function isPair<O, I>(value: unknown): value is ReadableWritablePair<O, I> {
  return typeof value === "object" && value !== null &&
    (value as ReadableWritablePair<O, I>).readable instanceof ReadableStream &&
    (value as ReadableWritablePair<O, I>).writable instanceof WritableStream;
}

async function single<T>(inputs: ReadableStream<T>, kind: string): Promise<T> {
  const reader = inputs.getReader();
  let ended = false;
  try {
    const first = await reader.read();
    // A cardinality violation is Unimplemented (gRPC's status codes,
    // "Request cardinality violation"; the Connect conformance suite).
    if (first.done) {
      throw new RpcError(
        Code.Unimplemented,
        `Cannot handle ${kind} call: the request has no message`,
      );
    }
    const second = await reader.read();
    ended = second.done === true;
    if (!second.done) {
      throw new RpcError(
        Code.Unimplemented,
        `Cannot handle ${kind} call: the request has more than one message`,
      );
    }
    return first.value;
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    throw error;
  } finally {
    releaseUnlessEnded(reader, ended);
  }
}

async function invoke(
  entry: Entry,
  inputs: ReadableStream<unknown>,
  context: HandlerContext,
): Promise<ReadableStream<unknown> | Fused | Iterated> {
  const { method } = entry;
  switch (method.kind) {
    case "unary":
      // Served by startUnaryCall, never here.
      throw new Error("Cannot invoke unary call as a stream");
    case "client-streaming":
      return streamFrom([await entry.handler(inputs, context)]);
    case "server-streaming": {
      const input = await single(inputs, "server-streaming");
      return toStream(await entry.handler(input, context));
    }
    case "bidi": {
      const result = await entry.handler(inputs, context);
      const step = takeFusedStep(result);
      if (step) return new Fused(step);
      if (isPair(result)) {
        // Errors on either side reach the pair's readable, which the caller
        // reads; this promise only needs to be observed.
        inputs.pipeTo(result.writable).catch(() => {});
        return result.readable;
      }
      return toStream(result as MessageSource<unknown>);
    }
  }
}
