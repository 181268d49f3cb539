// A protobuf-es service descriptor as a sluice ServiceDefinition: wire
// names, kinds and message types from the descriptor, methods keyed by
// their ECMAScript name (`localName`, as Connect-ES's clients and
// implementations use).

import type { DescMethod, DescService } from "@bufbuild/protobuf";
import {
  type AnyMethodInit,
  defineService,
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
  const methods: Record<string, AnyMethodInit> = {};
  for (const [key, method] of Object.entries(service.method)) {
    methods[key] = {
      name: method.name,
      kind: KINDS[method.methodKind],
      input: createMessageType(method.input, options),
      output: createMessageType(method.output, options),
    };
  }
  return defineService(service.typeName, methods);
}
