import { checkArgument } from "../../_internal/arguments.ts";
import {
  checkServiceDefinition,
  type MethodDefinition,
  type MethodKind,
  type ServiceDefinition,
} from "../define_service.ts";

/** The protocols a call can arrive by. */
export type Protocol = "grpc" | "grpc-web" | "connect";

/** What a handler learns about its call. */
export interface HandlerContext {
  /** The method called. */
  readonly method: MethodDefinition<unknown, unknown>;
  /** The protocol the call arrived by. */
  readonly protocol: Protocol;
  /**
   * The HTTP method of the request: `"POST"`, or `"GET"` for a Connect GET
   * (a unary `"no-side-effects"` method; its response may be cached, so a
   * handler can set `Cache-Control` in `responseHeaders`).
   */
  readonly requestMethod: string;
  /**
   * Aborted when the call ends early: the client cancelled or went away
   * (`Code.Canceled`) or the deadline passed (`Code.DeadlineExceeded`); the
   * reason is an `RpcError`.
   */
  readonly signal: AbortSignal;
  /**
   * The deadline as a `Date.now()` timestamp, if the call has one: the
   * client's timeout, or the server's `maxTimeoutMs` if that is shorter or
   * the client set none. Pass what is left of it on to the calls the
   * handler makes (`timeoutMs: context.deadline - Date.now()`; a call with
   * zero or less fails with `DeadlineExceeded` at once).
   */
  readonly deadline: number | undefined;
  /** The request headers. */
  readonly requestHeaders: Headers;
  /**
   * Headers to send with the response, on every protocol. They go out with
   * the first response message or when the call ends, whichever comes
   * first: set them before either, however long the handler waits first.
   * The protocol's own headers (`content-type`, `content-encoding`,
   * `grpc-status`, `connect-*`, ...: the set Connect-ES keeps out of error
   * metadata) are not sent from here: the protocol sets them.
   */
  readonly responseHeaders: Headers;
  /**
   * Trailers to send when the call ends (the protocol's own headers left
   * out, as from `responseHeaders`), followed by the metadata of the
   * `RpcError` the handler fails with, if any.
   */
  readonly responseTrailers: Headers;
}

/** A stream of messages: a web stream, or any (async) iterable. */
export type MessageSource<T> =
  | ReadableStream<T>
  | AsyncIterable<T>
  | Iterable<T>;

/** Handles a unary call: one request, one response. */
export type UnaryHandler<I, O> = (
  input: I,
  context: HandlerContext,
) => O | Promise<O>;

/**
 * Handles a client-streaming call: a stream of requests, one response. The
 * requests are a `ReadableStream` that is also typed as an async iterable,
 * so `for await` reads them under TypeScript's DOM library before 6.0 too.
 */
export type ClientStreamingHandler<I, O> = (
  inputs: ReadableStream<I> & AsyncIterable<I>,
  context: HandlerContext,
) => O | Promise<O>;

/** Handles a server-streaming call: one request, a stream of responses. */
export type ServerStreamingHandler<I, O> = (
  input: I,
  context: HandlerContext,
) => MessageSource<O> | Promise<MessageSource<O>>;

/**
 * Handles a bidi call: returns the response stream, or a
 * `TransformStream` (any readable/writable pair) that the requests are piped
 * through. The requests are typed as for a client-streaming handler.
 */
export type BidiHandler<I, O> = (
  inputs: ReadableStream<I> & AsyncIterable<I>,
  context: HandlerContext,
) =>
  | MessageSource<O>
  | ReadableWritablePair<O, I>
  | Promise<MessageSource<O> | ReadableWritablePair<O, I>>;

/** The handler type for a method of a given kind. */
export type HandlerFor<M> = M extends
  MethodDefinition<infer I, unknown, infer K, unknown, infer OW>
  ? K extends "unary" ? UnaryHandler<I, OW>
  : K extends "client-streaming" ? ClientStreamingHandler<I, OW>
  : K extends "server-streaming" ? ServerStreamingHandler<I, OW>
  : K extends "bidi" ? BidiHandler<I, OW>
  : never
  : never;

