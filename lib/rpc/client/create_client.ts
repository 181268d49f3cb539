import { checkArgument, checkSignal } from "../../_internal/arguments.ts";
import { asyncIterable } from "../../_internal/async_iterable.ts";
import { Code } from "../code.ts";
import {
  checkServiceDefinition,
  type MethodDefinition,
  type ServiceDefinition,
} from "../define_service.ts";
import { RpcError } from "../rpc_error.ts";
import { type BurstReader, openBurstReader } from "../../streams/_fuse.ts";
import type { CallOptions, Transport, TransportCall } from "./transport.ts";

/**
 * What `receive()` gives on a stream of responses: the next value, or
 * `done: true` once the call has completed successfully. A failed call
 * throws its `RpcError` instead.
 */
export type ReceiveResult<O> =
  | { done: false; value: O }
  | { done: true; value: undefined };

/** Parts shared by every streaming call. */
export interface CallBase {
  /** The response headers (rejects if the call fails before them). */
  readonly headers: Promise<Headers>;
  /** The trailers, once the call has completed. */
  readonly trailers: Promise<Headers>;
  /** Cancels the call; pending and later operations fail with `Canceled`. */
  cancel(reason?: unknown): void;
}

/** The sending half of a client-streaming or bidi call. */
export interface Sender<I> {
  /**
   * Sends one message. Resolves once it is queued (waits while the queue is
   * full: back-pressure); rejects with the call's `RpcError` if it failed.
   * A server may end the call before reading every request (failing it at
   * once, say): until its answer has been received, sends still resolve
   * (their messages are dropped), and `receive` gives the call's status.
   * After `complete()` it rejects with `FAILED_PRECONDITION`.
   */
  send(value: I): Promise<void>;
  /** Ends the request stream; called again, gives the first call's outcome. */
  complete(): Promise<void>;
  /**
   * The request messages as a writable (an alternative to `send` and
   * `complete`; using one locks out the other).
   */
  readonly requests: WritableStream<I>;
}

/** The receiving half of a server-streaming or bidi call. */
export interface Receiver<O> {
  /**
   * The next response: `{ done: false, value }`, then `{ done: true }` when
   * the call completes; throws the call's `RpcError` if it fails.
   */
  receive(): Promise<ReceiveResult<O>>;
  /**
   * The responses as a stream (also an async iterable); it errors with the
   * call's `RpcError` if the call fails. Using it locks out `receive`.
   */
  readonly responses: ReadableStream<O>;
  /**
   * The responses, read with `receive`: `for await (const value of call)`
   * ends when the call completes and throws the call's `RpcError` if it
   * fails; leaving the loop early cancels the call.
   */
  [Symbol.asyncIterator](): AsyncIterator<O>;
}

/**
 * A client-streaming call: `send` values, `complete`, then `receive` the
 * single response.
 */
export interface ClientStreamingCall<I, O> extends CallBase, Sender<I> {
  /** Waits for the single response; throws the call's `RpcError`. */
  receive(): Promise<O>;
}

/** A bidi call: send and receive independently (full duplex). */
export interface BidiStreamingCall<I, O>
  extends CallBase, Sender<I>, Receiver<O> {}

/** A server-streaming call: the request was sent; receive the responses. */
export interface ServerStreamingCall<O> extends CallBase, Receiver<O> {}

/** The client function for a method of a given kind. */
export type ClientMethod<M> = M extends
  MethodDefinition<unknown, infer O, infer K, infer IW, unknown>
  ? K extends "unary" ? (input: IW, options?: CallOptions) => Promise<O>
  : K extends "client-streaming"
    ? (options?: CallOptions) => ClientStreamingCall<IW, O>
  : K extends "server-streaming"
    ? (input: IW, options?: CallOptions) => ServerStreamingCall<O>
  : K extends "bidi" ? (options?: CallOptions) => BidiStreamingCall<IW, O>
  : never
  : never;

/** A typed client: one function per method of the service. */
export type Client<S extends ServiceDefinition> = {
  [K in keyof S["methods"]]: ClientMethod<S["methods"][K]>;
};

const SENT: Promise<void> = Promise.resolve();

