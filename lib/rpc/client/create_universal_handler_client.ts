import { emptyStream } from "../../_internal/bytes.ts";
import type {
  HttpClient,
  UniversalClientResponse,
  UniversalHandler,
} from "../universal.ts";

/**
 * An {@linkcode HttpClient} that hands each request to a
 * {@linkcode UniversalHandler} in the same process: a client and a server
 * with no network between them, for tests. Every protocol works through it
 * (native gRPC too: the handler's trailers come as the response's), in
 * full duplex, with compression, deadlines and cancellation as over a
 * connection: cancelling a call aborts the handler's `signal`.
 *
 * (A transport's `fetch` option that calls a fetch handler directly is not
 * the same: fetch decodes a response's `Content-Encoding`, so the
 * transport takes the body as decoded, and a handler's gzipped Connect
 * unary answer would not be.)
 *
 * @param handler The server, from `createUniversalHandler`.
 * @returns The HTTP client, for a transport's `httpClient` option.
 *
 * @example Call a service in process
 * ```ts
 * import {
 *   createClient,
 *   createGrpcTransport,
 *   createUniversalHandler,
 *   createUniversalHandlerClient,
 *   defineService,
 *   implementService,
 *   Int64Value,
 * } from "@sluice/streams/rpc";
 * import assert from "node:assert/strict";
 *
 * const Doubler = defineService("example.Doubler", {
 *   double: { kind: "unary", input: Int64Value, output: Int64Value },
 * });
 * const handler = createUniversalHandler(
 *   implementService(Doubler, { double: (n) => 2n * n }),
 * );
 * const client = createClient(
 *   Doubler,
 *   createGrpcTransport({
 *     baseUrl: "http://in-process",
 *     httpClient: createUniversalHandlerClient(handler),
 *   }),
 * );
 * assert.equal(await client.double(21n), 42n);
 * ```
 */
export function createUniversalHandlerClient(
  handler: UniversalHandler,
): HttpClient {
  return async (request): Promise<UniversalClientResponse> => {
    const { body } = request;
    const response = await handler({
      method: request.method,
      url: request.url,
      // The server's own copy, as a connection would give it.
      headers: new Headers(request.headers),
      body: request.method === "GET"
        ? null
        : body instanceof Uint8Array
        ? new ReadableStream<Uint8Array>({
          start(controller) {
            if (body.byteLength > 0) controller.enqueue(body);
            controller.close();
          },
        })
        : body,
      signal: request.signal,
    });
    return {
      status: response.status,
      headers: new Headers(response.headers),
      body: response.body ?? emptyStream(),
      trailers: response.trailers ?? Promise.resolve(new Headers()),
    };
  };
}