/** One handler per method of a service. */
export type ServiceHandlers<S extends ServiceDefinition> = {
  [K in keyof S["methods"]]: HandlerFor<S["methods"][K]>;
};

/** A service with its handlers, ready to serve. */
export interface ServiceImplementation {
  /** The service definition. */
  readonly service: ServiceDefinition;
  /** The handlers, by method path (`/Service/method`). */
  readonly handlers: ReadonlyMap<
    string,
    {
      method: MethodDefinition<unknown, unknown, MethodKind>;
      // deno-lint-ignore no-explicit-any
      handler: (input: any, context: HandlerContext) => any;
    }
  >;
}

/**
 * Pairs a service definition with its handlers. Handlers take and return
 * web streams (or async iterables): a client-streaming handler can be a
 * `reduce`, a bidi handler a `TransformStream` such as a `ScanStream`.
 * Throw an {@linkcode RpcError} to fail a call with a given code.
 * `handlers` may be an instance of a class of your own: each handler is
 * called with it as `this`, as Connect-ES does.
 *
 * @param service The service definition.
 * @param handlers One handler per method.
 * @returns The implementation, for `createRpcHandler` or
 * `createUniversalHandler`.
 *
 * @example StreamingCalcService, from Ballerina's gRPC streaming guide
 * ```ts
 * import { defineService, implementService, Int64Value } from "@sluice/streams/rpc";
 * import { reduce, ScanStream } from "@sluice/streams/streams";
 *
 * const StreamingCalcService = defineService("StreamingCalcService", {
 *   sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
 *   incrementalSum: { kind: "bidi", input: Int64Value, output: Int64Value },
 * });
 * const implementation = implementService(StreamingCalcService, {
 *   sum: (values) => reduce(values, (a, b) => a + b, 0n),
 *   incrementalSum: () => new ScanStream((a: bigint, b: bigint) => a + b, 0n),
 * });
 * ```
 */
export function implementService<S extends ServiceDefinition>(
  service: S,
  handlers: ServiceHandlers<S>,
): ServiceImplementation {
  checkServiceDefinition(service, "implement service", "implementService");
  checkArgument(
    typeof handlers === "object" && handlers !== null,
    `implement ${service.typeName}`,
    "the handlers",
    "an object of functions, one per method",
    handlers,
  );
  // deno-lint-ignore no-explicit-any
  type Handler = (input: any, context: HandlerContext) => any;
  const map = new Map<string, {
    method: MethodDefinition<unknown, unknown, MethodKind>;
    handler: Handler;
  }>();
  for (const [key, method] of Object.entries(service.methods)) {
    const found = (handlers as Record<string, unknown>)[key];
    // Object's own methods are no handlers: a method named hasOwnProperty
    // without one was served by Object.prototype's, answering {}; nor is a
    // class its instance's `constructor` (called without new, it threw).
    const handler =
      found === (Object.prototype as Record<string, unknown>)[key] ||
        (key === "constructor" && !Object.hasOwn(handlers, key))
        ? undefined
        : found;
    if (typeof handler !== "function") {
      throw new TypeError(
        `Cannot implement ${service.typeName}: no handler for method ${key}${
          strayHandlers(service, handlers)
        }`,
      );
    }
    map.set(method.path, {
      method,
      // Bound to the handlers' object: a class's methods read `this` (an
      // instance's `this.store` was undefined), as Connect-ES binds them.
      handler: handler.bind(handlers) as Handler,
    });
  }
  return Object.freeze({ service, handlers: map });
}

/**
 * The handlers' own functions named for no method of `service`, as a
 * clause for the message of a missing handler: a misspelt or renamed one.
 */
function strayHandlers(service: ServiceDefinition, handlers: object): string {
  const stray = Object.entries(handlers).filter(([key, value]) =>
    typeof value === "function" && !Object.hasOwn(service.methods, key)
  ).map(([key]) => key);
  return stray.length === 0
    ? ""
    : ` (the handlers have ${stray.join(", ")}, which the service lacks)`;
}
