import {
  create,
  type DescEnum,
  type DescExtension,
  type DescFile,
  type DescMessage,
  type DescService,
  type MessageInitShape,
  type Registry,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { checkArgument } from "../_internal/arguments.ts";
import { checkMax } from "../_internal/limits.ts";
import {
  Code,
  defineService,
  type HandlerContext,
  type HealthServiceDefinition,
  implementService,
  type MessageType,
  RpcError,
  type ServiceImplementation,
} from "../rpc/mod.ts";
import { createMessageType } from "./create_message_type.ts";
import { isDescService } from "./_service_definition.ts";
import { file_grpc_health_v1_health as healthFile } from "./_reflection/gen/grpc/health/v1/health_pb.ts";
import {
  file_grpc_reflection_v1_reflection as reflectionFileV1,
  ServerReflection as ServerReflectionV1,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema as RequestSchemaV1,
  ServerReflectionResponseSchema as ResponseSchemaV1,
} from "./_reflection/gen/grpc/reflection/v1/reflection_pb.ts";
import {
  file_grpc_reflection_v1alpha_reflection as reflectionFileV1alpha,
  ServerReflection as ServerReflectionV1alpha,
  ServerReflectionRequestSchema as RequestSchemaV1alpha,
  ServerReflectionResponseSchema as ResponseSchemaV1alpha,
} from "./_reflection/gen/grpc/reflection/v1alpha/reflection_pb.ts";

/** Options for {@linkcode createReflectionService}. */
export interface ReflectionServiceOptions {
  /**
   * The largest reflection request accepted, in bytes. A request holds one
   * name, so a larger one is no reflection client's: the stream fails with
   * `ResourceExhausted`, naming the size and this limit. (The handler's
   * `maxMessageBytes` still applies first.)
   *
   * @default {65536}
   */
  maxRequestBytes?: number;
}

/** The default of `maxRequestBytes`. */
const MAX_REQUEST_BYTES = 65_536;

/** The name of gRPC's health service, which createHealthService defines. */
const HEALTH = "grpc.health.v1.Health";
/** The paths of its methods, as its .proto file declares them. */
const HEALTH_PATHS = [`/${HEALTH}/Check`, `/${HEALTH}/Watch`];

/** What `createReflectionService` takes in its array. */
type ReflectedService = DescService | HealthServiceDefinition;

/** What the reflection services know: files, symbols and extensions. */
interface ReflectionIndex {
  /** The services listed, by full name, in the order given. */
  readonly services: readonly string[];
  /** Every file, by its name (`foo/bar.proto`). */
  readonly files: ReadonlyMap<string, DescFile>;
  /** The file that declares each fully-qualified name. */
  readonly symbols: ReadonlyMap<string, DescFile>;
  /** Extensions by the full name of the message they extend, then number. */
  readonly extensions: ReadonlyMap<string, ReadonlyMap<number, DescFile>>;
  /** Serialized FileDescriptorProtos, made on first use. */
  readonly encoded: Map<DescFile, Uint8Array>;
}

/** An init object of a reflection response (v1 and v1alpha alike). */
type ResponseInit = MessageInitShape<typeof ResponseSchemaV1>;

/**
 * Creates gRPC server reflection (`grpc.reflection.v1.ServerReflection` and
 * the identical `grpc.reflection.v1alpha.ServerReflection` that older tools
 * call), which lets tools such as `buf curl`, grpcurl, Postman, Evans and
 * grpcui list a server's services and call them without being given the
 * schema. Serve the two implementations it returns beside your own.
 *
 * It answers from the protobuf-es descriptors of the services given (or of
 * every type in a registry): it lists those services and the reflection
 * services themselves (as grpc-go does); it finds a file by name, the file
 * that declares a fully-qualified name (a service, method, message, field,
 * oneof, enum, enum value or extension, nested or not), the file of an
 * extension, and the extension numbers of a message. A file is sent with
 * its transitive dependencies, each file once per stream (those sent
 * earlier on the stream are left out, but for the file asked for). An
 * unknown name gets an `error_response` with `NOT_FOUND` (5) and the
 * stream goes on; a request of no known kind one with `UNIMPLEMENTED` (12).
 * Requests are answered one at a time, in order: the next is read once the
 * answer to the last is taken. The `host` of a request is not checked.
 *
 * Every file of the given services and of their dependencies is exposed,
 * with all it declares: leave out services you do not want listed (and
 * put them in other files), since reflection shows them to anyone who can
 * call the server.
 *
 * The health service of `createHealthService` (`@sluice/streams/rpc`) is
 * written by hand, without a descriptor: pass its definition,
 * `health.service`, among the services, and it is listed and described
 * from the schema of gRPC's `grpc/health/v1/health.proto`, which this
 * module carries (as grpc-go's reflection lists its health service). Any
 * other definition made by `defineService` has no descriptor to answer
 * from, and is refused.
 *
 * @param services The protobuf-es service descriptors (`FooService` from
 * code generated by `@bufbuild/protoc-gen-es`) and `health.service` from
 * `createHealthService`, or a registry whose services are listed and whose
 * types are found.
 * @param options The request size limit.
 * @returns The two implementations, v1 then v1alpha, for
 * `createUniversalHandler` or `createRpcHandler` beside your own.
 * @throws {TypeError} When `services` is neither an array nor a registry,
 * or an element is no protobuf-es service descriptor nor
 * `health.service` (a definition made by `defineService`: reflection
 * needs descriptors).
 * @throws {RangeError} When `maxRequestBytes` is not a non-negative
 * integer.
 *
 * @example Serve a generated service and health checks with reflection, over gRPC
 * ```ts ignore
 * import { createReflectionService, implementService } from "@sluice/streams/protobuf";
 * import { createHealthService, createUniversalHandler } from "@sluice/streams/rpc";
 * import { serveHttp2 } from "@sluice/streams/grpc-node";
 * import { StreamingCalcService } from "./gen/streaming_calc_pb.ts";
 *
 * const health = createHealthService();
 * await serveHttp2(createUniversalHandler([
 *   implementService(StreamingCalcService, {
 *     async sum(values) {
 *       let value = 0n;
 *       for await (const v of values) value += v.value;
 *       return { value };
 *     },
 *     async *incrementalSum(values) {
 *       let value = 0n;
 *       for await (const v of values) yield { value: value += v.value };
 *     },
 *   }),
 *   health.implementation,
 *   ...createReflectionService([StreamingCalcService, health.service]),
 * ]), { port: 9090 });
 * // buf curl --http2-prior-knowledge --protocol grpc --list-methods http://127.0.0.1:9090
 * // buf curl --http2-prior-knowledge --protocol grpc http://127.0.0.1:9090/grpc.health.v1.Health/Check
 * ```
 *
 * @example The two reflection services
 * ```ts
 * import { createReflectionService } from "@sluice/streams/protobuf";
 * import { createUniversalHandler } from "@sluice/streams/rpc";
 * import assert from "node:assert/strict";
 *
 * const reflection = createReflectionService([], { maxRequestBytes: 4096 });
 * const handler = createUniversalHandler(reflection);
 * assert.deepEqual(reflection.map((r) => [...r.handlers.keys()]), [
 *   ["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"],
 *   ["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"],
 * ]);
 * assert.equal(typeof handler, "function");
 * ```
 */
export function createReflectionService(
  services: readonly (DescService | HealthServiceDefinition)[] | Registry,
  options: ReflectionServiceOptions = {},
): ServiceImplementation[] {
  const what = "create reflection service";
  checkArgument(
    Array.isArray(services) || isRegistry(services),
    what,
    "services",
    "an array of protobuf-es service descriptors or a registry",
    services,
    hintFor(services, false),
  );
  if (Array.isArray(services)) {
    services.forEach((service: unknown, i) => {
      if (isDefinition(service) && !isHealthDefinition(service)) {
        throw new TypeError(
          `Cannot ${what}: services[${i}] (${
            quoted(service.typeName)
          }) was made by defineService: reflection needs protobuf-es descriptors; a defineService definition has none (generate the service with @bufbuild/protoc-gen-es and pass its descriptor)`,
        );
      }
      checkArgument(
        isDescService(service) || isHealthDefinition(service),
        what,
        `services[${i}]`,
        "a protobuf-es service descriptor or health.service",
        service,
        hintFor(service, true),
      );
    });
  }
  const maxRequestBytes = checkMax(
    what,
    "maxRequestBytes",
    options.maxRequestBytes ?? MAX_REQUEST_BYTES,
  );
  const index = indexOf(services);
  return [
    reflectionService(
      ServerReflectionV1,
      RequestSchemaV1,
      ResponseSchemaV1,
      index,
      maxRequestBytes,
    ),
    reflectionService(
      ServerReflectionV1alpha,
      RequestSchemaV1alpha,
      ResponseSchemaV1alpha,
      index,
      maxRequestBytes,
    ),
  ];
}

function isRegistry(value: unknown): value is Registry {
  return typeof value === "object" && value !== null &&
    (value as { kind?: unknown }).kind === "registry" &&
    typeof (value as Iterable<unknown>)[Symbol.iterator] === "function";
}

/** Whether `value` looks like a definition made by `defineService`. */
function isDefinition(
  value: unknown,
): value is { typeName: string; methods: Record<string, unknown> } {
  return typeof value === "object" && value !== null &&
    (value as { kind?: unknown }).kind === undefined &&
    typeof (value as { typeName?: unknown }).typeName === "string" &&
    typeof (value as { methods?: unknown }).methods === "object" &&
    (value as { methods?: unknown }).methods !== null;
}

/**
 * Whether `value` is the definition of gRPC's health service
 * (`createHealthService`'s `service`): named `grpc.health.v1.Health`, with
 * no method but Check and Watch, which health.proto describes.
 */
function isHealthDefinition(value: unknown): value is HealthServiceDefinition {
  if (!isDefinition(value) || value.typeName !== HEALTH) return false;
  const methods = Object.values(value.methods);
  return methods.length > 0 &&
    methods.every((method) =>
      HEALTH_PATHS.includes(
        (method as { path?: unknown } | null)?.path as string,
      )
    );
}

/**
 * What to do instead, for an error about `value` given as `services`
 * (`inArray`: as one of its elements), or `""`.
 */
function hintFor(value: unknown, inArray: boolean): string {
  if (typeof value !== "object" || value === null) return "";
  if (!inArray && isDescService(value)) {
    return " (a service descriptor: wrap it in an array)";
  }
  if (!inArray && isHealthDefinition(value)) {
    return " (health.service: wrap it in an array)";
  }
  if (isHealthDefinition((value as { service?: unknown }).service)) {
    const health = value as { implementation?: unknown };
    return health.implementation === undefined
      ? " (a service implementation: pass health.service)"
      : " (createHealthService's result: pass its service, health.service)";
  }
  const implementation = value as Partial<ServiceImplementation>;
  if (
    implementation.handlers instanceof Map &&
    typeof implementation.service === "object"
  ) {
    return " (a service implementation: pass its protobuf-es descriptor)";
  }
  const kind = (value as { kind?: unknown }).kind;
  if (kind === "file") {
    return " (a file descriptor: pass its services, or createRegistry(file) from @bufbuild/protobuf)";
  }
  if (inArray && kind === "registry") {
    return " (a registry: pass it alone, not in an array)";
  }
  if (
    inArray && (kind === "message" || kind === "enum" || kind === "extension")
  ) {
    return ` (a ${kind} descriptor: pass services, or a registry to find other types)`;
  }
  return "";
}

/** One version of the service, over the shared index. */
function reflectionService(
  service:
    | typeof ServerReflectionV1
    | typeof ServerReflectionV1alpha,
  requestSchema: typeof RequestSchemaV1 | typeof RequestSchemaV1alpha,
  responseSchema: typeof ResponseSchemaV1 | typeof ResponseSchemaV1alpha,
  index: ReflectionIndex,
  maxRequestBytes: number,
): ServiceImplementation {
  // Requests over the limit are not parsed: they reach the handler as an
  // empty request marked with their size, which fails the stream. (v1alpha's
  // messages have v1's fields: one type serves both.)
  const oversized = new WeakMap<object, number>();
  const request = createMessageType(requestSchema as typeof RequestSchemaV1);
  const limit =
    (decode: (bytes: Uint8Array) => ServerReflectionRequest) =>
    (bytes: Uint8Array): ServerReflectionRequest => {
      if (bytes.byteLength <= maxRequestBytes) return decode(bytes);
      const empty = create(requestSchema as typeof RequestSchemaV1);
      oversized.set(empty, bytes.byteLength);
      return empty;
    };
  const input: MessageType<ServerReflectionRequest, ServerReflectionRequest> = {
    typeName: requestSchema.typeName,
    proto: {
      encode: request.proto.encode,
      decode: limit(request.proto.decode),
    },
    json: { encode: request.json.encode, decode: limit(request.json.decode) },
  };
  const method = service.method.serverReflectionInfo;
  const definition = defineService(service.typeName, {
    serverReflectionInfo: {
      name: method.name,
      kind: "bidi",
      input,
      output: createMessageType(responseSchema),
    },
  });
  return implementService(definition, {
    async *serverReflectionInfo(
      requests: ReadableStream<ServerReflectionRequest>,
      _context: HandlerContext,
    ) {
      // The files sent on this stream, by name.
      const sent = new Set<string>();
      // A reader, not `for await`: WebKit's ReadableStream is not
      // async-iterable, and a page may run this handler (in-process
      // calls). Left early (an error, or the call's end), the requests are
      // cancelled, as leaving a `for await` loop does.
      const reader = requests.getReader();
      let ended = false;
      try {
        for (
          let read = await reader.read();
          !read.done;
          read = await reader.read()
        ) {
          const request = read.value;
          const size = oversized.get(request);
          if (size !== undefined) {
            throw new RpcError(
              Code.ResourceExhausted,
              `Cannot answer reflection request: its ${size} bytes exceed maxRequestBytes ${maxRequestBytes}`,
            );
          }
          yield answer(index, request, sent);
        }
        ended = true;
      } finally {
        if (!ended) await reader.cancel().catch(() => {});
      }
    },
  });
}

/** The response to one request. */
function answer(
  index: ReflectionIndex,
  request: ServerReflectionRequest,
  sent: Set<string>,
): ResponseInit {
  const response = (
    messageResponse: ResponseInit["messageResponse"],
  ): ResponseInit => ({
    validHost: request.host,
    originalRequest: request,
    messageResponse,
  });
  const notFound = (message: string) =>
    response({
      case: "errorResponse",
      value: { errorCode: Code.NotFound, errorMessage: message },
    });
  const files = (file: DescFile) =>
    response({
      case: "fileDescriptorResponse",
      value: { fileDescriptorProto: withDependencies(index, file, sent) },
    });
  const asked = request.messageRequest;
  switch (asked.case) {
    case "listServices":
      return response({
        case: "listServicesResponse",
        value: { service: index.services.map((name) => ({ name })) },
      });
    case "fileByFilename": {
      const file = index.files.get(asked.value);
      return file === undefined
        ? notFound(
          `Cannot find file ${
            quoted(asked.value)
          }: no service reflected here uses it`,
        )
        : files(file);
    }
    case "fileContainingSymbol": {
      // A leading dot (a fully-qualified name as .proto files write it) is
      // accepted.
      const name = asked.value.replace(/^\./, "");
      const file = index.symbols.get(name);
      return file === undefined
        ? notFound(
          `Cannot find symbol ${
            quoted(asked.value)
          }: no file reflected here declares it`,
        )
        : files(file);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = asked.value;
      const file = index.extensions.get(containingType.replace(/^\./, ""))
        ?.get(extensionNumber);
      return file === undefined
        ? notFound(
          `Cannot find extension ${extensionNumber} of ${
            quoted(containingType)
          }: no file reflected here declares it`,
        )
        : files(file);
    }
    case "allExtensionNumbersOfType": {
      const name = asked.value.replace(/^\./, "");
      if (!isMessage(index, name)) {
        return notFound(
          `Cannot list extensions of ${
            quoted(asked.value)
          }: no file reflected here declares that message`,
        );
      }
      return response({
        case: "allExtensionNumbersResponse",
        value: {
          baseTypeName: name,
          extensionNumber: [...index.extensions.get(name)?.keys() ?? []],
        },
      });
    }
    default:
      return response({
        case: "errorResponse",
        value: {
          errorCode: Code.Unimplemented,
          errorMessage:
            "Cannot answer reflection request: it asks for nothing this server knows",
        },
      });
  }
}

/** A name from a request, quoted and cut short for a message. */
function quoted(name: string): string {
  return JSON.stringify(name.length > 128 ? `${name.slice(0, 128)}…` : name);
}

function isMessage(index: ReflectionIndex, name: string): boolean {
  const file = index.symbols.get(name);
  return file !== undefined && findMessage(file, name) !== undefined;
}

function findMessage(file: DescFile, name: string): DescMessage | undefined {
  const search = (
    messages: readonly DescMessage[],
  ): DescMessage | undefined => {
    for (const message of messages) {
      if (message.typeName === name) return message;
      if (name.startsWith(`${message.typeName}.`)) {
        const found = search(message.nestedMessages);
        if (found !== undefined) return found;
      }
    }
    return undefined;
  };
  return search(file.messages);
}

/**
 * `file` serialized, then those of its transitive dependencies not yet
 * sent on the stream (breadth first), each once; `sent` is updated. The
 * file asked for is sent even if it was before: it is the answer.
 */
function withDependencies(
  index: ReflectionIndex,
  file: DescFile,
  sent: Set<string>,
): Uint8Array[] {
  const out = [encoded(index, file)];
  sent.add(file.proto.name);
  const seen = new Set<DescFile>([file]);
  const queue = [...file.dependencies];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    if (seen.has(next)) continue;
    seen.add(next);
    if (!sent.has(next.proto.name)) {
      sent.add(next.proto.name);
      out.push(encoded(index, next));
    }
    queue.push(...next.dependencies);
  }
  return out;
}

