// A protobuf-es service descriptor as a sluice ServiceDefinition: wire
// names, kinds, idempotency levels and message types from the descriptor, methods keyed by
// their ECMAScript name (`localName`, as Connect-ES's clients and
// implementations use).

import type { DescMethod, DescService } from "@bufbuild/protobuf";
import {
  type AnyMethodInit,
  defineService,
  type MethodIdempotency,
  type MethodKind,
  type ServiceDefinition,
} from "../rpc/mod.ts";
import {
  createMessageType,
  type ProtobufCodecOptions,
} from "./create_message_type.ts";

const KINDS: Record<DescMethod["methodKind"], MethodKind> = {
  unary: "unary",
  client_streaming: "client-streaming",
  server_streaming: "server-streaming",
  bidi_streaming: "bidi",
};

// MethodOptions.IdempotencyLevel by number (NO_SIDE_EFFECTS = 1,
// IDEMPOTENT = 2; 0 is IDEMPOTENCY_UNKNOWN), without loading the
// descriptor.proto module for its enum.
const IDEMPOTENCY: Record<number, MethodIdempotency | undefined> = {
  1: "no-side-effects",
  2: "idempotent",
};

/** Whether `service` is a protobuf-es service descriptor. */
export function isDescService(service: unknown): service is DescService {
  return typeof service === "object" && service !== null &&
    (service as { kind?: unknown }).kind === "service" &&
    typeof (service as { method?: unknown }).method === "object";
}

/** Builds the definition of a protobuf-es service. */
export function serviceDefinition(
  service: DescService,
  options: ProtobufCodecOptions = {},
): ServiceDefinition {
  // No prototype: a method named __proto__ is kept (it set the object's
  // prototype instead, and was dropped).
  const methods: Record<string, AnyMethodInit> = Object.create(null);
  for (const [key, method] of Object.entries(service.method)) {
    methods[key] = {
      name: method.name,
      kind: KINDS[method.methodKind],
      input: createMessageType(method.input, options),
      output: createMessageType(method.output, options),
      idempotency: IDEMPOTENCY[method.idempotency],
    };
  }
  return defineService(service.typeName, methods);
}
