// What runs this code, from `navigator.userAgent` (web standard; Deno, Bun,
// Node 21+ and Workers set one too): the core names no runtime global.

function userAgent(): string {
  const agent = (globalThis as { navigator?: { userAgent?: string } })
    .navigator?.userAgent;
  return typeof agent === "string" ? agent : "";
}

/**
 * Whether this is a browser: its user agent starts with `Mozilla/`, and is
 * not a DOM emulated for tests in a server runtime (jsdom's and happy-dom's
 * start so too, over the runtime's own fetch and Blobs: taken for a page,
 * an upload went through their XMLHttpRequest, which sent a runtime Blob as
 * the text "[object Blob]").
 */
export function isBrowser(): boolean {
  const agent = userAgent();
  return agent.startsWith("Mozilla/") && !/\bjsdom\/|\bHappyDOM\//.test(agent);
}

/** Whether this is Deno: its user agent starts with `Deno/`. */
export function isDeno(): boolean {
  return userAgent().startsWith("Deno/");
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
