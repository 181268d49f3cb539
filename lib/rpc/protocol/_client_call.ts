// The protocol-neutral part of every client call, all kinds and all three
// protocols: encode the requests, send them, decode the responses, and
// finish with the status from the end-of-stream frame (gRPC-Web, Connect
// streaming), the HTTP trailers (gRPC) or the whole response (Connect
// unary). A response that ends without its status is an error, never a
// success.
//
// Unary and server-streaming calls send a complete body (a Uint8Array with
// a Content-Length), so that they work through HTTP/1.1 proxies and in
// browsers, which cannot stream a request body over HTTP/1.1; client- and
// bidi-streaming calls stream it (full duplex).

import { failureOf, messageOf } from "../../_internal/message_of.ts";
import { Code } from "../code.ts";
import { type Compression, messageToFrame } from "./_compression.ts";
import { deadlineError, linkDeadline } from "./_deadline.ts";
import { markFromWire } from "./_protocol_headers.ts";
import {
  codecFor,
  type CodecName,
  decodeMessage,
  encodeMessage,
} from "./_codec.ts";
import type { CallStatus } from "./_server_call.ts";
import type { MethodDefinition } from "../define_service.ts";
import {
  discardAfterCancel,
  FrameEncoderStream,
} from "../wire/frame_encoder_stream.ts";
import { encodeFrame } from "../wire/_frame.ts";
import { MessageDecoder } from "../wire/_message_decoder.ts";
import { RpcError } from "../rpc_error.ts";
import type { CallOptions, TransportCall } from "../client/transport.ts";
import type { HttpClient, UniversalClientResponse } from "../universal.ts";
import { deferred } from "../../_internal/deferred.ts";
import { asyncIterable } from "../../_internal/async_iterable.ts";
import { ChunkReader } from "../../streams/_chunk_reader.ts";
import {
  openPushSource,
  type PushListener,
  type PushSource,
  registerBurstProducer,
} from "../../streams/_fuse.ts";

/** What a protocol's response validation returns (validate_response.ts). */
export interface ValidatedResponse {
  /** The compression of the response messages. */
  compression: Compression | null;
  /** The status, when the headers carry it (gRPC's Trailers-Only). */
  status?: CallStatus;
}

/** Connect unary: the request and the response body are one bare message. */
export interface BareMessages {
  /** The request header that names the body's compression. */
  encodingHeader: string;
  /**
   * Connect GET: the URL and headers of a GET request for the encoded
   * message (compressed or not), or undefined to send it with POST (too
   * long for a URL).
   */
  toGet?(
    data: Uint8Array,
    compressed: boolean,
  ): { url: string; headers: Headers } | undefined;
  /**
   * Reads the whole response: the (decompressed) message bytes of a
   * success, and the status.
   */
  readResponse(
    response: UniversalClientResponse,
  ): Promise<{ data?: Uint8Array; status: CallStatus }>;
}

export interface ClientCallInit<I, O> {
  httpClient: HttpClient;
  url: string;
  method: MethodDefinition<I, O>;
  codecName: CodecName;
  /** The request headers (request_header.ts). */
  headers: Headers;
  options: CallOptions;
  sendCompression: Compression | null;
  compressMinBytes: number;
  maxMessageBytes: number;
  /** Checks the response headers (validate_response.ts); throws if invalid. */
  validateResponse(response: UniversalClientResponse): ValidatedResponse;
  /** The flag of the end-of-stream frame (gRPC-Web, Connect streaming). */
  endFlag?: number;
  /** Decodes the end-of-stream frame. */
  decodeEnd?(data: Uint8Array): CallStatus;
  /** Reads the status from HTTP trailers (gRPC); null if absent. */
  readTrailers?(trailers: Headers): CallStatus | null;
  /** Names the missing end for the error message. */
  missingEnd: string;
  /** Set for Connect unary, whose bodies are bare messages. */
  bare?: BareMessages;
}

const EMPTY = new Uint8Array(0);

/** Bytes of a pushed response body decoded but not yet taken. */
const INBOX_BYTES = 65536;

