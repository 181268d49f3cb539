// Deno's HTTP/2-only client, in a module of its own (no imports): the tests
// use it through _helpers.ts, and bench/_by_hand.ts's h2c floors without
// loading the test helpers into a measured process.

/**
 * Deno's HTTP/2-only client: h2c with prior knowledge, the one runtime fetch
 * here that speaks HTTP/2 without TLS (Deno only). `client` for options that
 * take a `Deno.HttpClient` (openDuplex), `fetch` bound to it for those that
 * take a fetch (the RPC transports); `close` it after use.
 */
export function h2cClient(): {
  client: unknown;
  fetch: typeof fetch;
  close(): void;
} {
  const deno = (globalThis as unknown as {
    Deno: { createHttpClient(o: object): { close(): void } };
  }).Deno;
  const client = deno.createHttpClient({ http1: false, http2: true });
  return {
    client,
    fetch: (input, init) => {
      const withClient: RequestInit & { client: unknown } = { ...init, client };
      return fetch(input, withClient);
    },
    close: () => client.close(),
  };
}
