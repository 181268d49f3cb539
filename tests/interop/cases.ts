// The non-auth gRPC interop cases (grpc/grpc doc/interop-test-descriptions.md),
// written once against a small client adapter (InteropClient) that sluice's
// client, grpc-js's and connect-node's each implement (tests/interop/clients.ts).
// Each case asserts what the descriptions say the client checks.

import assert from "node:assert/strict";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  SimpleRequestSchema,
  StreamingInputCallRequestSchema,
  StreamingOutputCallRequestSchema,
} from "../gen/grpc/testing/messages_pb.ts";
import { ECHO_INITIAL, ECHO_TRAILING, zeros } from "./common.ts";

/** Metadata by lower-case name; binary (`-bin`) values in base64, unpadded. */
export type Metadata = Record<string, string>;

/**
 * A call that failed, with its status, as every adapter reports it, and
 * the value of ERROR_METADATA in the error's metadata (null without it).
 */
export class CallFailed extends Error {
  constructor(
    readonly code: number,
    readonly rawMessage: string,
    readonly errorMetadata: string | null = null,
  ) {
    super(`status ${code}: ${JSON.stringify(rawMessage)}`);
  }
}

/** Options for one call. */
export interface CallOptions {
  headers?: Metadata;
  timeoutMs?: number;
}

/** A streaming call: send, close, receive (undefined at its end), cancel. */
export interface StreamCall<I, O> {
  send(message: I): Promise<void>;
  close(): Promise<void>;
  /** The next response, undefined once the call ended well; throws CallFailed. */
  receive(): Promise<O | undefined>;
  cancel(): void;
  headers(): Promise<Metadata>;
  trailers(): Promise<Metadata>;
}

/** What a response message looks like to the cases. */
// deno-lint-ignore no-explicit-any
export type Message = any;

type SimpleRequest = MessageInitShape<typeof SimpleRequestSchema>;
type InputRequest = MessageInitShape<typeof StreamingInputCallRequestSchema>;
type OutputRequest = MessageInitShape<typeof StreamingOutputCallRequestSchema>;

/** The client side of a peer, over one protocol. */
export interface InteropClient {
  unary(
    method: "emptyCall" | "unaryCall" | "unimplementedCall",
    request: SimpleRequest | Record<string, never>,
    options?: CallOptions & { service?: "UnimplementedService" },
  ): Promise<{ message: Message; headers: Metadata; trailers: Metadata }>;
  serverStreaming(
    request: OutputRequest,
    options?: CallOptions,
  ): StreamCall<never, Message>;
  clientStreaming(options?: CallOptions): StreamCall<InputRequest, Message>;
  bidi(options?: CallOptions): StreamCall<OutputRequest, Message>;
  close(): Promise<void>;
}

const REQUEST_SIZES = [27182, 8, 1828, 45904];
const RESPONSE_SIZES = [31415, 9, 2653, 58979];
const ECHO = {
  [ECHO_INITIAL]: "test_initial_metadata_value",
  [ECHO_TRAILING]: "q6ur", // 0xababab
};
const SPECIAL =
  "\t\ntest with whitespace\r\nand Unicode BMP \u263A and non-BMP \u{1F608}\t\n";

const CANCELLED = 1;
const UNKNOWN = 2;
const DEADLINE_EXCEEDED = 4;
const UNIMPLEMENTED = 12;

function assertZeros(message: Message, size: number): void {
  const body: Uint8Array = message?.payload?.body ?? new Uint8Array();
  assert.equal(body.length, size, "payload size");
  assert.ok(body.every((b) => b === 0), "payload is zeros");
}

async function fails(
  promise: Promise<unknown>,
  code: number,
  message?: string,
): Promise<void> {
  const error = await promise.then(() => undefined, (e) => e);
  assert.ok(
    error instanceof CallFailed,
    `expected status ${code}, got ${error}`,
  );
  assert.equal(error.code, code, String(error));
  if (message !== undefined) {
    assert.equal(error.rawMessage, message, String(error));
  }
}

/** How the FullDuplexCall half of a mixed case starts its error. */
export const BIDI_HALF = "bidi half: ";

/**
 * Runs the FullDuplexCall half of a case that first makes a unary call
 * (custom_metadata, status_code_and_message): its failure says so, so that
 * the table can tell a refused bidi half from a failed unary one.
 */
async function bidiHalf(run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    throw new Error(`${BIDI_HALF}${text}`, { cause: error });
  }
}

async function receiveAll<O>(call: StreamCall<never, O>): Promise<O[]> {
  const out: O[] = [];
  for (
    let m = await call.receive();
    m !== undefined;
    m = await call.receive()
  ) {
    out.push(m);
  }
  return out;
}

