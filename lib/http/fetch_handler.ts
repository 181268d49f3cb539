/**
 * A request handler in the shape every web server takes: `Deno.serve`,
 * `Bun.serve`, a Workers `fetch`, or a router
 * (`app.all("/upload", (c) => handler(c.req.raw))`). The library's
 * `create…Handler` factories return one.
 *
 * @example Mount a handler in Deno.serve
 * ```ts ignore
 * import { createEchoHandler, type FetchHandler } from "@sluice/streams/http";
 *
 * const handler: FetchHandler = createEchoHandler();
 * Deno.serve(handler);
 * ```
 */
export type FetchHandler = (request: Request) => Promise<Response>;
