// upload() with progress in a browser page. Chromium cannot stream a fetch
// request body over HTTP/1.1 (it fails with ERR_ALPN_NEGOTIATION_FAILED),
// and a complete body gives fetch no progress; XMLHttpRequest reports upload
// progress on every protocol. Used only where XMLHttpRequest exists (pages,
// not Deno, Bun, Node or Workers), for a Blob or bytes and no custom fetch.
// The browser sends Content-Length itself (from the Blob); the other
// headers, abort and the response are as fetch would give them.

import type { ProgressCallback } from "../streams/progress_stream.ts";

/** The part of XMLHttpRequest used here (Deno's types do not declare it). */
interface Xhr {
  readonly status: number;
  readonly statusText: string;
  readonly response: ArrayBuffer | null;
  responseType: string;
  withCredentials: boolean;
  readonly upload: {
    addEventListener(
      type: "progress",
      listener: (event: { loaded: number; total: number }) => void,
    ): void;
    addEventListener(type: "load", listener: () => void): void;
  };
  open(method: string, url: string): void;
  setRequestHeader(name: string, value: string): void;
  getAllResponseHeaders(): string;
  send(body: Blob): void;
  abort(): void;
  addEventListener(type: string, listener: () => void): void;
}

type XhrConstructor = new () => Xhr;

function xhrConstructor(): XhrConstructor | undefined {
  return (globalThis as { XMLHttpRequest?: XhrConstructor }).XMLHttpRequest;
}

/** Whether this runtime has XMLHttpRequest (a browser page). */
export function hasXhr(): boolean {
  return typeof xhrConstructor() === "function";
}

/** Options of {@linkcode xhrUpload}, resolved by `upload`. */
export interface XhrUploadOptions {
  method: string;
  headers: Headers;
  onProgress: ProgressCallback;
  progressIntervalMs: number;
  total: number;
  signal?: AbortSignal;
  /** Cookies and HTTP authentication to another origin too. */
  withCredentials: boolean;
}

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

function parseHeaders(raw: string): Headers {
  const headers = new Headers();
  for (const line of raw.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    try {
      headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    } catch {
      // A header the Headers class refuses (invalid bytes) is left out, as
      // fetch would not expose it either.
    }
  }
  return headers;
}

/** Sends `body` with XMLHttpRequest and resolves with the response. */
export function xhrUpload(
  url: string | URL,
  body: Blob,
  options: XhrUploadOptions,
): Promise<Response> {
  const { signal, onProgress, progressIntervalMs, total } = options;
  return new Promise<Response>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const Xhr = xhrConstructor()!;
    const xhr = new Xhr();
    const onAbort = () => xhr.abort();
    const done = () => signal?.removeEventListener("abort", onAbort);
    xhr.open(options.method, String(url));
    xhr.responseType = "arraybuffer";
    if (options.withCredentials) xhr.withCredentials = true;
    for (const [name, value] of options.headers) {
      // The browser sets Content-Length from the body (and refuses it).
      if (name !== "content-length") xhr.setRequestHeader(name, value);
    }
    let last = -Infinity;
    let reported = -1;
    // An onProgress that throws ends the upload with what it threw, as the
    // fetch path's ProgressStream does (it was only reported to the page).
    let failure: { error: unknown } | undefined;
    const report = (sent: number) => {
      reported = sent;
      try {
        onProgress(sent, total);
      } catch (error) {
        failure ??= { error };
        xhr.abort();
      }
    };
    // The bytes sent so far, and whether the whole body went (the upload's
    // own load event: a server that answers early stops it before).
    let loaded = 0;
    let sent = false;
    xhr.upload.addEventListener("progress", (event) => {
      loaded = event.loaded;
      const now = Date.now();
      if (now - last >= progressIntervalMs || event.loaded === total) {
        last = now;
        report(event.loaded);
      }
    });
    xhr.upload.addEventListener("load", () => {
      sent = true;
    });
    xhr.addEventListener("load", () => {
      done();
      // The end's count, once, as ProgressStream reports it (unless it was
      // the last one reported): the whole body if it went, else what went
      // (it claimed the whole body when a server answered 413 after a few
      // MiB).
      const end = sent ? total : loaded;
      if (reported !== end) report(end);
      if (failure) return reject(failure.error);
      const status = xhr.status;
      resolve(
        new Response(NULL_BODY_STATUS.has(status) ? null : xhr.response, {
          status,
          statusText: xhr.statusText,
          headers: parseHeaders(xhr.getAllResponseHeaders()),
        }),
      );
    });
    xhr.addEventListener("error", () => {
      done();
      reject(
        new TypeError("Cannot upload: the request failed (network error)"),
      );
    });
    xhr.addEventListener("timeout", () => {
      done();
      reject(new TypeError("Cannot upload: the request timed out"));
    });
    xhr.addEventListener("abort", () => {
      done();
      reject(
        failure ? failure.error : signal?.reason ??
          new DOMException("The upload was aborted", "AbortError"),
      );
    });
    signal?.addEventListener("abort", onAbort, { once: true });
    xhr.send(body);
  });
}
