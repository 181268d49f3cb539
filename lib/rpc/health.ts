import { Code } from "./code.ts";
import {
  defineService,
  type MethodInit,
  type ServiceDefinition,
} from "./define_service.ts";
import { RpcError } from "./rpc_error.ts";
import {
  type HandlerContext,
  implementService,
  type ServiceImplementation,
} from "./server/implement_service.ts";
import {
  type HealthCheckRequest,
  HealthCheckRequestType,
  type HealthCheckResponse,
  HealthCheckResponseType,
  type HealthStatus,
} from "./wire/_health_messages.ts";
import { quote } from "./protocol/_quote.ts";

export type {
  HealthCheckRequest,
  HealthCheckResponse,
  HealthStatus,
} from "./wire/_health_messages.ts";

/** The statuses a service can be given: {@linkcode HealthService.setStatus}. */
export type HealthServingStatus = "SERVING" | "NOT_SERVING";

/**
 * The service definition of `grpc.health.v1.Health`: `check` (unary, wire
 * name `Check`) and `watch` (server-streaming, wire name `Watch`).
 */
export type HealthServiceDefinition = ServiceDefinition<{
  check: MethodInit<HealthCheckRequest, HealthCheckResponse, "unary">;
  watch: MethodInit<
    HealthCheckRequest,
    HealthCheckResponse,
    "server-streaming"
  >;
}>;

/** Options for {@linkcode createHealthService}. */
export interface HealthServiceOptions {
  /**
   * The statuses to start with, by service name (`package.Service`; `""`
   * is the server as a whole). `""` is `"SERVING"` unless set here, as in
   * grpc-go's health server.
   *
   * @default {{ "": "SERVING" }}
   */
  statuses?: Readonly<Record<string, HealthServingStatus>>;
}

/**
 * gRPC's health service, `grpc.health.v1.Health`, with the statuses it
 * answers: from {@linkcode createHealthService}.
 */
export interface HealthService {
  /**
   * The service definition of `grpc.health.v1.Health`, for
   * {@linkcode createClient} (`check`, `watch`), and for
   * `createReflectionService` (`@sluice/streams/protobuf`), which lists and
   * describes it from gRPC's health.proto.
   */
  readonly service: HealthServiceDefinition;
  /**
   * The implementation to serve beside your own services, in
   * {@linkcode createUniversalHandler} or {@linkcode createRpcHandler}.
   */
  readonly implementation: ServiceImplementation;
  /**
   * The number of `Watch` calls open now: one less as soon as a client goes
   * away (its call's signal aborts).
   */
  readonly watchers: number;
  /**
   * Sets a service's status (registering it if it was not): `Check`
   * answers it from now on, and every `Watch` of the service is sent it if
   * it differs from what that watcher was last sent. Ignored after
   * {@linkcode HealthService.shutdown}, as grpc-go's `SetServingStatus` is.
   *
   * @param service The service's fully qualified name, or `""` for the
   * server as a whole.
   * @param status `"SERVING"` or `"NOT_SERVING"`.
   * @throws {TypeError} When `service` is not a string or `status` neither
   * of the two.
   */
  setStatus(service: string, status: HealthServingStatus): void;
  /**
   * A service's status, or `undefined` if it is not registered (`Check`
   * then fails with `NOT_FOUND`, `Watch` sends `SERVICE_UNKNOWN`).
   *
   * @param service The service's fully qualified name, or `""`.
   * @returns Its status, or `undefined`.
   */
  getStatus(service: string): HealthServingStatus | undefined;
  /**
   * Sets every registered service `"NOT_SERVING"` (watchers are sent it)
   * and ignores `setStatus` from then on, as grpc-go's `Shutdown`: call it
   * when the server starts to shut down, so that load balancers and
   * watchers move away before connections close. `Watch` calls stay open:
   * the server's own shutdown ends them (`serveHttp2`'s `shutdown()` waits
   * `shutdownTimeoutMs` for them).
   */
  shutdown(): void;
}

/** One Watch call: what it has to send next, and its pull waiting. */
interface Watcher {
  /** The latest status not yet sent (only the latest is kept). */
  pending: HealthStatus | undefined;
  /** The status last sent, to send a change only. */
  sent: HealthStatus | undefined;
  /** Resolves the pull that waits for a status; set while one waits. */
  wake: (() => void) | undefined;
  /** The call ended: the client went away, or the response was cancelled. */
  ended: boolean;
}

