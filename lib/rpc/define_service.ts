import type { MessageType } from "./wire/message_type.ts";

/**
 * The four kinds of RPC: one message each way (`unary`), a stream of
 * requests and one response (`client-streaming`), one request and a stream
 * of responses (`server-streaming`), and streams both ways (`bidi`).
 */
export type MethodKind =
  | "unary"
  | "client-streaming"
  | "server-streaming"
  | "bidi";

/**
 * What a method promises about calling it twice, as `.proto` files declare
 * it with `option idempotency_level`: `"no-side-effects"`
 * (`NO_SIDE_EFFECTS`: a read; Connect clients may call it with HTTP GET,
 * which caches and CDNs can serve) or `"idempotent"` (`IDEMPOTENT`: repeating
 * it has the effect of one call). A method without one may have side
 * effects.
 */
export type MethodIdempotency = "no-side-effects" | "idempotent";

const KINDS: readonly string[] = [
  "unary",
  "client-streaming",
  "server-streaming",
  "bidi",
];

/**
 * What {@linkcode defineService} takes for each method. `I` and `O` are
 * what the message types read (a handler's requests, a client's
 * responses), `IW` and `OW` what they write (a client's requests, a
 * handler's responses): wider for protobuf-es types, which write init
 * objects too.
 */
export interface MethodInit<
  I,
  O,
  K extends MethodKind = MethodKind,
  IW = I,
  OW = O,
> {
  /** The method name on the wire. @default {the property name} */
  name?: string;
  /** The kind of method. */
  kind: K;
  /** The request message type. */
  input: MessageType<I, IW>;
  /** The response message type. */
  output: MessageType<O, OW>;
  /**
   * The method's idempotency: a unary `"no-side-effects"` method is served
   * over Connect GET too, and called with GET by a Connect transport with
   * `useHttpGet`.
   *
   * @default {undefined (may have side effects)}
   */
  idempotency?: MethodIdempotency;
}

/**
 * A method of a {@linkcode ServiceDefinition}: `I` and `O` are what its
 * message types read, `IW` and `OW` what they write (see
 * {@linkcode MethodInit}).
 */
export interface MethodDefinition<
  I,
  O,
  K extends MethodKind = MethodKind,
  IW = I,
  OW = O,
> {
  /** The method name on the wire, such as `incrementalSum`. */
  readonly name: string;
  /** The kind of method. */
  readonly kind: K;
  /** The request message type. */
  readonly input: MessageType<I, IW>;
  /** The response message type. */
  readonly output: MessageType<O, OW>;
  /** The fully qualified service name. */
  readonly service: string;
  /** The HTTP path: `/` service `/` method. */
  readonly path: string;
  /** The method's idempotency, if declared. */
  readonly idempotency?: MethodIdempotency;
}

/** A method descriptor of any message types, as `defineService` takes. */
// deno-lint-ignore no-explicit-any
export type AnyMethodInit = MethodInit<any, any, MethodKind>;

/** The methods of a service, by property name. */
export type MethodDefinitions<M extends Record<string, AnyMethodInit>> = {
  readonly [K in keyof M]: M[K] extends
    MethodInit<infer I, infer O, infer T, infer IW, infer OW>
    ? MethodDefinition<I, O, T, IW, OW>
    : never;
};

/** A service: its fully qualified name and its methods. */
export interface ServiceDefinition<
  M extends Record<string, AnyMethodInit> = Record<string, AnyMethodInit>,
