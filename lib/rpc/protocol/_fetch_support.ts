// What fetch can do for streaming requests where it runs. In browsers fetch
// is half duplex (the response arrives only after the request body has
// ended) and streams a request body only over HTTP/2 (Chromium; other
// browsers not at all), so client-streaming and bidi calls over fetch
// either fail at once here, naming the WebSocket transport, or (bidi,
// with allowHalfDuplex) run half duplex. Deno, Bun, Node and Workers
// stream both ways over HTTP/1.1 and HTTP/2: nothing is checked there.
// The feature check is the http layer's, whose clients make it too.

import { isBrowser } from "../../_internal/user_agent.ts";
import { supportsRequestStreams } from "../../http/_browser_streaming.ts";
import { parseUrl } from "../../http/_url.ts";
import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import type { MethodDefinition } from "../define_service.ts";

/** The hint every such error ends with. */
export const WEBSOCKET_HINT =
  "use createWebSocketTransport from @sluice/streams/rpc";

/**
 * Throws, before anything is sent, for a call fetch cannot make here: a
 * client-streaming or bidi call in a browser without request streams or to
 * an http: URL, or a bidi call in a browser unless `allowHalfDuplex`.
 */
export function checkFetchCall(
  method: MethodDefinition<unknown, unknown>,
  allowHalfDuplex: boolean,
  baseUrl: string,
): void {
  if (!isBrowser()) return;
  const { kind, name } = method;
  if (kind !== "client-streaming" && kind !== "bidi") return;
  if (!supportsRequestStreams()) {
    throw new RpcError(
      Code.Unimplemented,
      `Cannot start ${kind} call ${name} over fetch: this browser cannot stream a request body; ${WEBSOCKET_HINT}`,
    );
  }
  if (parseUrl(baseUrl)?.protocol === "http:") {
    // Chromium's fetch would fail with no more than "Failed to fetch".
    throw new RpcError(
      Code.Unimplemented,
      `Cannot start ${kind} call ${name} over fetch: a browser streams a request body only over HTTP/2, to an https: URL; ${WEBSOCKET_HINT}`,
    );
  }
  if (kind === "bidi" && !allowHalfDuplex) {
    throw new RpcError(
      Code.Unimplemented,
      `Cannot start bidi call ${name} over fetch: a browser's fetch is half duplex (no response before the request ends, and request streams only over HTTP/2), so a bidi call would hang; ${WEBSOCKET_HINT} (or set allowHalfDuplex to send every request before reading)`,
    );
  }
}
