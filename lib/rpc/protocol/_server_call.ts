// The protocol-neutral part of serving one call, every kind and all three
// protocols: decode the requests, run the handler, encode the responses
// (coalesced), enforce the deadline, the idle timeout and cancellation, and
// end with the protocol's end-of-stream frame (gRPC-Web, Connect
// streaming), the status for HTTP trailers (gRPC), or the one response
// message, returned whole (Connect unary). The response head waits until
// the first response message is ready, the call has ended, or the handler
// has run up to its first wait, so headers the handler sets before any of
// these are sent.

import { Code } from "../code.ts";
import {
  type Compression,
  decompressMessage,
  messageToFrame,
} from "./_compression.ts";
import { linkDeadline } from "./_deadline.ts";
import { codecFor, type CodecName, decodeMessage } from "./_codec.ts";
import { readAll } from "./_read_all.ts";
import { FrameQueue } from "../wire/frame_encoder_stream.ts";
import type { Frame } from "../wire/frame_decoder.ts";
import type {
  HandlerContext,
  MessageSource,
  Protocol,
  ServiceImplementation,
} from "../server/implement_service.ts";
import { MessageDecoder } from "../wire/_message_decoder.ts";
import { RpcError } from "../rpc_error.ts";
import { withIdleTimeout } from "../../_internal/idle_timeout.ts";
import { deferred } from "../../_internal/deferred.ts";
import { type FusedStep, takeFusedStep } from "../../streams/_fuse.ts";

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
  /** Returns the bytes that end the body (trailer frame), if any. */
  end: (status: CallStatus) => Uint8Array | undefined;
  /**
   * Connect unary: the request body is one bare message, and the response
   * message comes whole in `message` rather than as a body.
   */
  bare?: boolean;
}

export interface ServerCall {
  /**
   * Resolves when the response head may go out: the first response message
   * is ready, or the call has ended. `responseHeaders` then holds what the
   * handler set.
   */
  head: Promise<void>;
  responseHeaders: Headers;
  body: ReadableStream<Uint8Array>;
  status: Promise<CallStatus>;
  /** Bare calls: the response message as a frame (flag 1 if compressed). */
  message: Promise<Frame | undefined>;
}

export function startServerCall(init: ServerCallInit): ServerCall {
  const { entry, timeoutMs } = init;
  const { method } = entry;
  const inputCodec = codecFor(method.input, init.codecName);
  const outputCodec = codecFor(method.output, init.codecName);

  // Aborted on deadline or cancellation: the handler sees it as ctx.signal.
  const abort = new AbortController();
  // Aborted when the call is over, to stop reading an unread request.
  const finished = new AbortController();
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
  const inputs = init.bare
    ? bareInput(
      withIdleTimeout(init.requestBody, init.idleTimeoutMs, onIdle),
      AbortSignal.any([abort.signal, finished.signal]),
      init,
      (data) =>
        decodeMessage(
          inputCodec,
          method.input.typeName,
          data,
          Code.InvalidArgument,
        ),
    )
    : requestMessages(
      init.requestBody,
      new MessageDecoder({
        codec: inputCodec,
        typeName: method.input.typeName,
        maxMessageBytes: init.maxMessageBytes,
        compression: init.requestCompression,
        errorCode: Code.InvalidArgument,
      }),
      init.idleTimeoutMs,
      onIdle,
      [abort.signal, finished.signal],
    );

  const head = deferred<void>();
  const frameOf = messageToFrame(
    outputCodec,
    init.responseCompression,
    init.compressMinBytes,
  );
  const toFrame = (value: unknown) => {
    head.resolve();
    return frameOf(value);
  };
  // A failed message (one that cannot be serialized) fails the call,
  // through pipeDirect; the status then carries the error.
  const encoder = new FrameQueue<unknown>({
    maxMessageBytes: init.maxMessageBytes,
    toFrame,
  }, () => {});
  const message = deferred<Frame | undefined>();
  message.promise.catch(() => {});

  let outputs: Promise<ReadableStream<unknown> | Fused>;
  try {
    // The head goes out with the first message, at the end, or once the
    // handler has run up to its first wait on I/O (a macrotask after it was
    // called): headers set before any of these are sent, and a client that
    // goes away while the handler waits still sees a response it can
    // cancel.
    outputs = invoke(entry, inputs, context, () => {
      setTimeout(() => head.resolve(), 0);
    });
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
        await pipeDirect(inputs, encoder, abort.signal, stream.step);
      } else if (init.bare) {
        message.resolve(
          await raceAbort(
            singleFrame(stream, toFrame, init.maxMessageBytes),
            abort.signal,
          ),
        );
      } else {
        await pipeDirect(stream, encoder, abort.signal);
      }
    } catch (reason) {
      error = RpcError.from(
        abort.signal.aborted ? abort.signal.reason : reason,
      );
      message.resolve(undefined);
    } finally {
      unlink();
      finished.abort(
        new RpcError(Code.Canceled, "Cannot read request: the call has ended"),
      );
    }
    // The body ends once the queued messages are out.
    encoder.close();
    head.resolve();
    return { error, trailers: context.responseTrailers };
  })();

  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!await encoder.pull(controller)) return;
      // Closed, or failed (a message could not be serialized: the status
      // carries that error and goes in the end frame).
      const last = init.end(await status);
      if (last !== undefined) controller.enqueue(last);
      controller.close();
    },
    cancel(reason) {
      abort.abort(
        new RpcError(
          Code.Canceled,
          "Cannot finish call: the client went away",
          { cause: reason },
        ),
      );
      encoder.fail(reason);
    },
  }, { highWaterMark: 0 });

  return {
    head: head.promise,
    responseHeaders: context.responseHeaders,
    body,
    status,
    message: message.promise,
  };
}

