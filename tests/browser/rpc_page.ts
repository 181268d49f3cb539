// The RPC client as a test page uses it: bundled for the browser by
// tests/browser/rpc.ts and put on `globalThis.sluiceRpc`.

import {
  Code,
  createClient,
  createConnectTransport,
  createGrpcWebTransport,
  createWebSocketTransport,
  RpcError,
} from "../../lib/rpc/mod.ts";
import { BrowserService, StreamingCalcService } from "./rpc_services.ts";

const sluiceRpc = {
  Code,
  createClient,
  createConnectTransport,
  createGrpcWebTransport,
  createWebSocketTransport,
  RpcError,
  BrowserService,
  StreamingCalcService,
};

/** What the test pages find on `globalThis`. */
export type SluiceRpc = typeof sluiceRpc;

(globalThis as { sluiceRpc?: SluiceRpc }).sluiceRpc = sluiceRpc;
