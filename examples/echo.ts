/**
 * The two streaming examples of Ruby async-http's streaming guide (`Body::Stream`),
 * over full-duplex HTTP and over a WebSocket, with the same duplex stream on
 * both ends:
 *
 * 1. uni-directional: the client writes "Hello, " and "World!", closes its
 *    write side, then reads what comes back: "Hello, World!";
 * 2. bi-directional lockstep: the client writes a line, waits for its echo,
 *    then writes the next, which only works if replies arrive while the
 *    request is still open.
 *
 * Run with `deno run --allow-net=127.0.0.1 examples/echo.ts` or
 * `bun run examples/echo.ts`.
 *
 * Server mode, for curl or any client: `POST /echo` echoes the request body
 * as it arrives (HTTP full duplex) and `GET /ws` echoes WebSocket messages.
 *
 *     deno run --allow-net=127.0.0.1 examples/echo.ts server --port 8000
 *     curl --data-binary @file http://127.0.0.1:8000/echo
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import {
  createEchoHandler,
  duplexResponse,
  type DuplexStream,
  openDuplex,
  websocketDuplex,
} from "../mod.ts";
import { serve } from "../lib/runtime/serve.ts";
import { upgradeWebSocket } from "../lib/runtime/websocket.ts";

const decoder = new TextDecoder();

/** The guide's server loop: read what is there, write it back, until EOF. */
async function echoLoop(stream: DuplexStream): Promise<void> {
  try {
    for (;;) {
      const chunk = await stream.readPartial(1024);
      if (chunk === null) break; // end of input: not an exception
      await stream.write(chunk);
    }
  } catch (error) {
    await stream.close(error);
    return;
  }
  await stream.close();
}

/** Accepts a WebSocket and echoes its messages with the duplex stream. */
function webSocketEcho(request: Request): Response {
  const { socket, response } = upgradeWebSocket(request);
  void echoLoop(websocketDuplex(socket));
  return response;
}

const serverMode = process.argv[2] === "server";
const { values: flags } = parseArgs({
  args: process.argv.slice(serverMode ? 3 : 2),
  options: { port: { type: "string", default: "0" } },
});
if (serverMode) {
  const echoHandler = createEchoHandler();
  const server = await serve((request) => {
    const { pathname } = new URL(request.url);
    if (pathname === "/echo" && request.method === "POST") {
      return echoHandler(request);
    }
    if (pathname === "/ws" && request.method === "GET") {
      return webSocketEcho(request);
    }
    return new Response("Not Found", { status: 404 });
  }, { port: Number(flags.port) });
  console.log(`Server listening on ${server.url}`);
  // The first signal lets open exchanges finish (at most serve's
  // shutdownTimeoutMs, 10 s); a second one exits at once.
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1);
    stopping = true;
    server.shutdown().then(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
} else {
  await demo();
}

async function demo(): Promise<void> {
  const server = await serve((request) => {
    const { pathname } = new URL(request.url);
    if (pathname === "/ws") return webSocketEcho(request);
    return duplexResponse(request, echoLoop);
  }, { port: Number(flags.port) });
  console.log(`server listening on ${server.url}`);

  async function uniDirectional(stream: DuplexStream): Promise<void> {
    console.log("  uni-directional:");
    for (const text of ["Hello, ", "World!"]) {
      await stream.write(text);
      console.log(`    client wrote ${JSON.stringify(text)}`);
    }
    await stream.closeWrite();
    console.log("    client closed its write side");
    let reply = "";
    for (;;) {
      const chunk = await stream.readPartial(1024);
      if (chunk === null) break;
      reply += decoder.decode(chunk, { stream: true });
    }
    console.log(`    client read ${JSON.stringify(reply + decoder.decode())}`);
    await stream.close();
  }

  async function biDirectional(stream: DuplexStream): Promise<void> {
    console.log("  bi-directional (lockstep):");
    for (const line of ["one", "two", "three"]) {
      await stream.write(line + "\n");
      const echoed = await stream.readLine();
      console.log(
        `    client wrote ${JSON.stringify(line)}, read ${
          JSON.stringify(echoed)
        } before writing more`,
      );
    }
    await stream.closeWrite();
    const end = await stream.readPartial();
    console.log(
      `    client closed its write side; end of input: ${end === null}`,
    );
    await stream.close();
  }

  const wsUrl = new URL("/ws", server.url);
  wsUrl.protocol = "ws:";
  const transports: [string, () => DuplexStream][] = [
    ["HTTP (full-duplex fetch)", () => openDuplex(server.url).stream],
    ["WebSocket", () => websocketDuplex(new WebSocket(wsUrl))],
  ];
  try {
    for (const [name, open] of transports) {
      console.log(`over ${name}:`);
      await uniDirectional(open());
      await biDirectional(open());
    }
  } finally {
    await server.shutdown();
  }
}
