// The protocol-neutral part of serving one call: decode the request stream,
// run the handler, encode the responses (coalesced), enforce the deadline
// and cancellation, and end the body with the protocol's end-of-stream
// frame (gRPC-Web, Connect) or resolve the status for HTTP trailers (gRPC).

import { Code } from "../code.ts";
import { type Compression, messageToFrame } from "./_compression.ts";
import { setDeadlineTimer } from "./_deadline.ts";
import { FrameEncoderStream } from "../wire/frame_encoder_stream.ts";
import type {
  HandlerContext,
  MessageSource,
  Protocol,
  ServiceImplementation,
} from "../server/implement_service.ts";
import { MessageDecoderStream } from "../wire/_message_decoder.ts";
import type { Codec } from "../wire/message_type.ts";
import { RpcError } from "../rpc_error.ts";
import { pipeDirect } from "../wire/_direct_write.ts";
import { withIdleTimeout } from "../../_internal/idle_timeout.ts";

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
  codecName: "proto" | "json";
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
}

export interface ServerCall {
  responseHeaders: Headers;
  body: ReadableStream<Uint8Array>;
  status: Promise<CallStatus>;
}

export function startServerCall(init: ServerCallInit): ServerCall {
  const { entry, timeoutMs } = init;
  const { method } = entry;
  const inputCodec = codecOf(method.input, init.codecName);
  const outputCodec = codecOf(method.output, init.codecName);

  // Aborted on deadline or cancellation: the handler sees it as ctx.signal.
  const abort = new AbortController();
  // Aborted when the call is over, to stop reading an unread request.
  const finished = new AbortController();
  let clearTimer = () => {};
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  if (timeoutMs !== undefined) {
    clearTimer = setDeadlineTimer(timeoutMs, () => {
      abort.abort(
        new RpcError(
          Code.DeadlineExceeded,
          `Cannot finish call: deadline of ${timeoutMs} ms exceeded`,
        ),
      );
    });
  }
  const onRequestAbort = () => {
    abort.abort(
      new RpcError(Code.Canceled, "Cannot finish call: the client cancelled"),
    );
  };
  if (init.requestSignal?.aborted) onRequestAbort();
  init.requestSignal?.addEventListener("abort", onRequestAbort, {
    once: true,
  });

  const context: HandlerContext = {
    method,
    protocol: init.protocol,
    signal: abort.signal,
    deadline,
    requestHeaders: init.requestHeaders,
    responseHeaders: new Headers(),
    responseTrailers: new Headers(),
  };

  const requestBody = withIdleTimeout(
    init.requestBody,
    init.idleTimeoutMs,
    () => {
      const error = idleError(init.idleTimeoutMs!);
      abort.abort(error);
      return error;
    },
  );
  const inputs = requestBody.pipeThrough(
    new MessageDecoderStream({
      codec: inputCodec,
      typeName: method.input.typeName,
      maxMessageBytes: init.maxMessageBytes,
      compression: init.requestCompression,
      errorCode: Code.InvalidArgument,
    }),
    { signal: AbortSignal.any([abort.signal, finished.signal]) },
  );

  const encoder = new FrameEncoderStream<unknown>({
    maxMessageBytes: init.maxMessageBytes,
    toFrame: messageToFrame(
      outputCodec,
      init.responseCompression,
      init.compressMinBytes,
    ),
  });

  let outputs: Promise<ReadableStream<unknown>>;
  try {
    outputs = invoke(entry, inputs, context);
  } catch (error) {
    outputs = Promise.reject(error);
  }

  const status = (async (): Promise<CallStatus> => {
    let error: RpcError | undefined;
    try {
      const stream = await raceAbort(outputs, abort.signal);
      await pipeDirect(stream, encoder.writable, abort.signal);
    } catch (reason) {
      error = RpcError.from(
        abort.signal.aborted ? abort.signal.reason : reason,
      );
    } finally {
      clearTimer();
      init.requestSignal?.removeEventListener("abort", onRequestAbort);
      finished.abort(
        new RpcError(Code.Canceled, "Cannot read request: the call has ended"),
      );
    }
    // Let queued messages drain, then end the encoded stream.
    await encoder.writable.close().catch(() => {});
    return { error, trailers: context.responseTrailers };
  })();

  const reader = encoder.readable.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch {
        // The encoder failed (a message could not be serialized); the
        // status carries that error and goes in the end frame.
        result = { done: true, value: undefined };
      }
      if (!result.done) {
        controller.enqueue(result.value);
        return;
      }
      const last = init.end(await status);
      if (last !== undefined) controller.enqueue(last);
      controller.close();
    },
    cancel(reason) {
      abort.abort(
        new RpcError(
          Code.Canceled,
          "Cannot finish call: the client went away",
          {
            cause: reason,
          },
        ),
      );
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });

  return { responseHeaders: context.responseHeaders, body, status };
}

/** The error of a call whose client sent nothing for `ms` milliseconds. */
export function idleError(ms: number): RpcError {
  return new RpcError(
    Code.DeadlineExceeded,
    `Cannot read request: no bytes arrived for ${ms} ms (idleTimeoutMs)`,
  );
}

function codecOf<T>(
  type: { typeName: string; proto: Codec<T>; json?: Codec<T> },
  name: "proto" | "json",
): Codec<T> {
  if (name === "proto") return type.proto;
  if (type.json) return type.json;
  throw new RpcError(
    Code.Internal,
    `Cannot serve JSON: ${type.typeName} has no JSON codec`,
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
): Promise<ReadableStream<unknown>> {
  const { method, handler } = entry;
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
