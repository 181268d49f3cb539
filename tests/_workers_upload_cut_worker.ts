// A Worker for tests/workers_upload_cut.test.ts, run by miniflare with a
// local R2 bucket `BUCKET` and a service binding `SELF` to itself:
// PUT /forward/<key> sends its request's body on with upload() and
// onProgress through the binding (`?length` passes the request's
// Content-Length as `contentLength`) to PUT /receive/<key>, which stores it
// with createUploadHandler and createR2Sink. GET /settled/<key> reports
// the forward's outcome and, if the forward reached it, the receiver's
// status, once both have settled (202 until then); GET /objects/<key>
// reports the stored object's size.

import { upload } from "../lib/http/upload.ts";
import { createUploadHandler } from "../lib/http/upload_handler.ts";
import { createR2Sink, type R2BucketLike } from "../lib/runtime/workers.ts";

interface Env {
  BUCKET: R2BucketLike & {
    head(key: string): Promise<{ size: number } | null>;
  };
  SELF: { fetch: typeof fetch };
}

interface Forwarded {
  /** Whether upload() called the binding's fetch. */
  fetched: boolean;
  /** The last byte count onProgress was given. */
  progressed: number;
  status?: number;
  body?: string;
  error?: string;
}

const PART = 5 * 1024 * 1024;
// Per key: the forward's outcome and the receiver's status, once settled.
// GET /settled asks, it does not wait: workerd failed a request waiting on
// a promise another request was to resolve ("The script will never
// generate a response"), once in a clean-clone run.
const forwards = new Map<string, Forwarded>();
const receivers = new Map<string, number>();

async function forward(
  request: Request,
  env: Env,
  key: string,
): Promise<Forwarded> {
  const outcome: Forwarded = { fetched: false, progressed: 0 };
  const length = request.headers.get("content-length");
  try {
    const response = await upload(
      new URL(`/receive/${key}`, request.url),
      request.body!,
      {
        method: "PUT",
        contentLength: new URL(request.url).searchParams.has("length") &&
            length !== null
          ? Number(length)
          : undefined,
        fetch: (input, init) => {
          outcome.fetched = true;
          return env.SELF.fetch(input, init);
        },
        onProgress: (sent) => outcome.progressed = sent,
      },
    );
    outcome.status = response.status;
    outcome.body = await response.text();
  } catch (error) {
    outcome.error = String(error);
  }
  return outcome;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const [, route, key] = url.pathname.split("/");
    if (route === "forward") {
      const outcome = await forward(request, env, key);
      forwards.set(key, outcome);
      return Response.json(outcome, { status: outcome.status ?? 500 });
    }
    if (route === "receive") {
      try {
        const response = await createUploadHandler({
          sink: () => createR2Sink(env.BUCKET, key, { partBytes: PART }),
        })(request);
        receivers.set(key, response.status);
        return response;
      } catch (error) {
        receivers.set(key, 0);
        throw error;
      }
    }
    if (route === "settled") {
      const forwarded = forwards.get(key);
      const received = receivers.get(key);
      if (!forwarded || (forwarded.fetched && received === undefined)) {
        return Response.json({ pending: true }, { status: 202 });
      }
      return Response.json({ forwarded, received });
    }
    if (route === "objects") {
      const object = await env.BUCKET.head(key);
      return Response.json(object ? { size: object.size } : null);
    }
    return new Response("not found", { status: 404 });
  },
};