/**
 * Creates gRPC's standard health service, `grpc.health.v1.Health` (gRPC's
 * `doc/health-checking.md`), which Kubernetes `grpc` probes,
 * `grpc_health_probe`, Envoy and load balancers call. `Check` answers a
 * service's status (`""`: the server as a whole), or fails with
 * `NOT_FOUND` for a service that is not registered; `Watch` sends the
 * status at once (`SERVICE_UNKNOWN` for a service that is not registered),
 * then each change, until the client goes away. A watcher that does not
 * read holds only the latest status, however often it changes. Both serve
 * over gRPC, gRPC-Web and Connect (binary and JSON:
 * `{"service":"x"}` → `{"status":"SERVING"}`).
 *
 * @experimental
 * @param options The statuses to start with.
 * @returns The service's definition and implementation, and the functions
 * that set its statuses.
 * @throws {TypeError} When a status in `options.statuses` is neither
 * `"SERVING"` nor `"NOT_SERVING"`.
 *
 * @example Serve health checks beside StreamingCalcService
 * ```ts ignore
 * import { createHealthService, createUniversalHandler } from "@sluice/streams/rpc";
 * import { serveHttp2 } from "@sluice/streams/grpc-node";
 *
 * // `implementation`: StreamingCalcService's, from implementService.
 * const health = createHealthService({
 *   statuses: { StreamingCalcService: "SERVING" },
 * });
 * const server = await serveHttp2(
 *   createUniversalHandler([implementation, health.implementation]),
 *   { port: 50051 },
 * );
 * // On SIGTERM: tell the probes first, then stop.
 * Deno.addSignalListener("SIGTERM", async () => {
 *   health.shutdown();
 *   await server.shutdown();
 * });
 * ```
 *
 * @example Check and watch a status with this library's client
 * ```ts
 * import {
 *   createClient,
 *   createHealthService,
 *   createUniversalHandler,
 *   createUniversalHandlerClient,
 *   createConnectTransport,
 * } from "@sluice/streams/rpc";
 * import assert from "node:assert/strict";
 *
 * const health = createHealthService();
 * const client = createClient(health.service, createConnectTransport({
 *   baseUrl: "http://in-process",
 *   httpClient: createUniversalHandlerClient(
 *     createUniversalHandler(health.implementation),
 *   ),
 * }));
 * assert.deepEqual(await client.check({ service: "" }), { status: "SERVING" });
 *
 * const watch = client.watch({ service: "example.Calc" });
 * assert.deepEqual((await watch.receive()).value, { status: "SERVICE_UNKNOWN" });
 * health.setStatus("example.Calc", "SERVING");
 * assert.deepEqual((await watch.receive()).value, { status: "SERVING" });
 * watch.cancel();
 * ```
 */
export function createHealthService(
  options: HealthServiceOptions = {},
): HealthService {
  const statuses = new Map<string, HealthServingStatus>([["", "SERVING"]]);
  for (const [service, status] of Object.entries(options.statuses ?? {})) {
    statuses.set(service, checkStatus(status, "create health service"));
  }
  const watchers = new Map<string, Set<Watcher>>();
  let watching = 0;
  let down = false;

  const send = (service: string, status: HealthStatus) => {
    for (const watcher of watchers.get(service) ?? []) {
      watcher.pending = status;
      watcher.wake?.();
    }
  };
  const set = (service: string, status: HealthServingStatus) => {
    statuses.set(service, status);
    send(service, status);
  };

  const service: HealthServiceDefinition = defineService(
    "grpc.health.v1.Health",
    {
      check: {
        name: "Check",
        kind: "unary",
        input: HealthCheckRequestType,
        output: HealthCheckResponseType,
      },
      watch: {
        name: "Watch",
        kind: "server-streaming",
        input: HealthCheckRequestType,
        output: HealthCheckResponseType,
      },
    },
  );

  const watch = (
    request: HealthCheckRequest,
    context: HandlerContext,
  ): ReadableStream<HealthCheckResponse> => {
    const name = request.service;
    const watcher: Watcher = {
      pending: statuses.get(name) ?? "SERVICE_UNKNOWN",
      sent: undefined,
      wake: undefined,
      ended: false,
    };
    let set = watchers.get(name);
    if (set === undefined) watchers.set(name, set = new Set());
    set.add(watcher);
    watching++;
    const end = () => {
      if (watcher.ended) return;
      watcher.ended = true;
      watching--;
      context.signal.removeEventListener("abort", end);
      const set = watchers.get(name);
      set?.delete(watcher);
      if (set?.size === 0) watchers.delete(name);
      watcher.wake?.();
    };
    if (context.signal.aborted) end();
    else context.signal.addEventListener("abort", end, { once: true });
    // Pulled one message at a time (highWaterMark 0): nothing is queued
    // ahead of what the call sends, and a watcher that does not read keeps
    // one pending status, replaced by each change.
    return new ReadableStream<HealthCheckResponse>({
      async pull(controller) {
        while (!watcher.ended) {
          const status = watcher.pending;
          watcher.pending = undefined;
          if (status !== undefined && status !== watcher.sent) {
            watcher.sent = status;
            controller.enqueue({ status });
            return;
          }
          await new Promise<void>((resolve) => watcher.wake = resolve);
          watcher.wake = undefined;
        }
        // The call is over (its signal aborted): the server ends it with
        // the signal's reason.
        controller.close();
      },
      cancel: end,
    }, { highWaterMark: 0 });
  };

  const implementation = implementService(service, {
    check(request) {
      const status = statuses.get(request.service);
      if (status === undefined) {
        throw new RpcError(
          Code.NotFound,
          `Cannot check health: service ${
            quote(request.service)
          } is not registered`,
        );
      }
      return { status };
    },
    watch,
  });

  return {
    service,
    implementation,
    get watchers() {
      return watching;
    },
    setStatus(service, status) {
      if (typeof service !== "string") {
        throw new TypeError(
          `Cannot set health status: the service name must be a string, got ${typeof service}`,
        );
      }
      checkStatus(status, "set health status");
      if (!down) set(service, status);
    },
    getStatus(service) {
      return statuses.get(service);
    },
    shutdown() {
      down = true;
      for (const service of statuses.keys()) set(service, "NOT_SERVING");
    },
  };
}

function checkStatus(status: unknown, what: string): HealthServingStatus {
  if (status === "SERVING" || status === "NOT_SERVING") return status;
  throw new TypeError(
    `Cannot ${what}: a status must be "SERVING" or "NOT_SERVING", got ${
      typeof status === "string" ? quote(status) : typeof status
    }`,
  );
}
