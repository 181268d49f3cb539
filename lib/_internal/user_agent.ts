// What runs this code, from `navigator.userAgent` (web standard; Deno, Bun,
// Node 21+ and Workers set one too): the core names no runtime global.

function userAgent(): string {
  const agent = (globalThis as { navigator?: { userAgent?: string } })
    .navigator?.userAgent;
  return typeof agent === "string" ? agent : "";
}

/** Whether this is a browser: its user agent starts with `Mozilla/`. */
export function isBrowser(): boolean {
  return userAgent().startsWith("Mozilla/");
}

/** Whether this is Bun (JavaScriptCore): its user agent starts with `Bun/`. */
export function isBun(): boolean {
  return userAgent().startsWith("Bun/");
}

/**
 * Whether this is Cloudflare Workers (workerd): its user agent is
 * `Cloudflare-Workers`.
 */
export function isWorkers(): boolean {
  return userAgent() === "Cloudflare-Workers";
}
