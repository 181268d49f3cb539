// Third-party browser clients against sluice's server, bundled for the page
// by tests/browser/rpc.ts and put on `globalThis.rpcPeers`:
// @connectrpc/connect-web (Connect and gRPC-Web transports) and Google's
// grpc-web runtime, with hand-written MethodDescriptors (Int64Value
// serialize/deserialize from @bufbuild/protobuf) in place of generated
// stubs.

import {
  create,
  createFileRegistry,
  type DescService,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";
import {
  file_google_protobuf_wrappers,
  FileDescriptorProtoSchema,
  Int64ValueSchema,
} from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-web";
import { GrpcWebClientBase, MethodDescriptor } from "grpc-web";

/** test.v1.BrowserService (tests/browser/rpc_services.ts) for Connect-ES. */
function browserService(): DescService {
  const file = create(FileDescriptorProtoSchema, {
    name: "test/v1/browser.proto",
    package: "test.v1",
    syntax: "proto3",
    dependency: ["google/protobuf/wrappers.proto"],
    service: [{
      name: "BrowserService",
      method: [
        {
          name: "square",
          inputType: ".google.protobuf.Int64Value",
          outputType: ".google.protobuf.Int64Value",
        },
        {
          name: "count",
          inputType: ".google.protobuf.Int64Value",
          outputType: ".google.protobuf.Int64Value",
          serverStreaming: true,
        },
      ],
    }],
  });
  const registry = createFileRegistry(
    file,
    (name) =>
      name === "google/protobuf/wrappers.proto"
        ? file_google_protobuf_wrappers
        : undefined,
  );
  return registry.getService("test.v1.BrowserService")!;
}

/** square(12) and count(4) with connect-web over one of its transports. */
async function connectWeb(
  kind: "connect" | "connect-json" | "grpc-web",
  baseUrl: string,
): Promise<{ square: string; counted: string[] }> {
  const transport = kind === "grpc-web"
    ? createGrpcWebTransport({ baseUrl })
    : createConnectTransport({
      baseUrl,
      useBinaryFormat: kind === "connect",
    });
  // deno-lint-ignore no-explicit-any
  const client = createClient(browserService(), transport) as any;
  const square = await client.square({ value: 12n });
  const counted: string[] = [];
  for await (const m of client.count({ value: 4n })) {
    counted.push(String(m.value));
  }
  return { square: String(square.value), counted };
}

/** A class for MethodDescriptor's request/response type arguments. */
class Int64Box {
  readonly value: bigint;
  constructor(...args: unknown[]) {
    this.value = typeof args[0] === "bigint" ? args[0] : 0n;
  }
}

const serialize = (request: Int64Box) =>
  toBinary(
    Int64ValueSchema,
    create(Int64ValueSchema, { value: request.value }),
  );
const deserialize = (bytes: Uint8Array) =>
  new Int64Box(fromBinary(Int64ValueSchema, bytes).value);

/**
 * square(12) and count(4) with Google's grpc-web (binary format,
 * application/grpc-web+proto), and an error's code and message.
 */
async function grpcWeb(
  baseUrl: string,
): Promise<
  {
    square: string;
    counted: string[];
    error: { code: number; message: string };
  }
> {
  const client = new GrpcWebClientBase({ format: "binary" });
  const square = new MethodDescriptor(
    "/test.v1.BrowserService/square",
    "unary",
    Int64Box,
    Int64Box,
    serialize,
    deserialize,
  );
  const result = await client.unaryCall(
    `${baseUrl}/test.v1.BrowserService/square`,
    new Int64Box(12n),
    {},
    square,
  );
  const missing = new MethodDescriptor(
    "/test.v1.BrowserService/missing",
    "unary",
    Int64Box,
    Int64Box,
    serialize,
    deserialize,
  );
  let error = { code: -1, message: "" };
  try {
    await client.unaryCall(
      `${baseUrl}/test.v1.BrowserService/missing`,
      new Int64Box(1n),
      {},
      missing,
    );
  } catch (e) {
    const { code, message } = e as { code: number; message: string };
    error = { code, message };
  }
  const count = new MethodDescriptor(
    "/test.v1.BrowserService/count",
    "server_streaming",
    Int64Box,
    Int64Box,
    serialize,
    deserialize,
  );
  const counted = await new Promise<string[]>((resolve, reject) => {
    const values: string[] = [];
    client.serverStreaming(
      `${baseUrl}/test.v1.BrowserService/count`,
      new Int64Box(4n),
      {},
      count,
    )
      .on("data", (m) => values.push(String(m.value)))
      .on("error", reject)
      .on("end", () => resolve(values));
  });
  return { square: String(result.value), counted, error };
}

/**
 * Google's grpc-web in its text format (application/grpc-web-text, its
 * `format: "text"`, protoc-gen-grpc-web's `mode=grpcwebtext`): square(12),
 * an UNIMPLEMENTED error, count(4), and paced(key), whose second message
 * the server sends only once the page, having read the first, calls
 * release(key): the messages of a stream must reach the page as they are
 * sent (in the binary format they come only when the call ends).
 */
async function grpcWebText(baseUrl: string): Promise<{
  square: string;
  counted: string[];
  paced: string[];
  error: { code: number; message: string };
}> {
  const client = new GrpcWebClientBase({ format: "text" });
  const method = (
    name: string,
    kind: "unary" | "server_streaming",
  ) =>
    new MethodDescriptor(
      `/test.v1.BrowserService/${name}`,
      kind,
      Int64Box,
      Int64Box,
      serialize,
      deserialize,
    );
  const url = (name: string) => `${baseUrl}/test.v1.BrowserService/${name}`;
  const unary = (name: string, value: bigint) =>
    client.unaryCall(url(name), new Int64Box(value), {}, method(name, "unary"));
  const stream = (
    name: string,
    value: bigint,
    onData: (value: string) => void = () => {},
  ) =>
    new Promise<string[]>((resolve, reject) => {
      const values: string[] = [];
      client.serverStreaming(
        url(name),
        new Int64Box(value),
        {},
        method(name, "server_streaming"),
      )
        .on("data", (m) => {
          values.push(String(m.value));
          onData(String(m.value));
        })
        .on("error", reject)
        .on("end", () => resolve(values));
    });
  const square = await unary("square", 12n);
  let error = { code: -1, message: "" };
  try {
    await unary("missing", 1n);
  } catch (e) {
    const { code, message } = e as { code: number; message: string };
    error = { code, message };
  }
  const counted = await stream("count", 4n);
  const key = BigInt(Math.floor(Math.random() * 2 ** 48));
  const released: Promise<unknown>[] = [];
  const paced = await stream("paced", key, (value) => {
    if (value === "1") released.push(unary("release", key));
  });
  await Promise.all(released);
  return { square: String(square.value), counted, paced, error };
}

const rpcPeers = { connectWeb, grpcWeb, grpcWebText };

/** What the test pages find on `globalThis`. */
export type RpcPeers = typeof rpcPeers;

(globalThis as { rpcPeers?: RpcPeers }).rpcPeers = rpcPeers;
