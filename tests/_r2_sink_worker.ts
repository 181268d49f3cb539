// A Worker for tests/r2_sink_workerd.test.ts, run by miniflare with a
// local R2 bucket `BUCKET`: PUT /objects/<key> stores the body with
// createR2Sink after checking it as a receiver would (Content-Digest, a
// byte limit), POST /forms/<key> stores each file of a multipart form as
// <key>-<n> through createUploadHandler's multipart mode and createR2Sink,
// GET /objects/<key> reads the object back, and GET /settled/<key> waits
// for the uploads to that key (or its form's files) to end and reports how
// many multipart uploads were left open.

import { createHash } from "node:crypto";
import { parseDigestHeader } from "../lib/http/digest_header.ts";
import { createUploadHandler } from "../lib/http/upload_handler.ts";
import { createR2Sink, type R2BucketLike } from "../lib/runtime/workers.ts";

interface Env {
  BUCKET: R2BucketLike & {
    get(key: string): Promise<
      { arrayBuffer(): Promise<ArrayBuffer>; etag: string } | null
    >;
    resumeMultipartUpload(
      key: string,
      uploadId: string,
    ): {
      uploadPart(n: number, v: string): Promise<unknown>;
      abort(): Promise<void>;
    };
  };
}

const PART = 5 * 1024 * 1024;
// Per key: the uploads in flight and every multipart upload id created.
const inFlight = new Map<string, Set<Promise<unknown>>>();
const created: Array<{ key: string; uploadId: string }> = [];

/** The bucket, recording each multipart upload it starts. */
function recording(bucket: Env["BUCKET"]): R2BucketLike {
  return {
    put: (key, value, options) => bucket.put(key, value, options),
    createMultipartUpload: async (key, options) => {
      const upload = await bucket.createMultipartUpload(key, options) as
        & Awaited<ReturnType<R2BucketLike["createMultipartUpload"]>>
        & { uploadId: string };
      created.push({ key, uploadId: upload.uploadId });
      return upload;
    },
  };
}

function hexOf(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function store(request: Request, env: Env, key: string) {
  const expected = request.headers.has("content-digest")
    ? parseDigestHeader(request.headers.get("content-digest")!).get("sha-256")
    : undefined;
  const maxBytes = Number(request.headers.get("x-max-bytes") ?? Infinity);
  const hash = createHash("sha256");
  let bytes = 0;
  const check = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      bytes += chunk.length;
      if (bytes > maxBytes) throw new RangeError("over maxBytes");
      hash.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      const actual = new Uint8Array(hash.digest());
      if (expected && hexOf(actual) !== hexOf(expected)) {
        throw new Error("Content-Digest mismatch");
      }
    },
  });
  await request.body!.pipeThrough(check).pipeTo(
    createR2Sink(recording(env.BUCKET), key, { partBytes: PART }),
  );
  return bytes;
}

/** A form's files, each to <key>-<n> through its own R2 sink. */
function storeForm(request: Request, env: Env, key: string) {
  let files = 0;
  return createUploadHandler({
    multipart: {
      sink: () =>
        createR2Sink(recording(env.BUCKET), `${key}-${files++}`, {
          partBytes: PART,
        }),
    },
  })(request);
}

async function openUploads(env: Env, key: string): Promise<number> {
  let open = 0;
  const ours = (u: { key: string }) =>
    u.key === key || u.key.startsWith(`${key}-`);
  for (const upload of created.filter(ours)) {
    try {
      const resumed = env.BUCKET.resumeMultipartUpload(
        upload.key,
        upload.uploadId,
      );
      await resumed.uploadPart(1, "probe");
      open++; // it still took a part: an orphan
      await resumed.abort();
    } catch {
      // aborted or completed: as it should be
    }
  }
  return open;
}

/** `task`, counted among the uploads in flight to `key` until it settles. */
function tracked<T>(key: string, task: Promise<T>): Promise<T> {
  const set = inFlight.get(key) ?? new Set();
  inFlight.set(key, set);
  const settled = task.catch(() => {});
  set.add(settled);
  settled.then(() => set.delete(settled));
  return task;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const [, route, key] = url.pathname.split("/");
    if (route === "objects" && request.method === "PUT") {
      const task = tracked(key, store(request, env, key));
      try {
        return Response.json({ bytes: await task }, { status: 201 });
      } catch (error) {
        const status = error instanceof RangeError ? 413 : 400;
        return new Response(String(error), { status });
      }
    }
    if (route === "forms" && request.method === "POST") {
      return await tracked(key, storeForm(request, env, key));
    }
    if (route === "objects" && request.method === "GET") {
      const object = await env.BUCKET.get(key);
      if (!object) return new Response("no object", { status: 404 });
      const bytes = new Uint8Array(await object.arrayBuffer());
      return Response.json({
        size: bytes.length,
        sha256: hexOf(
          new Uint8Array(createHash("sha256").update(bytes).digest()),
        ),
      });
    }
    if (route === "settled") {
      await Promise.all(inFlight.get(key) ?? []);
      return Response.json({ open: await openUploads(env, key) });
    }
    return new Response("not found", { status: 404 });
  },
};
