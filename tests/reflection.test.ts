// createReflectionService (@sluice/streams/protobuf): gRPC server
// reflection, v1 and v1alpha. Its answers read directly (the file of a
// nested name with its dependencies, each file once per stream, extensions,
// NOT_FOUND, back-pressure, the request size limit, health.service described
// from gRPC's health.proto, the argument errors and their hints), then
// `buf curl` with no --schema against serveHttp2 (h2c) serving
// tests/gen/chat_pb.ts's ChatService, examples/gen/streaming_calc_pb.ts's
// StreamingCalcService and createHealthService's hand-written
// grpc.health.v1.Health (given as health.service): it lists services and
// methods, calls a unary and a bidi method and the health Check resolved
// through reflection, reports NOT_FOUND for an unknown service, and falls
// back to v1alpha alone; under Deno also against `serve` over h2c, with
// Connect. buf runs from npm (node_modules/@bufbuild/buf, by node). That
// the generated code of the .proto files is up to date is
// tests/protobuf_gen.test.ts's.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  create,
  createFileRegistry,
  createRegistry,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import {
  createClient,
  createReflectionService,
  implementService,
} from "../lib/protobuf/mod.ts";
import {
  Code,
  createGrpcTransport,
  createHealthService,
  createRpcHandler,
  createUniversalHandler,
  createUniversalHandlerClient,
  defineService,
  type HandlerContext,
  Int64Value,
  RpcError,
  type ServiceImplementation,
} from "../lib/rpc/mod.ts";
import { type Http2Server, serveHttp2 } from "../lib/runtime/grpc_node.ts";
import type { Server } from "../lib/runtime/serve.ts";
import {
  ServerReflection,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
} from "../lib/protobuf/_reflection/gen/grpc/reflection/v1/reflection_pb.ts";
import { ChatMessageSchema, ChatService, file_chat } from "./gen/chat_pb.ts";
import { file_grpc_health_v1_health } from "../lib/protobuf/_reflection/gen/grpc/health/v1/health_pb.ts";
import { StreamingCalcService } from "../examples/gen/streaming_calc_pb.ts";
import { deadline, runProcess, runtime, startServer } from "./_helpers.ts";

const ROOT = join(import.meta.dirname ?? ".", "..");
const BUF = join(ROOT, "node_modules", "@bufbuild", "buf", "bin", "buf");
const T = 30_000;

const V1 = "grpc.reflection.v1.ServerReflection";
const V1ALPHA = "grpc.reflection.v1alpha.ServerReflection";
const HEALTH = "grpc.health.v1.Health";

const chat = implementService(ChatService, {
  async *chat(messages) {
    for await (const m of messages) {
      yield { text: m.text.toUpperCase(), numbers: [m.numbers.length] };
    }
  },
  echo: (m) => m,
});
const calc = implementService(StreamingCalcService, {
  async sum(values) {
    let value = 0n;
    for await (const v of values) value += v.value;
    return { value };
  },
  async *incrementalSum(values) {
    let value = 0n;
    for await (const v of values) yield { value: value += v.value };
  },
});

/** The reflection implementations of the given versions only. */
function reflection(
  versions: string[],
  ...args: Parameters<typeof createReflectionService>
): ServiceImplementation[] {
  return createReflectionService(...args).filter((r) =>
    versions.includes(r.service.typeName)
  );
}

/** A v1 reflection stream over an in-process handler. */
function reflectionCall(services: ServiceImplementation[]) {
  const client = createClient(
    ServerReflection,
    createGrpcTransport({
      baseUrl: "http://in-process",
      httpClient: createUniversalHandlerClient(
        createUniversalHandler(services),
      ),
    }),
  );
  const call = client.serverReflectionInfo();
  return {
    async ask(
      messageRequest: ServerReflectionRequest["messageRequest"],
    ): Promise<ServerReflectionResponse> {
      await call.send({ host: "ignored", messageRequest });
      const result = await deadline(call.receive(), T, "reflection answer");
      assert.ok(!result.done, "the stream ended before an answer");
      return result.value;
    },
    async end(): Promise<void> {
      await call.complete();
      const last = await deadline(call.receive(), T, "end of stream");
      assert.ok(last.done, "a response after the last request");
    },
  };
}

