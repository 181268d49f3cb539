// The protocol-neutral part of a streaming client call: encode requests
// (coalesced) into a full-duplex HTTP request, decode the responses, and
// finish with the status from the end-of-stream frame (gRPC-Web, Connect)
// or the HTTP trailers (gRPC). A response that ends without its status is
// an error, never a success.

import { Code } from "../code.ts";
import { type Compression, messageToFrame } from "./_compression.ts";
import { setDeadlineTimer } from "./_deadline.ts";
import type { CallStatus } from "./_server_call.ts";
import type { MethodDefinition } from "../define_service.ts";
import { FrameEncoderStream } from "../wire/frame_encoder_stream.ts";
import { MessageDecoder } from "../wire/_message_decoder.ts";
import type { Codec } from "../wire/message_type.ts";
import { RpcError } from "../rpc_error.ts";
import type { CallOptions, TransportCall } from "../client/transport.ts";
import type { HttpClient, UniversalClientResponse } from "../universal.ts";
import { deferred } from "../../_internal/deferred.ts";

export interface ClientCallInit<I, O> {
  httpClient: HttpClient;
  url: string;
  method: MethodDefinition<I, O>;
  codecName: "proto" | "json";
  headers: Headers;
  options: CallOptions;
  sendCompression: Compression | null;
  compressMinBytes: number;
  maxMessageBytes: number;
  /**
   * Checks the response headers; returns the response compression and, for a
   * Trailers-Only response, the status. Throws an RpcError if invalid.
   */
  onResponse(
    response: UniversalClientResponse,
  ): { compression: Compression | null; status?: CallStatus };
  /** The flag of the end-of-stream frame (gRPC-Web, Connect). */
  endFlag?: number;
  /** Decodes the end-of-stream frame. */
  decodeEnd?(data: Uint8Array): CallStatus;
  /** Reads the status from HTTP trailers (gRPC); null if absent. */
  readTrailers?(trailers: Headers): CallStatus | null;
  /** Names the missing end for the error message. */
  missingEnd: string;
}

export function codecFor<T>(
  type: { typeName: string; proto: Codec<T>; json?: Codec<T> },
  name: "proto" | "json",
): Codec<T> {
  if (name === "proto") return type.proto;
  if (type.json) return type.json;
  throw new TypeError(
    `Cannot call with JSON: ${type.typeName} has no JSON codec`,
  );
}

/** Links the call's abort controller to the caller's signal and deadline. */
export function linkAbort(
  abort: AbortController,
  options: CallOptions,
): () => void {
  const { signal, timeoutMs } = options;
  let clearTimer = () => {};
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
  const onAbort = () => {
    const reason = signal!.reason;
    abort.abort(
      reason instanceof RpcError ? reason : new RpcError(
        Code.Canceled,
        "Cannot finish call: cancelled by the caller",
        { cause: reason },
      ),
    );
  };
  if (signal?.aborted) onAbort();
  signal?.addEventListener("abort", onAbort, { once: true });
  return () => {
    clearTimer();
    signal?.removeEventListener("abort", onAbort);
  };
}