class Call<I, O> {
  readonly #call: TransportCall<I, O>;
  #writer: WritableStreamDefaultWriter<I> | undefined;
  #reader: ReadableStreamDefaultReader<O> | undefined;
  #failure: RpcError | undefined;
  /** The fast path into `requests` (TransportCall.push), or null. */
  #direct: ((value: I) => void | Promise<void>) | null | undefined;
  /** The last direct send still waiting (back-pressure or compression). */
  #pending: Promise<void> | undefined;
  #completing = false;
  /** The responses' burst reader (the library's own), or null. */
  #burst: BurstReader | null | undefined;
  /** The last burst of responses, delivered from `#next` on. */
  #buffered: unknown[] | undefined;
  #next = 0;
  /** The burst read under way, if any. */
  #reading: Promise<unknown> | undefined;
  /** The caller's signal, if any. */
  readonly #signal: AbortSignal | undefined;
  /** cancel() was called. */
  #cancelled = false;

  constructor(call: TransportCall<I, O>, signal?: AbortSignal) {
    this.#call = call;
    this.#signal = signal;
  }

  get headers(): Promise<Headers> {
    return this.#call.headers;
  }

  get trailers(): Promise<Headers> {
    return this.#call.trailers;
  }

  get requests(): WritableStream<I> {
    return this.#call.requests;
  }

  get responses(): ReadableStream<O> {
    // Async-iterable in WebKit too, whatever the transport made it.
    return asyncIterable(this.#call.responses);
  }

  cancel(reason?: unknown): void {
    this.#cancelled = true;
    this.#call.cancel(reason);
  }

  #sendError(error: unknown): RpcError {
    // An RpcError from a send (a request that could not be encoded) is the
    // call's failure: complete() and later sends say it too, not CANCELED.
    if (this.#failure === undefined && error instanceof RpcError) {
      this.#failure = error;
    }
    return this.#failure ?? RpcError.from(error, Code.Canceled);
  }