/** The names of the files of a file_descriptor_response, in order. */
function fileNames(response: ServerReflectionResponse): string[] {
  assert.equal(response.messageResponse.case, "fileDescriptorResponse");
  return response.messageResponse.value.fileDescriptorProto.map((bytes) =>
    fromBinary(FileDescriptorProtoSchema, bytes).name
  );
}

/** A proto2 file with a message, an extension of it and a service. */
function extensionFile(): FileDescriptorProto {
  return create(FileDescriptorProtoSchema, {
    name: "sluice/test/ext.proto",
    package: "sluice.test.ext",
    syntax: "proto2",
    messageType: [{
      name: "Base",
      field: [{
        name: "id",
        number: 1,
        label: FieldDescriptorProto_Label.OPTIONAL,
        type: FieldDescriptorProto_Type.INT32,
        jsonName: "id",
      }],
      extensionRange: [{ start: 100, end: 200 }],
    }],
    extension: [{
      name: "color",
      number: 100,
      label: FieldDescriptorProto_Label.OPTIONAL,
      type: FieldDescriptorProto_Type.STRING,
      extendee: ".sluice.test.ext.Base",
      jsonName: "color",
    }, {
      name: "size",
      number: 101,
      label: FieldDescriptorProto_Label.OPTIONAL,
      type: FieldDescriptorProto_Type.INT32,
      extendee: ".sluice.test.ext.Base",
      jsonName: "size",
    }],
    service: [{
      name: "ExtService",
      method: [{
        name: "Get",
        inputType: ".sluice.test.ext.Base",
        outputType: ".sluice.test.ext.Base",
      }],
    }],
  });
}

