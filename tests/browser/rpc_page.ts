// The RPC client as a test page uses it: bundled for the browser by
// tests/browser/rpc.ts and put on `globalThis.sluiceRpc`.

import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcWebTransport,
  createUniversalHandler,
  createUniversalHandlerClient,
  createWebSocketTransport,
  RpcError,
} from "../../lib/rpc/mod.ts";
import { reduce } from "../../lib/streams/mod.ts";
import {
  BrowserService,
  browserServices,
  StreamingCalcService,
} from "./rpc_services.ts";

const sluiceRpc = {
  Code,
  createClient,
  createConnectTransport,
  createGrpcWebTransport,
  createUniversalHandler,
  createUniversalHandlerClient,
  createWebSocketTransport,
  reduce,
  RpcError,
  BrowserService,
  browserServices,
  StreamingCalcService,
};

/** What the test pages find on `globalThis`. */
export type SluiceRpc = typeof sluiceRpc;

(globalThis as { sluiceRpc?: SluiceRpc }).sluiceRpc = sluiceRpc;
