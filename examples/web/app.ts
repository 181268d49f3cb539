// The demo page's script (examples/web/index.html), bundled for the browser
// by examples/web/server.ts. Three panels: a file upload with a progress
// bar and both SHA-256s (the browser's, from crypto.subtle, and the
// server's), a Server-Sent Events feed read with the browser's own
// EventSource, and an echo chat over a WebSocket duplex stream.

import { upload } from "../../lib/http/upload.ts";
import { websocketDuplex } from "../../lib/http/websocket_duplex.ts";
import {
  createClient,
  createWebSocketTransport,
  defineService,
  Int64Value,
} from "../../lib/rpc/mod.ts";

// The DOM without the DOM types: the repository is type-checked as one
// program with Deno's types, which the "dom" lib would clash with.
// deno-lint-ignore no-explicit-any
type Element = any;
const document: Element = (globalThis as { document?: Element }).document;
const $ = (id: string): Element => document.getElementById(id);

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

// ------------------------------------------------------------------ upload

const fileInput = $("file");
const bar = $("bar");
const progressText = $("progress-text");
const localHash = $("local-sha");
const serverHash = $("server-sha");
const verdict = $("verdict");
const cancel = $("cancel");
let controller: AbortController | undefined;

cancel.addEventListener(
  "click",
  () => controller?.abort(new Error("cancelled")),
);

fileInput.addEventListener("change", async () => {
  const file = fileInput.files?.[0];
  if (!file) return;
  controller = new AbortController();
  cancel.disabled = false;
  verdict.textContent = "";
  verdict.className = "verdict";
  serverHash.textContent = "…";
  localHash.textContent = "hashing…";
  bar.style.width = "0%";
  progressText.textContent = `0 / ${formatBytes(file.size)}`;
  const local = crypto.subtle.digest("SHA-256", await file.arrayBuffer())
    .then((digest) => {
      localHash.textContent = hex(new Uint8Array(digest));
      return hex(new Uint8Array(digest));
    });
  try {
    const response = await upload("/upload", file, {
      signal: controller.signal,
      onProgress: (sent, total) => {
        const share = total ? sent / total : 0;
        bar.style.width = `${(share * 100).toFixed(1)}%`;
        progressText.textContent = `${formatBytes(sent)} / ${
          formatBytes(total ?? sent)
        }`;
      },
    });
    if (!response.ok) throw new Error(await response.text());
    const answer = await response.json() as { bytes: number; sha256: string };
    serverHash.textContent = answer.sha256;
    const same = answer.sha256 === await local;
    verdict.textContent = same ? "✓ match" : "✗ differ";
    verdict.className = `verdict ${same ? "ok" : "bad"}`;
  } catch (error) {
    serverHash.textContent = "—";
    verdict.textContent = String((error as Error).message ?? error);
    verdict.className = "verdict bad";
  } finally {
    cancel.disabled = true;
  }
});

// ------------------------------------------------------------------ feed

const feed = $("feed");
const feedState = $("feed-state");
const source = new EventSource("/feed");
source.addEventListener("open", () => {
  feedState.textContent = "live";
  feedState.className = "pill live";
});
source.addEventListener("error", () => {
  feedState.textContent = "reconnecting";
  feedState.className = "pill";
});
source.addEventListener("tick", (event) => {
  const { time, n } = JSON.parse((event as MessageEvent).data);
  const item = document.createElement("li");
  item.innerHTML = `<span class="id">#${n}</span> <time></time>`;
  item.querySelector("time")!.textContent = new Date(time)
    .toLocaleTimeString();
  feed.prepend(item);
  while (feed.children.length > 6) feed.lastElementChild!.remove();
});

// ------------------------------------------------------------------ chat

const log = $("chat-log");
const form = $("chat-form");
const input = $("chat-input");
const chat = websocketDuplex(
  new WebSocket(
    `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/chat`,
  ),
);

function say(who: "me" | "server", text: string): void {
  const line = document.createElement("div");
  line.className = `bubble ${who}`;
  line.textContent = text;
  log.append(line);
  log.scrollTop = log.scrollHeight;
}

form.addEventListener("submit", async (event: Event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  say("me", text);
  await chat.write(text + "\n");
  const reply = await chat.readLine();
  if (reply !== null) say("server", reply);
});

// ------------------------------------------------------------- running total

// As in examples/streaming_calc.proto (the server serves examples/
// streaming_calc.ts's implementation on /rpc-ws).
const StreamingCalcService = defineService("StreamingCalcService", {
  sum: { kind: "client-streaming", input: Int64Value, output: Int64Value },
  incrementalSum: { kind: "bidi", input: Int64Value, output: Int64Value },
});

const sumForm = $("sum-form");
const sumInput = $("sum-input");
const sumTotal = $("sum-total");
const sumSteps = $("sum-steps");
const sumState = $("sum-state");
const calc = createClient(
  StreamingCalcService,
  createWebSocketTransport({
    url: `${
      location.protocol === "https:" ? "wss" : "ws"
    }://${location.host}/rpc-ws`,
  }),
);
// One bidi call for the page's life: each number typed is one request,
// each running total one response, in full duplex.
const sums = calc.incrementalSum();
let added: bigint[] = [];
sumState.textContent = "live";
sumState.className = "pill live";
(async () => {
  try {
    for (let r = await sums.receive(); !r.done; r = await sums.receive()) {
      sumTotal.textContent = String(r.value);
      const item = document.createElement("li");
      item.textContent = `+ ${added.shift()} = ${r.value}`;
      sumSteps.prepend(item);
      while (sumSteps.children.length > 6) sumSteps.lastElementChild!.remove();
    }
    sumState.textContent = "ended";
  } catch (error) {
    sumState.textContent = (error as Error).message;
  }
  sumState.className = "pill";
})();

/** Sends the whole numbers typed so far; keeps an unfinished last one. */
async function sendNumbers(final: boolean): Promise<void> {
  const tokens = String(sumInput.value).split(/[\s,]+/);
  const rest = final ? "" : tokens.pop() ?? "";
  const numbers = tokens.filter((t) => /^-?\d+$/.test(t)).map(BigInt);
  sumInput.value = rest;
  for (const n of numbers) {
    added.push(n);
    await sums.send(n);
  }
}

// As you type: a number is sent once a space or comma follows it...
sumInput.addEventListener("input", () => {
  if (/[\s,]/.test(sumInput.value)) sendNumbers(false);
});
// ...or on Enter.
sumForm.addEventListener("submit", (event: Event) => {
  event.preventDefault();
  sendNumbers(true);
});
addEventListener("pagehide", () => {
  added = [];
  sums.cancel();
});