/** Starts a call of any kind. */
export function startClientCall<I, O>(
  init: ClientCallInit<I, O>,
): TransportCall<I, O> {
  const { method, options } = init;
  const inCodec = codecFor(method.input, init.codecName);
  const outCodec = codecFor(method.output, init.codecName);
  const abort = new AbortController();
  // A timeout of zero or less fails the call at once, of whatever kind:
  // its reads, sends and complete() reject with this (a handler that
  // passes on what is left of its own deadline gets a call, not a throw).
  const { timeoutMs } = options;
  if (timeoutMs !== undefined && !(timeoutMs > 0)) {
    abort.abort(
      new RpcError(
        Code.DeadlineExceeded,
        `Cannot start call: timeout ${timeoutMs} ms has already passed`,
      ),
    );
  }
  // The deadline's timer and the caller's signal are let go of apart: the
  // deadline no longer applies once the call's status has been received
  // (statusReceived), while the caller may still cancel a call whose end
  // it has not read.
  const stopTimer = linkDeadline(abort, timeoutMs, undefined, "");
  const unlinkSignal = linkDeadline(
    abort,
    undefined,
    options.signal,
    "Cannot finish call: cancelled by the caller",
  );
  const unlink = () => {
    stopTimer();
    unlinkSignal();
  };
  const deadline = options.timeoutMs === undefined
    ? undefined
    : Date.now() + options.timeoutMs;
  // A request the codec cannot write is INTERNAL naming its type, as the
  // server answers for a response it cannot write (and connect-node's
  // client fails it); the call fails with it (see `refused` below).
  const typeName = method.input.typeName;
  const toFrame = messageToFrame(
    {
      ...inCodec,
      encode: (value: I) => encodeMessage(inCodec, typeName, value),
    },
    init.sendCompression,
    init.compressMinBytes,
    init.maxMessageBytes,
  );

  const sent = deferred<UniversalClientResponse>();
  sent.promise.catch(() => {}); // delivered through `responses`
  const send = (
    body: ReadableStream<Uint8Array> | Uint8Array,
    get?: { url: string; headers: Headers },
  ) => {
    // A call that failed before its request went (a timeout of zero or
    // less, a signal already aborted) sends nothing: `sent` has been
    // rejected with its reason (onAbort).
    if (abort.signal.aborted) return;
    // A client that throws instead of rejecting (a URL it cannot parse, a
    // signal already aborted) fails the call the same way.
    let response: Promise<UniversalClientResponse>;
    try {
      response = init.httpClient({
        url: get?.url ?? init.url,
        method: get === undefined ? "POST" : "GET",
        headers: get?.headers ?? init.headers,
        body,
        signal: abort.signal,
      });
    } catch (error) {
      response = Promise.reject(error);
    }
    response.then(sent.resolve, (error) => {
      sent.reject(
        abort.signal.aborted
          ? abort.signal.reason
          // A client that gives its own status (the WebSocket transport's
          // RESOURCE_EXHAUSTED for a full queue, INTERNAL for a bad head)
          // keeps it: UNAVAILABLE would invite a retry that fails again.
          : error instanceof RpcError
          ? error
          : new RpcError(
            Code.Unavailable,
            `Cannot send request to ${init.url}: ${failureOf(error)}`,
            { cause: error },
          ),
      );
    });
  };
  // Aborted when the call ends, to fail sends that come after.
  const requestEnd = new AbortController();
  // Resolved with the status's trailers; a call aborted before its status
  // has none (empty Headers, as a cancelled response stream gives).
  const trailers = deferred<Headers>();
  // A cancel, a deadline or the caller's signal fails the call and ends
  // the request body at once, read or not: an HTTP client that sends a
  // stream (Deno's fetch) may keep the exchange, and its connection, open
  // while its request body is, and a server whose handler waits would
  // never hear of the cancel. A signal already aborted (linkDeadline has
  // run) does so now: its event has passed. An aborted call (cancelled,
  // failed, past its deadline) also lets go of its deadline timer and of
  // the caller's signal, which would otherwise hold it until that signal
  // aborts, and the timer keep the process alive.
  const onAbort = () => {
    unlink();
    sent.reject(abort.signal.reason);
    requestEnd.abort(abort.signal.reason);
    trailers.resolve(new Headers());
  };
  if (abort.signal.aborted) onAbort();
  else abort.signal.addEventListener("abort", onAbort, { once: true });
  let requests: WritableStream<I>;
  let push: ((value: I) => void | Promise<void>) | undefined;
  let flush: (() => void) | undefined;
  if (method.kind === "client-streaming" || method.kind === "bidi") {
    const encoder = new FrameEncoderStream<I>({
      maxMessageBytes: init.maxMessageBytes,
      signal: requestEnd.signal,
      toFrame,
    });
    // The server may stop reading before the call ends (it answers with
    // an error at once): sends then succeed, and the call's status comes
    // with the responses, whatever the HTTP client.
    discardAfterCancel(encoder);
    requests = encoder.writable;
    // A message the encoder refuses (not encodable, over maxMessageBytes)
    // fails the call with that error: the request stream it errors made
    // the HTTP client fail (UNAVAILABLE, "fetch failed"), the sends after
    // it CANCELED.
    const refused = (error: unknown): never => {
      if (error instanceof RpcError && !abort.signal.aborted) {
        abort.abort(error);
      }
      throw error;
    };
    push = (value) => {
      let pushed: void | Promise<void>;
      try {
        pushed = encoder.push(value);
      } catch (error) {
        return refused(error);
      }
      return pushed === undefined ? undefined : pushed.catch(refused);
    };
    flush = () => encoder.flush();
    send(encoder.readable);
  } else {
    requests = singleRequest(init, toFrame, requestEnd.signal, send, (e) => {
      abort.abort(e);
    });
  }

  // Connect unary sends its trailers as trailer- headers: they are shown
  // as trailers only.
  let shown: Headers | undefined;
  const headersOf = (response: UniversalClientResponse) =>
    shown ??= init.bare ? withoutTrailers(response.headers) : response.headers;
  const headers = sent.promise.then(headersOf);
  headers.catch(() => {});

  let reader: ChunkReader | undefined;
  // The reader of a Trailers-Only response's body (checked to be empty).
  let headReader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let decoder: MessageDecoder<O> | undefined;
  let response: UniversalClientResponse | undefined;
  let endStatus: CallStatus | undefined;
  let ended = false;
  // The call's status has been received, with the whole response before
  // it: the end-of-stream frame and the end of the body (gRPC-Web, Connect
  // streaming), or the HTTP trailers (gRPC; in HTTP/2 they follow every
  // DATA frame). The server has finished in time: the deadline no longer
  // applies, and its timer stops (the messages wait, however late the
  // caller reads them; grpc-js does the same). A status not yet read from
  // the wire (the inbox full, the rest of the body unread) is still
  // subject to the deadline.
  let statusIn = false;
  const statusReceived = () => {
    if (statusIn || abort.signal.aborted) return;
    statusIn = true;
    stopTimer();
  };

  const end = (status: CallStatus) => {
    ended = true;
    unlink();
    trailers.resolve(status.trailers);
    // The server has finished: stop the request side if still open.
    requestEnd.abort(
      status.error ??
        new RpcError(Code.Canceled, "Cannot send: the call has ended"),
    );
  };

  // The status came from the server: onTrailer sees its trailers.
  const finish = (
    controller: ReadableStreamDefaultController<O>,
    status: CallStatus,
  ) => {
    end(status);
    if (options.onTrailer) {
      notify(options.onTrailer, status.trailers, "onTrailer");
    }
    if (status.error) {
      markFromWire(status.error);
      throw status.error;
    }
    controller.close();
  };

  let controller!: ReadableStreamDefaultController<O>;
  // Closed or errored (or cancelled): nothing more to produce.
  let over = false;

  // A streaming response's body is pushed (lib/streams/_fuse.ts): by the
  // runtime glue (node:http2), or else by a pump of its reads (fetch).
  // Each chunk is decoded in the node stream's own event or the read's
  // reaction into the inbox, where `produce` takes it (at once, if it is
  // there), instead of a stream read and its promises per chunk. The
  // source is paused while the inbox holds messages (or a decompression
  // will make some) and INBOX_BYTES or more have arrived since it was last
  // taken.
  let pushed: PushSource | undefined;
  let inbox: O[] = [];
  let inboxBytes = 0;
  // The decoder's decodedBytes when the inbox was last taken: the inbox's
  // decoded bytes count too (gzip messages of 1 MiB each took 16 KB on the
  // wire: 76 MiB were buffered for a reader that had stopped).
  let decodedMark = 0;
  const decodedFull = () => decoder!.decodedBytes - decodedMark >= INBOX_BYTES;
  const full = () =>
    (inboxBytes >= INBOX_BYTES || decodedFull()) &&
    (inbox.length > 0 || decompressing !== undefined);
  let pushEnded = false;
  // What ends the call at once: a message that does not decode, a cancel.
  let pushFailure: { error: unknown } | undefined;
  // The body failed: what arrived before it (chunks held back, frames the
  // decoder holds) is still decoded and delivered, then this.
  let bodyFailure: { error: unknown } | undefined;
  // A decompression under way; chunks wait in the backlog meanwhile.
  let decompressing: Promise<void> | undefined;
  const backlog: Uint8Array[] = [];
  // A producer waiting in fillTo: called back in the event that wakes it.
  let waitEmit: ((message: O) => void) | undefined;
  let waitDone: ((ok: boolean, error?: unknown) => void) | undefined;
  const wake = () => {
    const done = waitDone;
    if (done === undefined) return;
    const emit = waitEmit!;
    waitEmit = waitDone = undefined;
    let filled: boolean;
    try {
      filled = fillTo(emit, done);
    } catch (error) {
      return done(false, error);
    }
    if (filled) done(true);
  };
  const toInbox = (message: O) => void inbox.push(message);
  // Decodes chunks that waited for a decompression, until the inbox holds
  // INBOX_BYTES of decoded messages: the rest wait, compressed, until
  // those are taken (deliver, fillTo). The rest of a chunk the decoder
  // held back (its messages decompressed to more than a batch) comes first.
  const drain = () => {
    while (
      (decoder!.held || backlog.length > 0) && !decompressing &&
      !pushFailure && !(inbox.length > 0 && decodedFull())
    ) {
      decodePushed(decoder!.held ? undefined : backlog.shift()!);
    }
  };
  // A message that does not decode ends the response: the messages before
  // it are delivered, then the failure; nothing more is read (an unread
  // call read the rest of an endless stream and threw it away, 100 MB in
  // 4 s), and the outcome is settled in time (statusReceived).
  const failPushed = (error: unknown) => {
    if (pushFailure !== undefined) return;
    pushFailure = { error };
    statusReceived();
    // The exchange ends (its request, the HTTP/2 stream reset): a cancelled
    // body alone is read on and discarded by createHttp2Client. After the
    // push under way: cancelled within it, a node stream replaying what it
    // had queued closed a cancelled stream and threw, and the messages
    // before this one were lost (Deno).
    queueMicrotask(() => abort.abort(RpcError.from(error, Code.Internal)));
  };
  // The body has come whole (pushEnded): its status is received once
  // decoded (not while chunks wait behind a full inbox: Bun's fetch takes a
  // body in ahead of its reader); with every chunk decoded and none, the
  // call fails INTERNAL when read: settled too. Over gRPC the trailers
  // settle it.
  const settleEnd = () => {
    if (
      pushEnded && !init.readTrailers &&
      (endStatus !== undefined ||
        (backlog.length === 0 && !decoder!.held && !decompressing))
    ) {
      statusReceived();
    }
  };
  // A chunk, or (undefined) the frames the decoder held back.
  const decodePushed = (chunk: Uint8Array | undefined) => {
    let decoding: void | Promise<void>;
    try {
      decoding = chunk === undefined
        ? decoder!.resume(toInbox)
        : decoder!.push(chunk, toInbox);
    } catch (error) {
      failPushed(error);
      return;
    }
    if (decoding === undefined) return;
    decompressing = decoding.then(() => {
      decompressing = undefined;
      drain();
      settleEnd();
      // Paused for the decompression, and no message to take: a partial
      // one must complete. Messages it made that fill the inbox keep the
      // source paused until taken.
      if (!decompressing && inbox.length === 0) pushed?.resume();
      else if (full()) pushed?.pause();
      wake();
    }, (error) => {
      decompressing = undefined;
      failPushed(error);
      wake();
    });
  };
  const pushListener: PushListener = {
    data(chunk) {
      // Nothing after a failure: the messages before it are delivered,
      // then the failure.
      if (pushFailure !== undefined || bodyFailure !== undefined) return;
      inboxBytes += chunk.byteLength;
      // A pumped chunk may be a view of a buffer the next read reuses.
      // Behind a decompression, or chunks held back: in order, after them.
      if (decompressing || backlog.length > 0 || decoder!.held) {
        backlog.push(reader!.borrowed ? chunk.slice() : chunk);
      } else decodePushed(chunk);
      // Paused only with messages to take, or to come from a decompression:
      // a partial one must complete.
      if (full()) pushed?.pause();
      wake();
    },
    end() {
      pushEnded = true;
      settleEnd();
      wake();
    },
    error(error) {
      bodyFailure ??= { error };
      // Cut before the deadline: that is the call's outcome.
      statusReceived();
      wake();
    },
  };
  const deliver = (emit: (message: O) => void) => {
    const messages = inbox;
    inbox = [];
    inboxBytes = 0;
    decodedMark = decoder!.decodedBytes;
    drain();
    pushed!.resume();
    for (let i = 0; i < messages.length; i++) emit(messages[i]);
  };
  // A cancelled or timed-out call ends a wait for pushed chunks at once,
  // and its response body: nothing may read it again, and Deno's fetch,
  // told by the signal alone, now and then left the exchange open (the
  // connection held, the server's handler streaming on: 10-53 of 300
  // server-streaming calls aborted right after a receive()).
  // The call fails with it at the next read, also when that read is the
  // first: a body cancelled before it was read must not read as ended (a
  // gRPC call's trailers, already in, then made it an empty success).
  abort.signal.addEventListener("abort", () => {
    const reason = abort.signal.reason;
    if (pushFailure === undefined) {
      pushFailure = { error: reason };
      // Pending and later reads fail with it, not with the messages that
      // wait: a cancel is the caller's (or its deadline's) word. (A message
      // that did not decode comes after those before it: failPushed.)
      inbox = [];
      inboxBytes = 0;
      backlog.length = 0;
    }
    if (!over) {
      const cancel = (answer: UniversalClientResponse) =>
        (reader ?? headReader ?? answer.body).cancel(reason);
      if (response !== undefined) cancel(response).catch(() => {});
      else sent.promise.then(cancel, () => {}).catch(() => {});
    }
    wake();
  }, { once: true });
  const pushedDone = () =>
    pushFailure !== undefined ||
    ((pushEnded || bodyFailure !== undefined) && decompressing === undefined &&
      backlog.length === 0 && !decoder!.held);

  // Reads the response until it has messages for `emit` (all of one body
  // chunk's), or the call ends (the stream closes) or fails (it errors).
  // With a pushed body, what is in the inbox goes to `emit` at once, and
  // the wait for a push is a callback that `wake` calls in the node
  // stream's event. fillTo returns true if it emitted at once, else calls
  // `done` later (never before it returns); produce is the same with a
  // promise, for the responses stream's pull.
  const fillTo = (
    emit: (message: O) => void,
    done: (ok: boolean, error?: unknown) => void,
  ): boolean => {
    if (pushed !== undefined && reading && !over) {
      // Chunks held back while the inbox was full: decoded now.
      if (inbox.length === 0 && (backlog.length > 0 || decoder!.held)) {
        drain();
      }
      if (inbox.length > 0) {
        deliver(emit);
        return true;
      }
      if (!pushedDone()) {
        waitEmit = emit;
        waitDone = done;
        return false;
      }
    }
    produceAsync(emit).then(() => done(true), (error) => done(false, error));
    return false;
  };
  const produce = (emit: (message: O) => void): void | Promise<void> => {
    let settle: ((ok: boolean, error?: unknown) => void) | undefined;
    if (fillTo(emit, (ok, error) => settle!(ok, error))) return;
    return new Promise<void>((resolve, reject) => {
      settle = (ok, error) => ok ? resolve() : reject(error);
    });
  };
  // The response is opened as it arrives, read or not: its messages are
  // decoded into the inbox (up to INBOX_BYTES, then the source pauses) and
  // its status read, so that a call the server has finished in time is
  // past its deadline's reach (statusReceived), and its timer no longer
  // keeps the process alive, however late the caller reads. Connect
  // unary's whole response is read at the first read instead. Undefined:
  // the call failed first (its reason is the failure).
  const opening: Promise<ValidatedResponse | undefined> = sent.promise.then(
    async (answer) => {
      response = answer;
      if (init.bare || abort.signal.aborted) return undefined;
      const checked = init.validateResponse(answer);
      if (checked.status !== undefined) {
        // Trailers-Only: the status in the headers, and no body. A body
        // after such headers (a server that copied another response's
        // headers, say) is refused, as Connect-ES refuses it: read as
        // Trailers-Only, a failing call came out an empty success. (Over
        // createHttp2Client such headers are only Trailers-Only when they
        // end the stream.)
        const body = headReader = answer.body.getReader();
        const first = await body.read().catch(() => ({ done: true }));
        if (!first.done) {
          await body.cancel().catch(() => {});
          throw new RpcError(
            Code.Internal,
            "Cannot read response: a body after a Trailers-Only response's status (grpc-status in its headers)",
          );
        }
        statusReceived();
        return checked;
      }
      // A chunk may be a view of a buffer the next read reuses: the
      // decoder then keeps no view of it.
      const chunks = reader = new ChunkReader(answer.body);
      decoder = new MessageDecoder({
        codec: outCodec,
        typeName: method.output.typeName,
        maxMessageBytes: init.maxMessageBytes,
        compression: checked.compression,
        errorCode: Code.Internal,
        endFlag: init.endFlag,
        onEnd: (data) => {
          endStatus = init.decodeEnd!(data);
          if (pushEnded) statusReceived();
        },
        copyFrames: reader.borrowed,
      });
      if (init.readTrailers) {
        // A status in the trailers is read again, and a bad one fails the
        // call, when the caller reads the end.
        // With or without a status: what they hold is the outcome.
        answer.trailers.then(statusReceived, statusReceived);
      }
      pushed = openPushSource(answer.body, pushListener, () => chunks.read());
      return checked;
    },
  );
  // A response refused (an HTTP error status, another content type, a
  // body after Trailers-Only) or no response: the outcome, arrived in time
  // (it read as DEADLINE_EXCEEDED when read after the deadline, its timer
  // holding the process). Delivered through `responses`.
  opening.catch(statusReceived);
  // The caller's first read has come: onHeader has been called.
  let reading = false;
  const produceAsync = async (emit: (message: O) => void): Promise<void> => {
    try {
      if (!reading) {
        reading = true;
        const answer = await sent.promise;
        if (options.onHeader) {
          notify(options.onHeader, headersOf(answer), "onHeader");
        }
        if (init.bare) {
          const { data, status } = await init.bare.readResponse(answer);
          if (data !== undefined && !status.error) {
            emit(
              decodeMessage(
                outCodec,
                method.output.typeName,
                data,
                Code.Internal,
              ),
            );
          }
          finish(controller, status);
          over = true;
          return;
        }
        const checked = await opening;
        // Aborted before the response was opened.
        if (checked === undefined) throw abort.signal.reason;
        if (checked.status !== undefined) {
          // Cancelled since, its end unread: the cancel holds.
          if (abort.signal.aborted) throw abort.signal.reason;
          finish(controller, checked.status);
          over = true;
          return;
        }
        return await produce(emit);
      }
      // The pushed body ended or failed, its inbox empty.
      if (pushFailure !== undefined) throw pushFailure.error;
      if (bodyFailure !== undefined) throw bodyFailure.error;
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
      finish(controller, status);
      over = true;
    } catch (error) {
      over = true;
      let rpcError = abort.signal.aborted && !ended
        ? abort.signal.reason as RpcError
        : error instanceof RpcError
        ? error
        : new RpcError(
          Code.Unavailable,
          `Cannot read response: ${failureOf(error)}`,
          { cause: error },
        );
      if (
        rpcError.code === Code.Canceled && deadline !== undefined &&
        Date.now() >= deadline && !statusIn
      ) {
        // The server cancelled because the deadline passed (gRPC sends
        // RST_STREAM CANCEL): report it as the deadline.
        rpcError = deadlineError(timeoutMs!, rpcError);
      }
      if (!ended) end({ error: rpcError, trailers: rpcError.metadata });
      abort.abort(rpcError);
      reader?.cancel(rpcError).catch(() => {});
      controller.error(rpcError);
    }
  };
  let direct = false;
  let pulling: Promise<void> | undefined;
  const enqueue = (message: O) => controller.enqueue(message);
  const responses = new ReadableStream<O>({
    start(c) {
      controller = c;
    },
    pull() {
      // While a burst reader is open, it reads the response itself.
      if (direct) return;
      const producing = produce(enqueue);
      if (producing instanceof Promise) return pulling = producing;
    },
    cancel(reason) {
      over = true;
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
  // Async-iterable in WebKit too (see asyncIterable): `call.responses`.
  asyncIterable(responses);
  registerBurstProducer(responses, {
    // Queued in the stream (by a pull before the burst reader opened), or
    // the stream is closed or errored.
    queued: () => over || (controller.desiredSize ?? 0) < 0,
    takePull() {
      const pull = pulling;
      pulling = undefined;
      return pull;
    },
    fill: produce,
    fillTo,
    direct(open) {
      direct = open;
    },
  });

  return {
    requests,
    responses,
    headers,
    trailers: trailers.promise,
    push,
    flush,
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

/** The headers without Connect unary's `trailer-` ones. */
function withoutTrailers(headers: Headers): Headers {
  let found = false;
  headers.forEach((_, key) => found ||= key.startsWith("trailer-"));
  if (!found) return headers;
  const kept = new Headers();
  headers.forEach((value, key) => {
    if (!key.startsWith("trailer-")) kept.append(key, value);
  });
  return kept;
}

/** Calls `onHeader` or `onTrailer`; what it throws fails the call. */
function notify(
  callback: (headers: Headers) => void,
  headers: Headers,
  name: string,
): void {
  try {
    callback(headers);
  } catch (error) {
    throw new RpcError(
      Code.Unknown,
      `Cannot finish call: ${name} threw: ${messageOf(error)}`,
      { cause: error },
    );
  }
}

/**
 * The request side of a unary or server-streaming call: takes exactly one
 * message and, when closed, sends it as a complete body (an envelope, or the
 * bare message for Connect unary).
 */
function singleRequest<I>(
  init: ClientCallInit<I, unknown>,
  toFrame: (value: I) =>
    | { flags: number; data: Uint8Array }
    | Promise<
      { flags: number; data: Uint8Array }
    >,
  ended: AbortSignal,
  send: (body: Uint8Array, get?: { url: string; headers: Headers }) => void,
  fail: (error: RpcError) => void,
): WritableStream<I> {
  const { method } = init;
  let message: { value: I } | undefined;
  const exactlyOne = () =>
    new RpcError(
      Code.InvalidArgument,
      `Cannot send: ${method.kind} method ${method.name} takes exactly one message`,
    );
  return new WritableStream<I>({
    write(value) {
      if (ended.aborted) throw ended.reason;
      if (message !== undefined) {
        const error = exactlyOne();
        fail(error);
        throw error;
      }
      message = { value };
    },
    async close() {
      if (ended.aborted) throw ended.reason;
      if (message === undefined) {
        const error = exactlyOne();
        fail(error);
        throw error;
      }
      let frame;
      try {
        frame = await toFrame(message.value);
      } catch (error) {
        const rpcError = RpcError.from(error, Code.Internal);
        fail(rpcError);
        throw rpcError;
      }
      if (frame.data.byteLength > init.maxMessageBytes) {
        const error = new RpcError(
          Code.ResourceExhausted,
          `Cannot encode frame: length ${frame.data.byteLength} exceeds maxMessageBytes ${init.maxMessageBytes}`,
        );
        fail(error);
        throw error;
      }
      if (init.bare) {
        const compressed = (frame.flags & 1) !== 0;
        const get = init.bare.toGet?.(frame.data, compressed);
        if (get !== undefined) {
          send(EMPTY, get);
          return;
        }
        if (compressed) {
          init.headers.set(init.bare.encodingHeader, init.sendCompression!);
        }
        send(frame.data);
      } else {
        send(encodeFrame(frame));
      }
    },
    abort(reason) {
      fail(RpcError.from(reason, Code.Canceled));
    },
  });
}