  send(value: I): Promise<void> {
    if (this.#completion !== undefined) {
      // A caller's mistake on a call that may be fine: said so, not as the
      // stream's "closed" error taken for a cancellation.
      return Promise.reject(
        this.#failure ?? new RpcError(
          Code.FailedPrecondition,
          "Cannot send: complete() was called (no request may follow it)",
        ),
      );
    }
    this.#writer ??= this.#call.requests.getWriter();
    this.#direct ??= this.#call.push ?? null;
    if (this.#direct === null || this.#completing) {
      return this.#writer.write(value).catch((error) => {
        throw this.#sendError(error);
      });
    }
    // Messages go straight into the request encoder, one at a time and in
    // order; the writer stays locked so nothing else writes through it.
    const direct = this.#direct;
    if (this.#pending !== undefined) {
      return this.#track(this.#pending.then(() => direct(value)));
    }
    let sent: void | Promise<void>;
    try {
      sent = direct(value);
    } catch (error) {
      return Promise.reject(this.#sendError(error));
    }
    return sent === undefined ? SENT : this.#track(sent);
  }

  #track(sending: Promise<void>): Promise<void> {
    const pending: Promise<void> = sending.then(
      () => {
        if (this.#pending === pending) this.#pending = undefined;
      },
      (error) => {
        if (this.#pending === pending) this.#pending = undefined;
        throw this.#sendError(error);
      },
    );
    this.#pending = pending;
    return pending;
  }

  /** The first complete()'s outcome: a second call shares it. */
  #completion: Promise<void> | undefined;

  complete(): Promise<void> {
    return this.#completion ??= this.#complete();
  }

  async #complete(): Promise<void> {
    this.#writer ??= this.#call.requests.getWriter();
    this.#completing = true;
    try {
      // Direct sends still waiting go out before the end of the stream.
      if (this.#pending !== undefined) await this.#pending;
      await this.#writer.close();
    } catch (error) {
      throw this.#sendError(await this.#closeError(error));
    }
  }

  /**
   * The error to give for a failed close: closing a request stream the
   * call's end has errored rejects with the runtime's own TypeError
   * ("Writable stream is closed or errored."); the call's error (the
   * deadline's, a cancel's) is the stream's, which `closed` gives.
   */
  async #closeError(error: unknown): Promise<unknown> {
    if (error instanceof RpcError) return error;
    return await this.#writer!.closed.then(
      () => error,
      (stored) => stored instanceof RpcError ? stored : error,
    );
  }

  next(): Promise<ReceiveResult<O>> {
    if (this.#reader === undefined) {
      this.#reader = this.#call.responses.getReader();
      this.#burst = openBurstReader(this.#call.responses, this.#reader) ??
        null;
    }
    // Messages the burst reader handed over, delivered without a stream
    // read each.
    let buffered = this.#buffered;
    if (
      buffered !== undefined && (this.#cancelled || this.#signal?.aborted)
    ) {
      // Cancelled by the caller: the rest of the burst goes, and the next
      // read says CANCELED (it went on delivering up to a burst, hundreds
      // of messages, first).
      buffered = this.#buffered = undefined;
    }
    if (buffered !== undefined && this.#next < buffered.length) {
      const value = buffered[this.#next] as O;
      buffered[this.#next++] = undefined;
      return Promise.resolve({ done: false, value });
    }
    // The caller will wait for a response: what it sent goes out now,
    // without the request stream's few turns of waiting for more.
    if (this.#direct) this.#call.flush?.();
    if (this.#burst) {
      // One burst read at a time; a receive() made meanwhile waits for it.
      const reading = this.#reading;
      if (reading !== undefined) {
        const again = () => this.next();
        return reading.then(again, again);
      }
      this.#buffered = undefined;
      this.#burst.readTo(this.#onBurst, this.#onFailure);
      // A burst already there (or a failure) is delivered at once.
      const now = this.#now;
      if (now !== undefined) {
        this.#now = undefined;
        return now;
      }
      // Else the producer calls back in the event that brings it (over
      // node:http2, the node stream's): the promise the caller awaits is
      // the only one between.
      return this.#reading = new Promise(this.#wait);
    }
    return this.#read();
  }

  // A burst read's callbacks, made once per call (see next()).
  #now: Promise<ReceiveResult<O>> | undefined;
  #resolve: ((result: ReceiveResult<O>) => void) | undefined;
  #reject: ((error: RpcError) => void) | undefined;
  readonly #wait = (
    resolve: (result: ReceiveResult<O>) => void,
    reject: (error: RpcError) => void,
  ) => {
    this.#resolve = resolve;
    this.#reject = reject;
  };
  readonly #onBurst = (burst: unknown[] | undefined) =>
    this.#settle(true, this.#took(burst));
  readonly #onFailure = (error: unknown) =>
    this.#settle(false, this.#failed(error));

  /** Settles the read that waits, or keeps the outcome for next() to return. */
  #settle(ok: boolean, outcome: ReceiveResult<O> | RpcError): void {
    const resolve = this.#resolve;
    const reject = this.#reject;
    if (resolve === undefined || reject === undefined) {
      this.#now = ok
        ? Promise.resolve(outcome as ReceiveResult<O>)
        : Promise.reject(outcome);
      return;
    }
    this.#resolve = this.#reject = this.#reading = undefined;
    if (ok) resolve(outcome as ReceiveResult<O>);
    else reject(outcome as RpcError);
  }

  /** Delivers the first message of a burst and keeps the rest. */
  #took(burst: unknown[] | undefined): ReceiveResult<O> {
    if (burst === undefined) return { done: true, value: undefined };
    this.#buffered = burst;
    this.#next = 1;
    return { done: false, value: burst[0] as O };
  }

  #failed(error: unknown): RpcError {
    return this.#failure = RpcError.from(error);
  }

  async #read(): Promise<ReceiveResult<O>> {
    try {
      const result = await this.#reader!.read();
      return result.done
        ? { done: true, value: undefined }
        : { done: false, value: result.value };
    } catch (error) {
      throw this.#failed(error);
    }
  }
}

class StreamingCall<I, O> extends Call<I, O> {
  receive(): Promise<ReceiveResult<O>> {
    return this.next();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<O, void, undefined> {
    let done = false;
    try {
      for (let r = await this.next(); !r.done; r = await this.next()) {
        yield r.value;
      }
      done = true;
    } finally {
      // A loop left early (break, return, a throw in its body) ends the
      // call, as leaving a stream's loop cancels the stream.
      if (!done) this.cancel();
    }
  }
}

class SingleResponseCall<I, O> extends Call<I, O> {
  /** The response: every receive() gets the same one. */
  #response: Promise<O> | undefined;

  receive(): Promise<O> {
    return this.#response ??= this.#receive();
  }

  async #receive(): Promise<O> {
    const first = await this.next();
    // A cardinality violation is Unimplemented (gRPC's status codes,
    // "Response cardinality violation"; the Connect conformance suite).
    if (first.done) {
      throw new RpcError(
        Code.Unimplemented,
        "Cannot receive response: the call completed without a message",
      );
    }
    const second = await this.next();
    if (!second.done) {
      this.cancel();
      throw new RpcError(
        Code.Unimplemented,
        "Cannot receive response: the server sent more than one message",
      );
    }
    return first.value;
  }
}