export function startClientCall<I, O>(
  init: ClientCallInit<I, O>,
): TransportCall<I, O> {
  const { method, options } = init;
  const inCodec = codecFor(method.input, init.codecName);
  const outCodec = codecFor(method.output, init.codecName);
  const abort = new AbortController();
  const unlink = linkAbort(abort, options);
  const deadline = options.timeoutMs === undefined
    ? undefined
    : Date.now() + options.timeoutMs;
  // Aborted when the call ends, to fail sends that come after.
  const requestEnd = new AbortController();
  const encoder = new FrameEncoderStream<I>({
    maxMessageBytes: init.maxMessageBytes,
    signal: requestEnd.signal,
    toFrame: messageToFrame(
      inCodec,
      init.sendCompression,
      init.compressMinBytes,
    ),
  });
  const responsePromise = init.httpClient({
    url: init.url,
    method: "POST",
    headers: init.headers,
    body: encoder.readable,
    signal: abort.signal,
  }).catch((error) => {
    throw abort.signal.aborted ? abort.signal.reason : new RpcError(
      Code.Unavailable,
      `Cannot send request to ${init.url}: ${
        (error as Error)?.message ?? error
      }`,
      { cause: error },
    );
  });
  // Delivered through `responses`; never an unhandled rejection.
  responsePromise.catch(() => {});
  const headers = responsePromise.then((r) => r.headers);
  headers.catch(() => {});
  const trailers = deferred<Headers>();

  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let decoder: MessageDecoder<O> | undefined;
  let response: UniversalClientResponse | undefined;
  let endStatus: CallStatus | undefined;
  let ended = false;

  const end = (status: CallStatus) => {
    ended = true;
    unlink();
    trailers.resolve(status.trailers);
    // The server has finished: stop the request side if still open.
    const reason = status.error ??
      new RpcError(Code.Canceled, "Cannot send: the call has ended");
    requestEnd.abort(reason);
  };

  const responses = new ReadableStream<O>({
    async pull(controller) {
      try {
        if (reader === undefined) {
          response = await responsePromise;
          const checked = init.onResponse(response);
          if (checked.status !== undefined) {
            await response.body.cancel().catch(() => {});
            end(checked.status);
            if (checked.status.error) throw checked.status.error;
            controller.close();
            return;
          }
          decoder = new MessageDecoder({
            codec: outCodec,
            typeName: method.output.typeName,
            maxMessageBytes: init.maxMessageBytes,
            compression: checked.compression,
            errorCode: Code.Internal,
            endFlag: init.endFlag,
            onEnd: (data) => {
              endStatus = init.decodeEnd!(data);
            },
          });
          reader = response.body.getReader();
        }
        // Decode body chunks here rather than in a stream of their own: the
        // messages of one chunk are queued at once, one stream hop less per
        // message. The queue holds at most one chunk's messages.
        let queued = 0;
        const emit = (message: O) => {
          queued++;
          controller.enqueue(message);
        };
        let result = await reader.read();
        while (!result.done) {
          const decoding = decoder!.push(result.value, emit);
          if (decoding !== undefined) await decoding;
          if (queued > 0) return;
          result = await reader.read();
        }
        decoder!.finish();
        let status: CallStatus | null | undefined = endStatus;
        if (init.readTrailers) {
          status = init.readTrailers(await response!.trailers);
        }
        if (!status) {
          throw new RpcError(
            Code.Internal,
            `Cannot finish call: the response ended without ${init.missingEnd}`,
          );
        }
        end(status);
        if (status.error) throw status.error;
        controller.close();
      } catch (error) {
        let rpcError = abort.signal.aborted && !ended
          ? abort.signal.reason as RpcError
          : error instanceof RpcError
          ? error
          : new RpcError(
            Code.Unavailable,
            `Cannot read response: ${(error as Error)?.message ?? error}`,
            { cause: error },
          );
        if (
          rpcError.code === Code.Canceled && deadline !== undefined &&
          Date.now() >= deadline
        ) {
          // The server cancelled because the deadline passed (gRPC sends
          // RST_STREAM CANCEL): report it as the deadline.
          rpcError = new RpcError(
            Code.DeadlineExceeded,
            `Cannot finish call: deadline of ${options.timeoutMs} ms exceeded`,
            { cause: rpcError },
          );
        }
        if (!ended) end({ error: rpcError, trailers: rpcError.metadata });
        abort.abort(rpcError);
        reader?.cancel(rpcError).catch(() => {});
        controller.error(rpcError);
      }
    },
    cancel(reason) {
      const error = new RpcError(
        Code.Canceled,
        "Cannot finish call: responses cancelled by the caller",
        { cause: reason },
      );
      if (!ended) end({ error, trailers: new Headers() });
      abort.abort(error);
      return reader?.cancel(error).catch(() => {});
    },
  }, { highWaterMark: 0 });

  return {
    requests: encoder.writable,
    responses,
    headers,
    trailers: trailers.promise,
    cancel(reason?: unknown) {
      abort.abort(
        reason instanceof RpcError ? reason : new RpcError(
          Code.Canceled,
          "Cannot finish call: cancelled by the caller",
          { cause: reason },
        ),
      );
    },
  };
}
