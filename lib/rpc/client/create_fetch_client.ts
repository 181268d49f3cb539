import { fetchDuplex } from "../../http/fetch_duplex.ts";
import type {
  HttpClient,
  UniversalClientRequest,
  UniversalClientResponse,
} from "../universal.ts";

/** Options for {@linkcode createFetchClient}. */
export interface FetchClientOptions {
  /**
   * The `fetch` to use (for example one bound to a `Deno.HttpClient` for
   * h2c).
   *
   * @default {globalThis.fetch}
   */
  fetch?: typeof fetch;
}

/**
 * An {@linkcode HttpClient} on `fetch`, full duplex: the request body
 * streams while the response is read, over HTTP/1.1 (Deno, Bun, Node) and
 * HTTP/2. `fetch` cannot read HTTP trailers, so this client serves gRPC-Web
 * and Connect, not native gRPC.
 *
 * @param options The `fetch` to use.
 * @returns The HTTP client.
 *
 * @example A Connect transport on a custom fetch
 * ```ts ignore
 * import { createConnectTransport, createFetchClient } from "@sluice/streams/rpc";
 *
 * const transport = createConnectTransport({
 *   baseUrl: "http://127.0.0.1:9090",
 *   httpClient: createFetchClient({ fetch: myFetch }),
 * });
 * ```
 */
export function createFetchClient(
  options: FetchClientOptions = {},
): HttpClient {
  const { fetch: fetchImpl = globalThis.fetch } = options;
  return async (
    request: UniversalClientRequest,
  ): Promise<UniversalClientResponse> => {
    const response = await fetchDuplex(request.url, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: request.signal,
      fetch: fetchImpl,
    });
    // fetch has already decoded any Content-Encoding: the body is identity.
    const headers = new Headers(response.headers);
    headers.delete("content-encoding");
    return {
      status: response.status,
      headers,
      body: response.body ??
        new ReadableStream({ start: (controller) => controller.close() }),
      trailers: Promise.resolve(new Headers()),
    };
  };
}