/**
 * Creates a typed client for a service over a transport (Connect, gRPC-Web
 * or gRPC). Each method becomes a function of one of four shapes:
 *
 * - unary: `await client.m(input)`;
 * - client-streaming: `const call = client.m()`, then `call.send(v)` ...,
 *   `call.complete()`, and `await call.receive()` for the single result;
 * - server-streaming: `for await (const v of client.m(input))`, or
 *   `receive()` until `done`;
 * - bidi: `send`/`complete` plus `receive()` (or `for await` over the call,
 *   or the `responses` stream), independently, in full duplex.
 *
 * A failed call rejects with an `RpcError` carrying the status code; a
 * response that ends without the protocol's end-of-stream message or
 * trailers is an error, never a success.
 *
 * @param service The service definition.
 * @param transport The transport to call it over.
 * @returns The client.
 *
 * @example The StreamingCalcService clients, over Connect
 * ```ts ignore
 * import { createClient, createConnectTransport } from "@sluice/streams/rpc";
 *
 * const client = createClient(StreamingCalcService, createConnectTransport({
 *   baseUrl: "http://127.0.0.1:9090",
 * }));
 * const sum = client.sum();
 * for (let i = 1n; i <= 10n; i++) await sum.send(i);
 * await sum.complete();
 * console.log(`Value: ${await sum.receive()}`); // Value: 55
 *
 * const incremental = client.incrementalSum();
 * for (let i = 1n; i <= 10n; i++) await incremental.send(i);
 * await incremental.complete();
 * for (let r = await incremental.receive(); !r.done; r = await incremental.receive()) {
 *   console.log(`Value: ${r.value}`);
 * }
 * console.log("Complete.");
 * ```
 */
export function createClient<S extends ServiceDefinition>(
  service: S,
  transport: Transport,
): Client<S> {
  checkServiceDefinition(service, "create client", "createClient");
  if (typeof transport?.call !== "function") {
    throw new TypeError(
      "Cannot create client: expected a transport, such as createConnectTransport(...)",
    );
  }
  const client: Record<string, unknown> = {};
  for (const [key, method] of Object.entries(service.methods)) {
    const m = method as MethodDefinition<unknown, unknown>;
    switch (m.kind) {
      case "unary":
        client[key] = async (input: unknown, options?: CallOptions) => {
          checkCallOptions(m, options);
          const call = new SingleResponseCall(
            transport.call(m, options),
            options?.signal,
          );
          await call.send(input);
          await call.complete();
          return await call.receive();
        };
        break;
      case "client-streaming":
        client[key] = (options?: CallOptions) => {
          checkCallOptions(m, options);
          return new SingleResponseCall(
            transport.call(m, options),
            options?.signal,
          );
        };
        break;
      case "server-streaming":
        client[key] = (input: unknown, options?: CallOptions) => {
          checkCallOptions(m, options);
          const call = new StreamingCall(
            transport.call(m, options),
            options?.signal,
          );
          // Errors surface through receive(); these only need observing.
          call.send(input).then(() => call.complete()).catch(() => {});
          return call;
        };
        break;
      case "bidi":
        client[key] = (options?: CallOptions) => {
          checkCallOptions(m, options);
          return new StreamingCall(transport.call(m, options), options?.signal);
        };
        break;
    }
  }
  return client as Client<S>;
}

/**
 * Throws a TypeError naming the method unless `options` are call options:
 * requests given to a streaming method (as Connect-ES's clients take them)
 * are pointed to `send` and `requests`.
 */
function checkCallOptions(
  method: MethodDefinition<unknown, unknown>,
  options: unknown,
): void {
  if (options === undefined) return;
  const what = `start call ${method.path}`;
  const iterable = typeof options === "object" && options !== null &&
    (Symbol.iterator in options || Symbol.asyncIterator in options ||
      options instanceof ReadableStream);
  checkArgument(
    typeof options === "object" && options !== null && !iterable,
    what,
    "the call options",
    "an object",
    options,
    iterable && method.kind !== "server-streaming"
      ? " (this call takes its requests by call.send(value) and call.complete(), or on call.requests)"
      : "",
  );
  const { signal, onHeader, onTrailer } = options as CallOptions;
  checkSignal(what, signal);
  for (
    const [name, callback] of [["onHeader", onHeader], [
      "onTrailer",
      onTrailer,
    ]] as const
  ) {
    checkArgument(
      callback === undefined || typeof callback === "function",
      what,
      name,
      "a function",
      callback,
    );
  }
}