function encoded(index: ReflectionIndex, file: DescFile): Uint8Array {
  let bytes = index.encoded.get(file);
  if (bytes === undefined) {
    bytes = toBinary(FileDescriptorProtoSchema, file.proto);
    index.encoded.set(file, bytes);
  }
  return bytes;
}

/**
 * Indexes the files of the services (or registry) and the reflection's;
 * the health service's definition stands for health.proto.
 */
function indexOf(
  services: readonly ReflectedService[] | Registry,
): ReflectionIndex {
  const names: string[] = [];
  const roots: DescFile[] = [];
  const descs: Iterable<
    ReflectedService | DescMessage | DescEnum | DescExtension
  > = services;
  for (const desc of descs) {
    if (isHealthDefinition(desc)) {
      roots.push(healthFile);
      if (!names.includes(HEALTH)) names.push(HEALTH);
      continue;
    }
    roots.push(desc.file);
    if (desc.kind === "service" && !names.includes(desc.typeName)) {
      names.push(desc.typeName);
    }
  }
  for (const own of [ServerReflectionV1, ServerReflectionV1alpha]) {
    if (!names.includes(own.typeName)) names.push(own.typeName);
  }
  roots.push(reflectionFileV1, reflectionFileV1alpha);
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const extensions = new Map<string, Map<number, DescFile>>();
  const add = (name: string, file: DescFile) => {
    // The first file to declare a name keeps it (two would not compile
    // together).
    if (!symbols.has(name)) symbols.set(name, file);
  };
  const addExtension = (extension: DescExtension, file: DescFile) => {
    add(extension.typeName, file);
    let numbers = extensions.get(extension.extendee.typeName);
    if (numbers === undefined) {
      numbers = new Map();
      extensions.set(extension.extendee.typeName, numbers);
    }
    if (!numbers.has(extension.number)) numbers.set(extension.number, file);
  };
  const addEnum = (desc: DescEnum, file: DescFile) => {
    add(desc.typeName, file);
    // Enum values are scoped beside their enum, as in C++.
    const scope = desc.typeName.slice(0, -desc.name.length);
    for (const value of desc.values) add(scope + value.name, file);
  };
  const addMessage = (message: DescMessage, file: DescFile) => {
    add(message.typeName, file);
    for (const field of message.fields) {
      add(`${message.typeName}.${field.name}`, file);
    }
    // From the descriptor: protobuf-es's `oneofs` and `nestedMessages`
    // leave out proto3 optional's synthetic oneofs (`_name`) and map
    // entries (`TagsEntry`), which the file declares all the same (a
    // lookup of them was NOT_FOUND).
    for (const oneof of message.proto.oneofDecl) {
      add(`${message.typeName}.${oneof.name}`, file);
    }
    for (const nested of message.proto.nestedType) {
      if (nested.options?.mapEntry !== true) continue;
      const entry = `${message.typeName}.${nested.name}`;
      add(entry, file);
      for (const field of nested.field) add(`${entry}.${field.name}`, file);
    }
    for (const nested of message.nestedMessages) addMessage(nested, file);
    for (const nested of message.nestedEnums) addEnum(nested, file);
    for (const nested of message.nestedExtensions) addExtension(nested, file);
  };
  const queue = [...roots];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    if (files.has(file.proto.name)) continue;
    files.set(file.proto.name, file);
    for (const service of file.services) {
      add(service.typeName, file);
      for (const method of service.methods) {
        add(`${service.typeName}.${method.name}`, file);
      }
    }
    for (const message of file.messages) addMessage(message, file);
    for (const desc of file.enums) addEnum(desc, file);
    for (const extension of file.extensions) addExtension(extension, file);
    queue.push(...file.dependencies);
  }
  return { services: names, files, symbols, extensions, encoded: new Map() };
}
