// A fetch whose request body is a stream, sent half duplex, with the
// runtime's own errors: the one call under fetchDuplex (which explains a
// network error), openDuplex and the RPC fetch client (which explain it in
// their own words, the runtime's error as the cause).

import type { FetchDuplexOptions } from "./fetch_duplex.ts";

/** `fetch(input, { ...init, duplex: "half" })` with `options.fetch`. */
export function fetchHalfDuplex(
  input: string | URL | Request,
  options: FetchDuplexOptions,
): Promise<Response> {
  const { fetch: fetchImpl = globalThis.fetch, ...init } = options;
  return fetchImpl(input, { ...init, duplex: "half" } as RequestInit);
}