/**
 * The request of a bare call (Connect unary) as a one-message stream: the
 * whole body within maxMessageBytes, decompressed, decoded.
 */
function bareInput(
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
  init: ServerCallInit,
  decode: (data: Uint8Array) => unknown,
): ReadableStream<unknown> {
  return new ReadableStream({
    async pull(controller) {
      let data = await readAll(
        body.pipeThrough(new TransformStream(), { signal }),
        init.maxMessageBytes,
        "read request",
      );
      if (init.requestCompression !== null && data.byteLength > 0) {
        try {
          data = await decompressMessage(
            init.requestCompression,
            data,
            init.maxMessageBytes,
          );
        } catch (error) {
          throw RpcError.from(error, Code.InvalidArgument);
        }
      }
      controller.enqueue(decode(data));
      controller.close();
    },
  }, { highWaterMark: 0 });
}

/**
 * The request messages of a streamed call: `body` read through `decoder`,
 * in one stream (what `withIdleTimeout(body).pipeThrough(decoder stream,
 * { signal })` did with three streams, a pipe and a combined signal, each
 * held by every open call). A read that waits more than `idleMs` for bytes
 * fails with `onIdle()`'s error; an abort of any of `signals` fails it with
 * that signal's reason. Either way, and on a decoding error, `body` is
 * cancelled with the reason.
 */
