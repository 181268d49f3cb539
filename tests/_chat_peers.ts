// ChatService (tests/proto/chat.proto, generated into tests/gen/ by
// `deno task gen`) served two ways: by sluice from the protobuf-es
// descriptor, and by Connect-ES (connect-node). The code between the
// "user code" markers is what a user writes; tests/protobuf_interop.test.ts
// counts its lines.

import type { ConnectRouter } from "@connectrpc/connect";
import { implementService } from "../lib/protobuf/mod.ts";
import { createRpcHandler } from "../lib/rpc/mod.ts";
import { type ChatMessage, ChatService, Mood } from "./gen/chat_pb.ts";
import { serveConnectRoutes } from "./_calc_peers.ts";

/** What both servers answer to one chat message. */
export function reply(m: ChatMessage) {
  return {
    text: m.text.toUpperCase(),
    numbers: [m.numbers.reduce((a, b) => a + b, 0)],
    author: {
      name: `re: ${m.author?.name ?? ""}`,
      id: (m.author?.id ?? 0) + 1,
    },
    mood: m.mood === Mood.GRUMPY ? Mood.HAPPY : m.mood,
    tags: { ...m.tags, seen: "yes" },
  };
}

// user code: sluice begin
export const sluiceChat = createRpcHandler(implementService(ChatService, {
  async *chat(messages) {
    for await (const m of messages) yield reply(m);
  },
  echo: (m) => m,
}));
// user code: sluice end

// user code: connect-es begin
export const connectChatRoutes = (router: ConnectRouter) =>
  router.service(ChatService, {
    async *chat(messages) {
      for await (const m of messages) yield reply(m);
    },
    echo: (m) => m,
  });
// user code: connect-es end

/** A Connect-ES server (connect-node adapter) for ChatService on port 0. */
export function startConnectChatServer(
  httpVersion: "1.1" | "2",
): Promise<{ url: string; shutdown(): Promise<void> }> {
  return serveConnectRoutes(connectChatRoutes, httpVersion);
}
