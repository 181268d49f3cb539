// A Worker for tests/resumable_workers.test.ts, run by miniflare with an R2
// bucket `BUCKET` and the Durable Object namespace `UPLOADS`: resumable
// uploads at /uploads (createResumableUploadHandler over
// createResumableWorkersStore), and GET /objects/<id> reporting the size
// and SHA-256 of an upload's R2 object (404 while there is none).

import { createHash } from "node:crypto";
import { createResumableUploadHandler } from "../lib/http/mod.ts";
import {
  createHasher,
  createResumableUploadObject,
  createResumableWorkersStore,
  type DurableObjectNamespaceLike,
  type ResumableR2BucketLike,
} from "../lib/runtime/workers.ts";

interface Env {
  BUCKET: ResumableR2BucketLike;
  UPLOADS: DurableObjectNamespaceLike;
}

export const ResumableUploads = createResumableUploadObject({
  bucket: (env) => (env as unknown as Env).BUCKET,
  partBytes: 5 * 1024 * 1024,
});

let handler: ((request: Request) => Promise<Response>) | undefined;

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
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