/** The cases, by the names the descriptions give them. */
export const CASES: Record<string, (client: InteropClient) => Promise<void>> = {
  async empty_unary(client) {
    const { message } = await client.unary("emptyCall", {});
    assert.deepEqual(Object.keys(message).filter((k) => k !== "$typeName"), []);
  },
  async large_unary(client) {
    const { message } = await client.unary("unaryCall", {
      responseSize: 314159,
      payload: zeros(271828),
    });
    assertZeros(message, 314159);
  },
  async client_streaming(client) {
    const call = client.clientStreaming();
    for (const size of REQUEST_SIZES) await call.send({ payload: zeros(size) });
    await call.close();
    const response = await call.receive();
    assert.equal(response?.aggregatedPayloadSize, 74922);
  },
  async server_streaming(client) {
    const call = client.serverStreaming({
      responseParameters: RESPONSE_SIZES.map((size) => ({ size })),
    });
    const responses = await receiveAll(call);
    assert.equal(responses.length, RESPONSE_SIZES.length);
    responses.forEach((r, i) => assertZeros(r, RESPONSE_SIZES[i]));
  },
  async ping_pong(client) {
    const call = client.bidi();
    for (let i = 0; i < REQUEST_SIZES.length; i++) {
      await call.send({
        responseParameters: [{ size: RESPONSE_SIZES[i] }],
        payload: zeros(REQUEST_SIZES[i]),
      });
      assertZeros(await call.receive(), RESPONSE_SIZES[i]);
    }
    await call.close();
    assert.equal(await call.receive(), undefined);
  },
  async empty_stream(client) {
    const call = client.bidi();
    await call.close();
    assert.equal(await call.receive(), undefined);
  },
  async cancel_after_begin(client) {
    const call = client.clientStreaming();
    call.cancel();
    await fails(call.receive(), CANCELLED);
  },
  async cancel_after_first_response(client) {
    const call = client.bidi();
    await call.send({
      responseParameters: [{ size: 31415 }],
      payload: zeros(27182),
    });
    assertZeros(await call.receive(), 31415);
    call.cancel();
    await fails(call.receive(), CANCELLED);
  },
  async timeout_on_sleeping_server(client) {
    const call = client.bidi({ timeoutMs: 1 });
    // The deadline may pass before the request is sent: sending may fail.
    await call.send({ payload: zeros(27182) }).catch(() => {});
    await fails(call.receive(), DEADLINE_EXCEEDED);
  },
  async custom_metadata(client) {
    const unary = await client.unary("unaryCall", {
      responseSize: 314159,
      payload: zeros(271828),
    }, { headers: ECHO });
    assertZeros(unary.message, 314159);
    assert.equal(unary.headers[ECHO_INITIAL], ECHO[ECHO_INITIAL]);
    assert.equal(unary.trailers[ECHO_TRAILING], ECHO[ECHO_TRAILING]);
    await bidiHalf(async () => {
      const call = client.bidi({ headers: ECHO });
      await call.send({
        responseParameters: [{ size: 314159 }],
        payload: zeros(271828),
      });
      await call.close();
      const responses = await receiveAll(call);
      assert.equal(responses.length, 1);
      assertZeros(responses[0], 314159);
      assert.equal((await call.headers())[ECHO_INITIAL], ECHO[ECHO_INITIAL]);
      assert.equal(
        (await call.trailers())[ECHO_TRAILING],
        ECHO[ECHO_TRAILING],
      );
    });
  },
  async status_code_and_message(client) {
    const responseStatus = { code: UNKNOWN, message: "test status message" };
    await fails(
      client.unary("unaryCall", { responseStatus }),
      UNKNOWN,
      responseStatus.message,
    );
    await bidiHalf(async () => {
      const call = client.bidi();
      await call.send({ responseStatus });
      await call.close();
      await fails(call.receive(), UNKNOWN, responseStatus.message);
    });
  },
  async special_status_message(client) {
    await fails(
      client.unary("unaryCall", {
        responseStatus: { code: UNKNOWN, message: SPECIAL },
      }),
      UNKNOWN,
      SPECIAL,
    );
  },
  async unimplemented_method(client) {
    await fails(client.unary("unimplementedCall", {}), UNIMPLEMENTED);
  },
  async unimplemented_service(client) {
    await fails(
      client.unary("unimplementedCall", {}, {
        service: "UnimplementedService",
      }),
      UNIMPLEMENTED,
    );
  },
};

/** One case's outcome. */
export interface CaseResult {
  case: string;
  ok: boolean;
  error?: string;
}

/** Runs every case against one client, in parallel, each bounded in time. */
export async function runCases(
  client: InteropClient,
  timeoutMs = 20_000,
): Promise<CaseResult[]> {
  return await Promise.all(
    Object.entries(CASES).map(async ([name, run]) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          run(client),
          new Promise((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`took more than ${timeoutMs} ms`)),
              timeoutMs,
            );
          }),
        ]);
        return { case: name, ok: true };
      } catch (error) {
        const text = error instanceof Error ? error.message : String(error);
        return { case: name, ok: false, error: text.split("\n")[0] };
      } finally {
        clearTimeout(timer);
      }
    }),
  );
}