> {
  /** The fully qualified service name (`package.Service`, or `Service`). */
  readonly typeName: string;
  /** The methods, by property name. */
  readonly methods: MethodDefinitions<M>;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/**
 * Defines a service from method descriptors, the equivalent of a `service`
 * block in a `.proto` file. Paths follow gRPC and Connect:
 * `/<package>.<Service>/<method>`.
 *
 * @param typeName The fully qualified service name.
 * @param methods The methods: kind and message types, by property name.
 * @returns The service definition, for servers and clients.
 * @throws {TypeError} When a name is invalid, or a method has an unknown
 * kind or idempotency, or no input or output message type.
 *
 * @example StreamingCalcService, from Ballerina's gRPC streaming guide
 * ```ts
 * import { defineService, Int64Value } from "@sluice/streams/rpc";
 * import assert from "node:assert/strict";
 *
 * const StreamingCalcService = defineService("StreamingCalcService", {
 *   sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
 *   incrementalSum: { kind: "bidi", input: Int64Value, output: Int64Value },
 * });
 * assert.equal(StreamingCalcService.methods.sum.path, "/StreamingCalcService/sum");
 * ```
 *
 * @example A read-only method, callable with Connect GET
 * ```ts
 * import { defineService, Int64Value } from "@sluice/streams/rpc";
 * import assert from "node:assert/strict";
 *
 * const Counter = defineService("example.Counter", {
 *   current: {
 *     kind: "unary",
 *     input: Int64Value,
 *     output: Int64Value,
 *     idempotency: "no-side-effects",
 *   },
 * });
 * assert.equal(Counter.methods.current.idempotency, "no-side-effects");
 * ```
 */
export function defineService<const M extends Record<string, AnyMethodInit>>(
  typeName: string,
  methods: M,
): ServiceDefinition<M> {
  if (!NAME.test(typeName)) {
    throw new TypeError(`Cannot define service: invalid name "${typeName}"`);
  }
  // No prototype: a method named __proto__ is a method, not the object's
  // prototype (it was dropped under Bun).
  const defined: Record<string, MethodDefinition<unknown, unknown>> = Object
    .create(null);
  for (const [key, init] of Object.entries(methods)) {
    const name = init.name ?? key;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new TypeError(
        `Cannot define service ${typeName}: invalid method name "${name}"`,
      );
    }
    if (!KINDS.includes(init.kind)) {
      throw new TypeError(
        `Cannot define service ${typeName}: method ${name} has unknown kind "${init.kind}"`,
      );
    }
    for (const side of ["input", "output"] as const) {
      const type = init[side] as Partial<MessageType<unknown>> | undefined;
      if (
        typeof type?.typeName !== "string" ||
        typeof type.proto?.encode !== "function" ||
        typeof type.proto?.decode !== "function"
      ) {
        throw new TypeError(
          `Cannot define service ${typeName}: method ${name} has no ${side} message type (a MessageType such as Int64Value, or one from createMessageType)`,
        );
      }
    }
    const idempotency = init.idempotency;
    if (
      idempotency !== undefined && idempotency !== "no-side-effects" &&
      idempotency !== "idempotent"
    ) {
      throw new TypeError(
        `Cannot define service ${typeName}: method ${name} has unknown idempotency "${idempotency}"`,
      );
    }
    defined[key] = Object.freeze({
      name,
      kind: init.kind,
      input: init.input,
      output: init.output,
      service: typeName,
      path: `/${typeName}/${name}`,
      ...(idempotency === undefined ? {} : { idempotency }),
    });
  }
  return Object.freeze({
    typeName,
    methods: Object.freeze(defined) as MethodDefinitions<M>,
  });
}

/**
 * Throws a `TypeError` naming `action` unless `service` is a definition of
 * {@linkcode defineService}'s shape: a protobuf-es service descriptor (its
 * methods an array) is pointed to `@sluice/streams/protobuf`'s `name`.
 */
export function checkServiceDefinition(
  service: unknown,
  action: string,
  name: string,
): asserts service is ServiceDefinition {
  const methods = (service as { methods?: unknown } | null | undefined)
    ?.methods;
  if (typeof methods === "object" && methods !== null) {
    if (!Array.isArray(methods)) {
      const typeName = (service as { typeName?: unknown }).typeName;
      for (const [key, method] of Object.entries(methods)) {
        const m = method as Partial<MethodDefinition<unknown, unknown>> & {
          I?: unknown;
          O?: unknown;
        };
        if (
          typeof m?.path === "string" && typeof m.kind === "string" &&
          KINDS.includes(m.kind)
        ) continue;
        // Connect-ES v1's generated services ({ I, O, kind: 0 }) were taken,
        // served at "undefined" and given a client without the method.
        throw new TypeError(
          `Cannot ${action}: method ${key} of ${
            String(typeName)
          } is not one of defineService's${
            m?.I !== undefined || typeof m?.kind === "number"
              ? " (it is code generated by protoc-gen-connect-es v1: generate with @bufbuild/protoc-gen-es v2, and pass its service to " +
                name + " from @sluice/streams/protobuf)"
              : ""
          }`,
        );
      }
      return;
    }
    throw new TypeError(
      `Cannot ${action}: ${
        (service as { typeName?: string }).typeName
      } is a protobuf-es service descriptor; use ${name} from @sluice/streams/protobuf`,
    );
  }
  throw new TypeError(
    `Cannot ${action}: expected a service definition from defineService (protobuf-es services: ${name} from @sluice/streams/protobuf)`,
  );
}
