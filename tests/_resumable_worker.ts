// A Worker for tests/resumable_workers*.test.ts, run by miniflare with an
// R2 bucket `BUCKET` and the Durable Object namespace `UPLOADS`: resumable
// uploads at /uploads (createResumableUploadHandler over
// createResumableWorkersStore), GET /objects/<id> reporting the size and
// SHA-256 of an upload's R2 object (404 while there is none), GET
// /published/<id> answering 200 if the upload object ever wrote the
// upload's final key (a put or a completed multipart upload; recorded in
// the bucket under published/), and GET /instance giving a random id made
// once per isolate.

import { createHash } from "node:crypto";
import { createResumableUploadHandler } from "../lib/http/mod.ts";
import {
  createHasher,
  createResumableUploadObject,
  createResumableWorkersStore,
  type DurableObjectNamespaceLike,
  type ResumableR2BucketLike,
} from "../lib/runtime/workers.ts";
import type { R2MultipartUploadLike } from "../lib/runtime/r2_sink.ts";

interface Env {
  BUCKET: ResumableR2BucketLike;
  UPLOADS: DurableObjectNamespaceLike;
}

/** The bucket, recording each write of a final key under published/. */
function recording(bucket: ResumableR2BucketLike): ResumableR2BucketLike {
  const mark = (key: string) => bucket.put(`published/${key}`, "");
  const wrap = (key: string, upload: R2MultipartUploadLike) => ({
    uploadId: (upload as { uploadId?: string }).uploadId,
    uploadPart: upload.uploadPart.bind(upload),
    abort: upload.abort.bind(upload),
    async complete(parts: Parameters<R2MultipartUploadLike["complete"]>[0]) {
      const result = await upload.complete(parts);
      await mark(key);
      return result;
    },
  });
  return {
    async put(key, value, options) {
      const result = await bucket.put(key, value, options);
      await mark(key);
      return result;
    },
    createMultipartUpload: async (key, options) =>
      wrap(key, await bucket.createMultipartUpload(key, options)),
    resumeMultipartUpload: (key, uploadId) =>
      wrap(key, bucket.resumeMultipartUpload(key, uploadId)),
    get: (key) => bucket.get(key),
    delete: (key) => bucket.delete(key),
  };
}

export const ResumableUploads = createResumableUploadObject({
  bucket: (env) => recording((env as unknown as Env).BUCKET),
  partBytes: 5 * 1024 * 1024,
});

let handler: ((request: Request) => Promise<Response>) | undefined;
let instance: string | undefined;

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/instance") {
      instance ??= crypto.randomUUID();
      return new Response(instance);
    }
    if (url.pathname.startsWith("/published/")) {
      const id = url.pathname.slice("/published/".length);
      const marker = await env.BUCKET.get(`published/uploads/${id}`);
      await marker?.body.cancel();
      return new Response(null, { status: marker ? 200 : 404 });
    }
    if (url.pathname.startsWith("/objects/")) {
      const id = url.pathname.slice("/objects/".length);
      const object = await env.BUCKET.get(`uploads/${id}`);
      if (!object) return new Response("no object", { status: 404 });
      const hash = createHash("sha256");
      let size = 0;
      for await (const chunk of object.body) {
        hash.update(chunk);
        size += chunk.byteLength;
      }
      return Response.json({ size, sha256: hash.digest("base64") });
    }
    handler ??= createResumableUploadHandler({
      store: createResumableWorkersStore(env.UPLOADS),
      hasher: createHasher,
      maxBytes: 256 * 1024 * 1024,
    });
    return await handler(request);
  },
};
