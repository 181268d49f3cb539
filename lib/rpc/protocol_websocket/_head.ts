// The heads of the WebSocket RPC protocol (sluice.rpc.v1): the first
// envelope each side sends, a JSON object in a 5-byte-prefixed frame (the
// same framing as the Connect and gRPC-Web messages that follow it).
// docs/rpc-websocket.md specifies the wire format.

import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import { encodeFrame } from "../wire/_frame.ts";
import { quote } from "../protocol/_quote.ts";
import { type DuplexStream, writeOwned } from "../../streams/duplex_stream.ts";

/** The WebSocket subprotocol of RPC over WebSocket. */
export const WEBSOCKET_RPC_PROTOCOL = "sluice.rpc.v1";

/** The largest head accepted, in bytes (its JSON). */
export const MAX_HEAD_BYTES = 65536;

/** The client's head: the method path and the request headers. */
export interface RequestHead {
  path: string;
  headers: Headers;
}

/** The server's head: the HTTP status and the response headers. */
export interface ResponseHead {
  status: number;
  headers: Headers;
}

const encoder = new TextEncoder();

function pairs(headers: Headers): [string, string][] {
  const list: [string, string][] = [];
  headers.forEach((value, key) => list.push([key, value]));
  return list;
}

/** Encodes the client's head. */
export function encodeRequestHead(head: RequestHead): Uint8Array {
  return encodeFrame({
    flags: 0,
    data: encoder.encode(
      JSON.stringify({ path: head.path, headers: pairs(head.headers) }),
    ),
  });
}

/** Encodes the server's head. */
export function encodeResponseHead(head: ResponseHead): Uint8Array {
  return encodeFrame({
    flags: 0,
    data: encoder.encode(
      JSON.stringify({ status: head.status, headers: pairs(head.headers) }),
    ),
  });
}

/**
 * A malformed head: `code` is the reader's (INVALID_ARGUMENT for a server
 * reading a call's, INTERNAL for a client reading its response's).
 */
function malformed(what: string, why: string, code: Code): RpcError {
  return new RpcError(code, `Cannot ${what}: ${why}`);
}

/**
 * Reads a head from the start of `duplex`: its JSON object, and the bytes
 * read past it (the start of the body).
 */
export async function readHead(
  duplex: DuplexStream,
  what: string,
  code: Code,
): Promise<{ json: Record<string, unknown>; rest: Uint8Array | undefined }> {
  // Chunks are kept as they come and joined once: a head sent a byte per
  // message costs no more than one sent whole.
  const chunks: Uint8Array[] = [];
  let total = 0;
  let length = -1;
  const join = () => {
    const joined = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      joined.set(chunk, at);
      at += chunk.byteLength;
    }
    chunks.splice(0, chunks.length, joined);
    return joined;
  };
  while (length < 0 || total < 5 + length) {
    const chunk = await duplex.readPartial();
    if (chunk === null) {
      throw malformed(what, "the WebSocket ended before the head", code);
    }
    chunks.push(chunk);
    total += chunk.byteLength;
    if (length < 0 && total >= 5) {
      const prefix = join();
      if (prefix[0] !== 0) {
        throw malformed(what, `the head has flags ${prefix[0]}, not 0`, code);
      }
      length = new DataView(prefix.buffer, prefix.byteOffset).getUint32(1);
      if (length > MAX_HEAD_BYTES) {
        throw new RpcError(
          Code.ResourceExhausted,
          `Cannot ${what}: length ${length} exceeds the head limit ${MAX_HEAD_BYTES}`,
        );
      }
    }
  }
  const buffer = join();
  let json: unknown;
  const text = new TextDecoder().decode(buffer.subarray(5, 5 + length));
  try {
    json = JSON.parse(text);
  } catch {
    throw malformed(what, `the head is not JSON: ${quote(text)}`, code);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw malformed(what, "the head is not a JSON object", code);
  }
  const rest = buffer.byteLength > 5 + length
    ? buffer.subarray(5 + length)
    : undefined;
  return { json: json as Record<string, unknown>, rest };
}

/** The `headers` of a head: a list of `[name, value]` pairs. */
export function headersOf(
  json: Record<string, unknown>,
  what: string,
  code: Code,
): Headers {
  const list = json.headers ?? [];
  const headers = new Headers();
  if (!Array.isArray(list)) {
    throw malformed(what, "headers is not a list of [name, value] pairs", code);
  }
  for (const pair of list) {
    if (
      !Array.isArray(pair) || pair.length !== 2 ||
      typeof pair[0] !== "string" || typeof pair[1] !== "string"
    ) {
      throw malformed(
        what,
        "headers is not a list of [name, value] pairs",
        code,
      );
    }
    try {
      headers.append(pair[0], pair[1]);
    } catch {
      throw malformed(what, `invalid header ${quote(pair[0])}`, code);
    }
  }
  return headers;
}

/**
 * The body after a head: the bytes read past it, then the rest of the
 * input. Cancelling it calls `onCancel` (by default, closes `duplex` with
 * the reason).
 */
export function bodyAfterHead(
  duplex: DuplexStream,
  rest: Uint8Array | undefined,
  mapError: (error: unknown) => unknown = (error) => error,
  onCancel: (reason: unknown) => Promise<void> = (reason) =>
    duplex.close(reason ?? new Error("cancelled")),
): ReadableStream<Uint8Array> {
  let first = rest;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (first !== undefined) {
        controller.enqueue(first);
        first = undefined;
        return;
      }
      let chunk;
      try {
        chunk = await duplex.readPartial();
      } catch (error) {
        throw mapError(error);
      }
      if (chunk === null) controller.close();
      else controller.enqueue(chunk);
    },
    cancel: onCancel,
  }, { highWaterMark: 0 });
}

/**
 * Writes a body after the head, then half-closes: each chunk waits for the
 * socket's back-pressure. A failed write cancels the body with its error.
 */
export async function writeBody(
  duplex: DuplexStream,
  body: ReadableStream<Uint8Array> | Uint8Array | null | undefined,
): Promise<void> {
  if (body instanceof Uint8Array) {
    await writeOwned(duplex, body);
  } else if (body) {
    const reader = body.getReader();
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        await writeOwned(duplex, value);
      }
    } catch (error) {
      await reader.cancel(error).catch(() => {});
      throw error;
    }
  }
  await duplex.closeWrite();
}
