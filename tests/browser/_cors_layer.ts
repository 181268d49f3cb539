// The CORS layer the browser suite's cross-origin tests call through, built
// from a `cors` object (`@sluice/streams/rpc`'s or `@sluice/streams/http`'s)
// as docs/browser.md shows: pages of the test server's own origins
// (127.0.0.1) may call it by another name (localhost). It answers only
// preflights, the OPTIONS requests with Access-Control-Request-Method, and
// passes any other request (tus's own OPTIONS too) to the handler.

/** The lists a `cors` object holds. */
export interface CorsLists {
  readonly allowedMethods: readonly string[];
  readonly allowedHeaders: readonly string[];
  readonly exposedHeaders: readonly string[];
}

/** Headers of the tests' own, added to the lists. */
export interface CorsExtras {
  /** Request headers of the page's own (`x-tenant`). */
  allowHeaders?: string[];
  /** Response headers of the server's own (`x-served-by`). */
  exposeHeaders?: string[];
  /** Whether responses expose any header (default true). */
  expose?: () => boolean;
}

/** `handler` behind a CORS layer built from `lists`. */
export function corsLayer(
  lists: CorsLists,
  extras: CorsExtras = {},
): (
  request: Request,
  handler: (request: Request) => Promise<Response>,
) => Promise<Response> {
  return async (request, handler) => {
    const origin = request.headers.get("origin");
    const allowed = origin !== null &&
        /^https?:\/\/127\.0\.0\.1:\d+$/.test(origin)
      ? origin
      : undefined;
    if (
      request.method === "OPTIONS" &&
      request.headers.has("access-control-request-method")
    ) {
      const headers = new Headers({ vary: "origin" });
      if (allowed !== undefined) {
        headers.set("access-control-allow-origin", allowed);
        headers.set(
          "access-control-allow-methods",
          lists.allowedMethods.join(", "),
        );
        headers.set(
          "access-control-allow-headers",
          [...lists.allowedHeaders, ...extras.allowHeaders ?? []].join(", "),
        );
        headers.set("access-control-max-age", "600");
      }
      return new Response(null, { status: 204, headers });
    }
    const response = await handler(request);
    response.headers.append("vary", "origin");
    if (allowed !== undefined) {
      response.headers.set("access-control-allow-origin", allowed);
      if (extras.expose?.() ?? true) {
        response.headers.set(
          "access-control-expose-headers",
          [...lists.exposedHeaders, ...extras.exposeHeaders ?? []].join(", "),
        );
      }
    }
    return response;
  };
}
