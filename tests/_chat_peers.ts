// ChatService (tests/proto/chat.proto, generated into tests/gen/ by
// `deno task gen`) served two ways: by sluice from the protobuf-es
// descriptor, and by Connect-ES (connect-node). The code between the
// "user code" markers is what a user writes; tests/protobuf_interop.test.ts
// counts its lines.

import * as http from "node:http";
import * as http2 from "node:http2";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { implementService } from "../lib/protobuf/mod.ts";
import { createRpcHandler } from "../lib/rpc/mod.ts";
import { type ChatMessage, ChatService, Mood } from "./gen/chat_pb.ts";

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
export async function startConnectChatServer(
  httpVersion: "1.1" | "2",
): Promise<{ url: string; shutdown(): Promise<void> }> {
  const handler = connectNodeAdapter({ routes: connectChatRoutes });
  const server = httpVersion === "2"
    ? http2.createServer(handler)
    : http.createServer(handler);
  const sockets = new Set<{ destroy(): void }>();
  server.on(
    "connection",
    (socket: { destroy(): void; once: (e: string, f: () => void) => void }) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    shutdown: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}