describe("createReflectionService answers", () => {
  it("createReflectionService lists the services given and the reflection services", async () => {
    const call = reflectionCall(
      [
        chat,
        calc,
        ...createReflectionService([ChatService, StreamingCalcService]),
      ],
    );
    const response = await call.ask({ case: "listServices", value: "*" });
    assert.equal(response.validHost, "ignored");
    assert.equal(response.originalRequest?.messageRequest.case, "listServices");
    assert.equal(response.messageResponse.case, "listServicesResponse");
    assert.deepEqual(
      response.messageResponse.value.service.map((s) => s.name),
      ["sluice.test.chat.v1.ChatService", "StreamingCalcService", V1, V1ALPHA],
    );
    await call.end();
  });

  it("createReflectionService answers file_containing_symbol of a nested message with its file, then with its dependencies once per stream", async () => {
    const call = reflectionCall(
      createReflectionService([ChatService, StreamingCalcService]),
    );
    // A nested message: its file, which imports nothing.
    assert.deepEqual(
      fileNames(
        await call.ask({
          case: "fileContainingSymbol",
          value: "sluice.test.chat.v1.ChatMessage.Author",
        }),
      ),
      ["chat.proto"],
    );
    // A method: its file and the one it imports.
    assert.deepEqual(
      fileNames(
        await call.ask({
          case: "fileContainingSymbol",
          value: "StreamingCalcService.incrementalSum",
        }),
      ),
      ["streaming_calc.proto", "google/protobuf/wrappers.proto"],
    );
    // Asked again: the file asked for, its dependency already sent.
    assert.deepEqual(
      fileNames(
        await call.ask({
          case: "fileByFilename",
          value: "streaming_calc.proto",
        }),
      ),
      ["streaming_calc.proto"],
    );
    // A file sent as a dependency, asked for: sent again, as the answer.
    const wrappers = await call.ask({
      case: "fileContainingSymbol",
      value: "google.protobuf.Int64Value.value",
    });
    assert.deepEqual(fileNames(wrappers), ["google/protobuf/wrappers.proto"]);
    assert.equal(
      wrappers.originalRequest?.messageRequest.value,
      "google.protobuf.Int64Value.value",
    );
    await call.end();
    // A new stream sends the dependencies again.
    const next = reflectionCall(
      createReflectionService([StreamingCalcService]),
    );
    assert.deepEqual(
      fileNames(
        await next.ask({
          case: "fileContainingSymbol",
          value: "StreamingCalcService",
        }),
      ),
      ["streaming_calc.proto", "google/protobuf/wrappers.proto"],
    );
    await next.end();
  });

  it("createReflectionService finds fields, enums and enum values by their full names", async () => {
    const call = reflectionCall(createReflectionService([ChatService]));
    for (
      const value of [
        "sluice.test.chat.v1.ChatMessage.author",
        // A map field's entry message and its fields (protobuf-es lists no
        // map entries among the nested messages: these were NOT_FOUND).
        "sluice.test.chat.v1.ChatMessage.TagsEntry",
        "sluice.test.chat.v1.ChatMessage.TagsEntry.value",
        "sluice.test.chat.v1.Mood",
        "sluice.test.chat.v1.MOOD_HAPPY",
        ".sluice.test.chat.v1.ChatService.Chat",
        `${V1}.ServerReflectionInfo`,
        // A oneof (read from the descriptor's oneof_decl since map entries
        // and proto3 optional's synthetic oneofs are).
        "grpc.reflection.v1.ServerReflectionRequest.message_request",
      ]
    ) {
      const names = fileNames(
        await call.ask({ case: "fileContainingSymbol", value }),
      );
      assert.equal(
        names[0],
        value.startsWith("grpc.")
          ? "grpc/reflection/v1/reflection.proto"
          : "chat.proto",
        value,
      );
    }
    await call.end();
  });

  it("createReflectionService answers NOT_FOUND for unknown names and goes on", async () => {
    const call = reflectionCall(createReflectionService([ChatService]));
    const cases: ServerReflectionRequest["messageRequest"][] = [
      { case: "fileContainingSymbol", value: "no.such.Service" },
      { case: "fileByFilename", value: "nope.proto" },
      { case: "allExtensionNumbersOfType", value: "no.such.Message" },
      {
        case: "fileContainingExtension",
        value: {
          $typeName: "grpc.reflection.v1.ExtensionRequest",
          containingType: "sluice.test.chat.v1.ChatMessage",
          extensionNumber: 100,
        },
      },
    ];
    for (const asked of cases) {
      const response = await call.ask(asked);
      assert.equal(response.messageResponse.case, "errorResponse");
      assert.equal(response.messageResponse.value.errorCode, Code.NotFound);
      assert.match(
        response.messageResponse.value.errorMessage,
        /^Cannot find |^Cannot list /,
      );
      assert.deepEqual(response.originalRequest?.messageRequest, asked);
    }
    const symbol = await call.ask(cases[0]);
    assert.equal(
      symbol.messageResponse.case === "errorResponse" &&
        symbol.messageResponse.value.errorMessage,
      'Cannot find symbol "no.such.Service": no file reflected here declares it',
    );
    // The stream still answers.
    assert.deepEqual(
      fileNames(
        await call.ask({ case: "fileByFilename", value: "chat.proto" }),
      ),
      ["chat.proto"],
    );
    // A request that asks for nothing: UNIMPLEMENTED, as grpc-java answers.
    const empty = await call.ask({ case: undefined });
    assert.equal(
      empty.messageResponse.case === "errorResponse" &&
        empty.messageResponse.value.errorCode,
      Code.Unimplemented,
    );
    await call.end();
  });

  it("createReflectionService of a registry answers extensions and lists its services", async () => {
    const registry = createFileRegistry(extensionFile(), () => undefined);
    const call = reflectionCall(createReflectionService(registry));
    const list = await call.ask({ case: "listServices", value: "" });
    assert.deepEqual(
      list.messageResponse.case === "listServicesResponse" &&
        list.messageResponse.value.service.map((s) => s.name),
      ["sluice.test.ext.ExtService", V1, V1ALPHA],
    );
    const numbers = await call.ask({
      case: "allExtensionNumbersOfType",
      value: "sluice.test.ext.Base",
    });
    assert.equal(numbers.messageResponse.case, "allExtensionNumbersResponse");
    assert.equal(
      numbers.messageResponse.value.baseTypeName,
      "sluice.test.ext.Base",
    );
    assert.deepEqual(
      [...numbers.messageResponse.value.extensionNumber].sort(),
      [100, 101],
    );
    assert.deepEqual(
      fileNames(
        await call.ask({
          case: "fileContainingExtension",
          value: {
            $typeName: "grpc.reflection.v1.ExtensionRequest",
            containingType: "sluice.test.ext.Base",
            extensionNumber: 101,
          },
        }),
      ),
      ["sluice/test/ext.proto"],
    );
    assert.deepEqual(
      fileNames(
        await call.ask({
          case: "fileContainingSymbol",
          value: "sluice.test.ext.size",
        }),
      ),
      ["sluice/test/ext.proto"],
    );
    // A message without extensions: an empty list, not NOT_FOUND.
    const none = await call.ask({
      case: "allExtensionNumbersOfType",
      value: "grpc.reflection.v1.ErrorResponse",
    });
    assert.deepEqual(
      none.messageResponse.case === "allExtensionNumbersResponse" &&
        none.messageResponse.value.extensionNumber,
      [],
    );
    await call.end();
  });

  it("createReflectionService fails a stream with a request over maxRequestBytes with RESOURCE_EXHAUSTED", async () => {
    const call = reflectionCall(
      createReflectionService([ChatService], { maxRequestBytes: 64 }),
    );
    // Under the limit: answered.
    await call.ask({
      case: "fileContainingSymbol",
      value: "sluice.test.chat.v1.Mood",
    });
    const error = await call.ask({
      case: "fileContainingSymbol",
      value: "x".repeat(65),
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof RpcError, String(error));
    assert.equal(error.code, Code.ResourceExhausted);
    assert.equal(
      error.rawMessage,
      "Cannot answer reflection request: its 76 bytes exceed maxRequestBytes 64",
    );
  });

  it("createReflectionService refuses what is no service or registry, and a maxRequestBytes that is no size", () => {
    assert.throws(
      () => createReflectionService([chat as never]),
      {
        name: "TypeError",
        message:
          "Cannot create reflection service: services[0] must be a protobuf-es service descriptor or health.service, got object (a service implementation: pass its protobuf-es descriptor)",
      },
    );
    assert.throws(
      () => createReflectionService([ChatService], { maxRequestBytes: -1 }),
      {
        name: "RangeError",
        message:
          "Cannot create reflection service: maxRequestBytes must be a non-negative integer, got -1",
      },
    );
  });

  it("createReflectionService lists health.service and answers it from gRPC's health.proto", async () => {
    const health = createHealthService();
    const call = reflectionCall(
      createReflectionService([ChatService, health.service]),
    );
    const list = await call.ask({ case: "listServices", value: "" });
    assert.deepEqual(
      list.messageResponse.case === "listServicesResponse" &&
        list.messageResponse.value.service.map((s) => s.name),
      ["sluice.test.chat.v1.ChatService", HEALTH, V1, V1ALPHA],
    );
    for (
      const value of [
        HEALTH,
        `${HEALTH}.Watch`,
        "grpc.health.v1.HealthCheckResponse.ServingStatus",
        "grpc.health.v1.HealthCheckRequest.service",
      ]
    ) {
      const response = await call.ask({ case: "fileContainingSymbol", value });
      assert.deepEqual(fileNames(response), ["grpc/health/v1/health.proto"]);
      // The schema of the health.proto the protobuf entry point carries
      // (which tests/health.test.ts gives grpc-js and buf curl).
      assert.deepEqual(
        response.messageResponse.case === "fileDescriptorResponse" &&
          response.messageResponse.value.fileDescriptorProto[0],
        toBinary(FileDescriptorProtoSchema, file_grpc_health_v1_health.proto),
        value,
      );
    }
    await call.end();
  });

  it("createReflectionService refuses a defineService definition other than health.service: it has no descriptor", () => {
    const calc = defineService("example.Calc", {
      sum: { kind: "unary", input: Int64Value, output: Int64Value },
    });
    assert.throws(() => createReflectionService([ChatService, calc as never]), {
      name: "TypeError",
      message:
        'Cannot create reflection service: services[1] ("example.Calc") was made by defineService: reflection needs protobuf-es descriptors; a defineService definition has none (generate the service with @bufbuild/protoc-gen-es and pass its descriptor)',
    });
    // A definition named as the health service, with other methods: not
    // what health.proto describes.
    const fake = defineService(HEALTH, {
      list: { kind: "unary", input: Int64Value, output: Int64Value },
    });
    assert.throws(
      () => createReflectionService([fake as never]),
      /services\[0\] \("grpc\.health\.v1\.Health"\) was made by defineService/,
    );
  });

  it("createReflectionService names what was given instead of services, with the fix", () => {
    const health = createHealthService();
    const prefix = "Cannot create reflection service: services must be " +
      "an array of protobuf-es service descriptors or a registry, got ";
    for (
      const [given, message] of [
        [ChatService, "object (a service descriptor: wrap it in an array)"],
        [
          chat,
          "object (a service implementation: pass its protobuf-es descriptor)",
        ],
        [
          file_chat,
          "object (a file descriptor: pass its services, or createRegistry(file) from @bufbuild/protobuf)",
        ],
        [health.service, "object (health.service: wrap it in an array)"],
        [
          health,
          "object (createHealthService's result: pass its service, health.service)",
        ],
        [{}, "object"],
        ["x", "string"],
      ] as const
    ) {
      assert.throws(() => createReflectionService(given as never), {
        name: "TypeError",
        message: prefix + message,
      });
    }
  });

  it("createReflectionService names the index of a bad element of services, with the fix", () => {
    const health = createHealthService();
    const prefix =
      "Cannot create reflection service: services[1] must be a protobuf-es service descriptor or health.service, got ";
    for (
      const [given, message] of [
        [undefined, "undefined"],
        [
          chat,
          "object (a service implementation: pass its protobuf-es descriptor)",
        ],
        [
          health.implementation,
          "object (a service implementation: pass health.service)",
        ],
        [
          file_chat,
          "object (a file descriptor: pass its services, or createRegistry(file) from @bufbuild/protobuf)",
        ],
        [
          createRegistry(file_chat),
          "object (a registry: pass it alone, not in an array)",
        ],
        [
          ChatMessageSchema,
          "object (a message descriptor: pass services, or a registry to find other types)",
        ],
        [[ChatService], "Array"],
      ] as const
    ) {
      assert.throws(
        () => createReflectionService([ChatService, given as never]),
        { name: "TypeError", message: prefix + message },
      );
    }
  });

  it("createReflectionService reads the next request only once the last answer is taken", async () => {
    const [v1] = createReflectionService([ChatService]);
    const { handler } = v1.handlers.get(`/${V1}/ServerReflectionInfo`)!;
    let pulls = 0;
    const requests = new ReadableStream<ServerReflectionRequest>({
      pull(controller) {
        pulls++;
        if (pulls > 1_000) return controller.close();
        controller.enqueue(create(ServerReflectionRequestSchema, {
          messageRequest: { case: "listServices", value: "" },
        }));
      },
    }, { highWaterMark: 0 });
    const responses = handler(requests, {} as HandlerContext) as AsyncIterator<
      unknown
    >;
    for (let i = 1; i <= 3; i++) {
      await responses.next();
      // One request read per answer taken, none ahead.
      assert.equal(pulls, i);
    }
    await responses.return?.(undefined);
  });
});

/** Runs buf curl with no schema, from the repository's node_modules. */
function bufCurl(args: string[]) {
  return runProcess("node", [BUF, "curl", ...args], {
    cwd: ROOT,
    timeoutMs: T,
  });
}

const noBuf = !existsSync(BUF) &&
  "no node_modules/@bufbuild/buf (deno install)";

for (
  const setup of [
    { name: "serveHttp2 (gRPC, h2c)", protocol: "grpc", skip: noBuf },
    {
      name: "serve over h2c (Connect)",
      protocol: "connect",
      skip: noBuf || (runtime !== "deno" && "Bun.serve speaks no h2c"),
    },
  ] as const
) {
  describe(`buf curl with no --schema against ${setup.name}`, {
    skip: setup.skip,
  }, () => {
    let server: Http2Server | Server;
    let url: string;
    let v1alphaServer: Http2Server | Server;
    let v1alphaUrl: string;

    const start = async (services: ServiceImplementation[]) => {
      const started = setup.protocol === "grpc"
        ? await serveHttp2(createUniversalHandler(services))
        : await startServer(createRpcHandler(services));
      return { started, url: started.url.origin };
    };

    before(async () => {
      const health = createHealthService({
        statuses: { StreamingCalcService: "NOT_SERVING" },
      });
      const services = [ChatService, StreamingCalcService, health.service];
      ({ started: server, url } = await start([
        chat,
        calc,
        health.implementation,
        ...createReflectionService(services),
      ]));
      ({ started: v1alphaServer, url: v1alphaUrl } = await start([
        chat,
        calc,
        health.implementation,
        ...reflection([V1ALPHA], services),
      ]));
    });
    after(async () => {
      await server?.shutdown();
      await v1alphaServer?.shutdown();
    });

    const curl = (target: string, ...args: string[]) =>
      bufCurl([
        "--http2-prior-knowledge",
        "--protocol",
        setup.protocol,
        ...args,
        target,
      ]);

    it("buf curl --list-services lists the services and reflection", async () => {
      const { code, stdout, stderr } = await curl(url, "--list-services");
      assert.equal(code, 0, stderr);
      assert.deepEqual(stdout.trim().split("\n").sort(), [
        "StreamingCalcService",
        HEALTH,
        V1,
        V1ALPHA,
        "sluice.test.chat.v1.ChatService",
      ]);
    });

    it("buf curl --list-methods lists every method", async () => {
      const { code, stdout, stderr } = await curl(url, "--list-methods");
      assert.equal(code, 0, stderr);
      assert.deepEqual(stdout.trim().split("\n").sort(), [
        "StreamingCalcService/incrementalSum",
        "StreamingCalcService/sum",
        `${HEALTH}/Check`,
        `${HEALTH}/Watch`,
        `${V1}/ServerReflectionInfo`,
        `${V1ALPHA}/ServerReflectionInfo`,
        "sluice.test.chat.v1.ChatService/Chat",
        "sluice.test.chat.v1.ChatService/Echo",
      ]);
    });

    it("buf curl calls a unary method resolved through reflection", async () => {
      const { code, stdout, stderr } = await curl(
        `${url}/sluice.test.chat.v1.ChatService/Echo`,
        "-d",
        '{"text":"hi","author":{"name":"ann","id":7},"mood":"MOOD_HAPPY","tags":{"a":"b"}}',
      );
      assert.equal(code, 0, stderr);
      assert.deepEqual(JSON.parse(stdout), {
        text: "hi",
        author: { name: "ann", id: 7 },
        mood: "MOOD_HAPPY",
        tags: { a: "b" },
      });
    });

    it("buf curl calls the health service's Check resolved through reflection", async () => {
      for (
        const [service, status] of [
          ["", "SERVING"],
          ["StreamingCalcService", "NOT_SERVING"],
        ]
      ) {
        const { code, stdout, stderr } = await curl(
          `${url}/${HEALTH}/Check`,
          "-d",
          JSON.stringify({ service }),
        );
        assert.equal(code, 0, stderr);
        assert.deepEqual(JSON.parse(stdout), { status });
      }
    });

    it("buf curl calls a bidi method resolved through reflection", async () => {
      const { code, stdout, stderr } = await curl(
        `${url}/StreamingCalcService/incrementalSum`,
        "-d",
        "1 2 3 4",
      );
      assert.equal(code, 0, stderr);
      // Int64Value in JSON is a string.
      assert.deepEqual(
        stdout.trim().split("\n").map((line) => JSON.parse(line)),
        ["1", "3", "6", "10"],
      );
    });

    it("buf curl reports an unknown service as not in the schema, answered by v1 (NOT_FOUND)", async () => {
      const { code, stderr } = await curl(
        `${url}/no.such.Service/Method`,
        "-v",
      );
      assert.notEqual(code, 0);
      const lines = stderr.trim().split("\n");
      assert.equal(
        lines.at(-1),
        'Failure: failed to find service named "no.such.Service" in schema',
      );
      // v1 answered: no fallback to v1alpha (which follows UNIMPLEMENTED).
      assert.ok(
        lines.some((line) => line.includes(`POST /${V1}/ServerReflectionInfo`)),
        stderr,
      );
      assert.ok(!stderr.includes(V1ALPHA), stderr);
    });

    it("buf curl falls back to v1alpha when only v1alpha is served", async () => {
      const list = await curl(v1alphaUrl, "--list-services");
      assert.equal(list.code, 0, list.stderr);
      assert.ok(
        list.stdout.split("\n").includes("sluice.test.chat.v1.ChatService"),
        list.stdout,
      );
      const { code, stdout, stderr } = await curl(
        `${v1alphaUrl}/sluice.test.chat.v1.ChatService/Chat`,
        "-d",
        '{"text":"a","numbers":[1,2]} {"text":"b"}',
      );
      assert.equal(code, 0, stderr);
      assert.deepEqual(
        stdout.trim().split(/\n(?=\{)/).map((m) => JSON.parse(m)),
        [{ text: "A", numbers: [2] }, { text: "B", numbers: [0] }],
      );
    });
  });
}
