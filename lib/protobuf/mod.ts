/**
 * protobuf-es as a schema source for sluice's RPC: serve and call services
 * straight from the descriptors that `@bufbuild/protoc-gen-es` generates
 * (`deno task gen` runs it over `.proto` files). Wire names, method kinds
 * and message types come from the descriptor; handlers may return plain
 * objects; messages are read and written by protobuf-es (binary, and JSON
 * in the proto3 mapping). This entry point depends on
 * `npm:@bufbuild/protobuf@^2.12.1` (2.12.1 is the first release that limits
 * the nesting depth of the messages it reads); the rest of the package has
 * no dependencies.
 * Like the core, it uses web standards only: it runs in Deno, Bun, Workers
 * and browsers.
 *
 * `implementService` and `createClient` here also take hand-written
 * `defineService` definitions, so one import serves both kinds.
 * `createReflectionService` serves gRPC server reflection for generated
 * services, so that `buf curl`, grpcurl and other tools list and call them
 * without being given the schema.
 *
 * @example Serve and call a generated service
 * ```ts ignore
 * import { createClient, implementService } from "@sluice/streams/protobuf";
 * import { createConnectTransport, createRpcHandler } from "@sluice/streams/rpc";
 * import { StreamingCalcService } from "./gen/streaming_calc_pb.ts";
 *
 * Deno.serve({ port: 9090 }, createRpcHandler(implementService(StreamingCalcService, {
 *   async sum(values) {
 *     let value = 0n;
 *     for await (const v of values) value += v.value;
 *     return { value };
 *   },
 *   async *incrementalSum(values) {
 *     let value = 0n;
 *     for await (const v of values) yield { value: value += v.value };
 *   },
 * })));
 *
 * const client = createClient(StreamingCalcService, createConnectTransport({
 *   baseUrl: "http://127.0.0.1:9090",
 * }));
 * const call = client.sum();
 * for (let i = 1n; i <= 10n; i++) await call.send({ value: i });
 * await call.complete();
 * console.log(`Value: ${(await call.receive()).value}`); // Value: 55
 * ```
 *
 * @module
 */

export {
  createMessageType,
  type ProtobufCodec,
  type ProtobufCodecOptions,
  type ProtobufMessageType,
} from "./create_message_type.ts";
export {
  implementService,
  type ProtobufHandlerFor,
  type ProtobufServiceHandlers,
} from "./implement_service.ts";
export {
  createClient,
  type ProtobufClient,
  type ProtobufClientMethod,
} from "./create_client.ts";
export { packErrorDetail, unpackErrorDetails } from "./error_detail.ts";
export {
  createReflectionService,
  type ReflectionServiceOptions,
} from "./create_reflection_service.ts";