function requestMessages(
  body: ReadableStream<Uint8Array>,
  decoder: MessageDecoder<unknown>,
  idleMs: number | undefined,
  onIdle: () => unknown,
  signals: AbortSignal[],
): ReadableStream<unknown> {
  const reader = body.getReader();
  let controller!: ReadableStreamDefaultController<unknown>;
  let over = false;
  // One idle timer, re-armed only when it fires early (see withIdleTimeout).
  let waitingSince = -1;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const end = () => {
    over = true;
    clearTimeout(timer);
    timer = undefined;
    for (const signal of signals) {
      signal.removeEventListener("abort", onAbort);
    }
  };
  const fail = (reason: unknown) => {
    if (over) return;
    end();
    controller.error(reason);
    reader.cancel(reason).catch(() => {});
  };
  function onAbort(this: AbortSignal) {
    fail(this.reason);
  }
  const check = () => {
    timer = undefined;
    if (waitingSince < 0 || over) return;
    const left = waitingSince + idleMs! - performance.now();
    if (left > 0) timer = setTimeout(check, left);
    else fail(onIdle());
  };
  let emitted = 0;
  const emit = (message: unknown) => {
    if (over) return;
    controller.enqueue(message);
    emitted++;
  };
  return new ReadableStream<unknown>({
    start(c) {
      controller = c;
      for (const signal of signals) {
        if (signal.aborted) return fail(signal.reason);
        signal.addEventListener("abort", onAbort);
      }
    },
    async pull() {
      // Reads until a message is out (a chunk may end no frame) or the end.
      while (!over) {
        const before = emitted;
        let result: ReadableStreamReadResult<Uint8Array>;
        if (idleMs) {
          waitingSince = performance.now();
          timer ??= setTimeout(check, idleMs);
        }
        try {
          result = await reader.read();
        } catch (error) {
          return fail(error);
        } finally {
          waitingSince = -1;
        }
        if (over) return;
        try {
          if (result.done) {
            decoder.finish();
            end();
            controller.close();
            return;
          }
          const pending = decoder.push(result.value, emit);
          if (pending !== undefined) await pending;
        } catch (error) {
          return fail(error);
        }
        if (emitted !== before) return;
      }
    },
    cancel(reason) {
      end();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** The one response message of a bare call, as a frame. */
async function singleFrame(
  stream: ReadableStream<unknown>,
  toFrame: (value: unknown) => Frame | Promise<Frame>,
  maxMessageBytes: number,
): Promise<Frame> {
  const reader = stream.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  const frame = await toFrame(value);
  if (frame.data.byteLength > maxMessageBytes) {
    throw new RpcError(
      Code.ResourceExhausted,
      `Cannot send response: size ${frame.data.byteLength} exceeds maxMessageBytes ${maxMessageBytes}`,
    );
  }
  return frame;
}

/**
 * `source.pipeTo(encoder, { preventClose: true, preventAbort: true, signal
 * })`, each chunk through `encoder.accept`. Like `pipeTo`, it locks the
 * source while it runs, cancels it when the encoder fails or the signal
 * aborts, and rejects with that reason.
 */
async function pipeDirect<T>(
  source: ReadableStream<T>,
  encoder: FrameQueue<T>,
  signal: AbortSignal,
  step?: FusedStep,
): Promise<void> {
  const reader = source.getReader();
  const aborted = deferred<never>();
  aborted.promise.catch(() => {});
  const onAbort = () => {
    aborted.reject(signal.reason);
    reader.cancel(signal.reason).catch(() => {});
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (signal.aborted) throw signal.reason;
      if (done) return;
      let output = value;
      if (step) {
        output = step(value) as T;
        if (isThenable(output)) {
          output = await Promise.race([output, aborted.promise]) as T;
        }
      }
      const written = encoder.accept(output);
      if (written !== undefined) await Promise.race([written, aborted.promise]);
    }
  } catch (error) {
    const reason = signal.aborted ? signal.reason : error;
    await reader.cancel(reason).catch(() => {});
    throw reason;
  } finally {
    signal.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === "object" && value !== null &&
    typeof (value as { then?: unknown }).then === "function";
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

function toStream<T>(source: MessageSource<T>): ReadableStream<T> {
  if (source instanceof ReadableStream) return source;
  if (
    source === null || typeof source !== "object" ||
    !(Symbol.asyncIterator in source || Symbol.iterator in source)
  ) {
    throw new TypeError(
      "Cannot stream responses: the handler returned neither a stream nor an iterable",
    );
  }
  return ReadableStream.from(source);
}

function isPair<O, I>(value: unknown): value is ReadableWritablePair<O, I> {
  return typeof value === "object" && value !== null &&
    (value as ReadableWritablePair<O, I>).readable instanceof ReadableStream &&
    (value as ReadableWritablePair<O, I>).writable instanceof WritableStream;
}

async function single<T>(inputs: ReadableStream<T>, kind: string): Promise<T> {
  const reader = inputs.getReader();
  try {
    const first = await reader.read();
    if (first.done) {
      throw new RpcError(
        Code.InvalidArgument,
        `Cannot handle ${kind} call: the request has no message`,
      );
    }
    const second = await reader.read();
    if (!second.done) {
      throw new RpcError(
        Code.InvalidArgument,
        `Cannot handle ${kind} call: the request has more than one message`,
      );
    }
    return first.value;
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    throw error;
  } finally {
    reader.releaseLock();
  }
}

async function invoke(
  entry: Entry,
  inputs: ReadableStream<unknown>,
  context: HandlerContext,
  called: () => void,
): Promise<ReadableStream<unknown> | Fused> {
  const { method } = entry;
  // Calls the handler and tells `called` that its synchronous part ran.
  const handler = (input: unknown, context: HandlerContext) => {
    try {
      return entry.handler(input, context);
    } finally {
      called();
    }
  };
  switch (method.kind) {
    case "unary": {
      const input = await single(inputs, "unary");
      return ReadableStream.from([await handler(input, context)]);
    }
    case "client-streaming":
      return ReadableStream.from([await handler(inputs, context)]);
    case "server-streaming": {
      const input = await single(inputs, "server-streaming");
      return toStream(await handler(input, context));
    }
    case "bidi": {
      const result = await handler(inputs, context);
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
