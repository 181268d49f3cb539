/**
 * Layer 3: streaming RPC over gRPC-Web and Connect (fetch handlers and
 * full-duplex fetch clients) and native gRPC (with the `node:http2` adapter
 * in `@sluice/streams/grpc-node`): length-prefixed framing, Protobuf and
 * JSON codecs, status codes, services, handlers and typed clients.
 *
 * @example Serve and call StreamingCalcService
 * ```ts ignore
 * import {
 *   createClient,
 *   createConnectTransport,
 *   createRpcHandler,
 *   defineService,
 *   implementService,
 *   Int64Value,
 * } from "@sluice/streams/rpc";
 * import { reduce, ScanStream } from "@sluice/streams/streams";
 *
 * const StreamingCalcService = defineService("StreamingCalcService", {
 *   sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
 *   incrementalSum: { kind: "bidi", input: Int64Value, output: Int64Value },
 * });
 * Deno.serve({ port: 9090 }, createRpcHandler(implementService(StreamingCalcService, {
 *   sum: (values) => reduce(values, (a, b) => a + b, 0n),
 *   incrementalSum: () => new ScanStream((a: bigint, b: bigint) => a + b, 0n),
 * })));
 *
 * const client = createClient(StreamingCalcService, createConnectTransport({
 *   baseUrl: "http://127.0.0.1:9090",
 * }));
 * const call = client.sum();
 * for (let i = 1n; i <= 10n; i++) await call.send(i);
 * await call.complete();
 * console.log(`Value: ${await call.receive()}`);
 * ```
 *
 * @module
 */

export { Code } from "./code.ts";
export {
  type ErrorDetail,
  RpcError,
  type RpcErrorOptions,
} from "./rpc_error.ts";
export {
  type Frame,
  FrameDecoder,
  type FrameDecoderOptions,
} from "./wire/frame_decoder.ts";
export { FrameDecoderStream } from "./wire/frame_decoder_stream.ts";
export {
  FrameEncoderStream,
  type FrameEncoderStreamOptions,
} from "./wire/frame_encoder_stream.ts";
export type { Codec, MessageType } from "./wire/message_type.ts";
export { Int64Value } from "./wire/int64_value.ts";
export {
  type AnyMethodInit,
  defineService,
  type MethodDefinition,
  type MethodDefinitions,
  type MethodIdempotency,
  type MethodInit,
  type MethodKind,
  type ServiceDefinition,
} from "./define_service.ts";
export {
  type BidiHandler,
  type ClientStreamingHandler,
  type HandlerContext,
  type HandlerFor,
  implementService,
  type MessageSource,
  type Protocol,
  type ServerStreamingHandler,
  type ServiceHandlers,
  type ServiceImplementation,
  type UnaryHandler,
} from "./server/implement_service.ts";
export type {
  HttpClient,
  UniversalClientRequest,
  UniversalClientResponse,
  UniversalHandler,
  UniversalRequest,
  UniversalResponse,
} from "./universal.ts";
export {
  createUniversalHandler,
  type UniversalHandlerOptions,
} from "./server/create_universal_handler.ts";
export {
  createRpcHandler,
  type RpcHandlerOptions,
} from "./server/create_rpc_handler.ts";
export type { Compression } from "../http/compression.ts";
export type {
  CallOptions,
  Transport,
  TransportCall,
  TransportOptions,
} from "./client/transport.ts";
export {
  createFetchClient,
  type FetchClientOptions,
} from "./client/create_fetch_client.ts";
export { createUniversalHandlerClient } from "./client/create_universal_handler_client.ts";
export { cors } from "./cors.ts";
export {
  type ConnectTransportOptions,
  createConnectTransport,
} from "./protocol_connect/transport.ts";
export {
  createGrpcWebTransport,
  type GrpcWebTransportOptions,
} from "./protocol_grpc_web/transport.ts";
export {
  createGrpcTransport,
  type GrpcTransportOptions,
} from "./protocol_grpc/transport.ts";
export {
  type BidiStreamingCall,
  type CallBase,
  type Client,
  type ClientMethod,
  type ClientStreamingCall,
  createClient,
  type Receiver,
  type ReceiveResult,
  type Sender,
  type ServerStreamingCall,
} from "./client/create_client.ts";
export {
  createWebSocketTransport,
  type WebSocketTransportOptions,
} from "./protocol_websocket/transport.ts";
export {
  serveWebSocketCall,
  type ServeWebSocketCallOptions,
} from "./protocol_websocket/serve_socket.ts";
export type { WebSocketLike } from "../http/websocket_duplex.ts";
export {
  createHealthService,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthService,
  type HealthServiceDefinition,
  type HealthServiceOptions,
  type HealthServingStatus,
  type HealthStatus,
} from "./health.ts";
