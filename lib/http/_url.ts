// A URL a client is given, checked at once: relative to the page's (or
// worker's) location where there is one, as fetch would resolve it.

/**
 * `url` as an absolute URL, or a TypeError naming it (`what`: the
 * client's "Cannot <what>"): one with a scheme that does not parse is not a
 * valid URL, one that reads as a host and a port ("localhost:8080/x",
 * which URL takes for the scheme "localhost:", or "[::1]:8080/x") has no
 * scheme.
 */
export function resolveUrl(what: string, url: string | URL): URL {
  const text = String(url);
  const quoted = JSON.stringify(text.slice(0, 64));
  if (looksLikeHostAndPort(text)) {
    throw new TypeError(
      `Cannot ${what}: ${quoted} has no scheme (write ${
        JSON.stringify(`http://${text}`.slice(0, 64))
      })`,
    );
  }
  const parsed = parseUrl(url);
  if (parsed !== undefined) return parsed;
  const authority = /^[a-z][a-z0-9+.-]*:[/\\]*([^/\\?#]*)/i.exec(text)?.[1];
  if (authority !== undefined) {
    throw new TypeError(
      `Cannot ${what}: ${quoted} is not a valid URL${
        /[[\]]|:.*:/.test(authority)
          ? " (an IPv6 host goes in brackets, the port after them: http://[::1]:8080/)"
          : ""
      }`,
    );
  }
  throw new TypeError(
    `Cannot ${what}: ${quoted} is not a URL${
      locationHref() === undefined
        ? " (a relative URL needs a page's location)"
        : ""
    }`,
  );
}

/**
 * `url` as an absolute `http:` or `https:` URL, the only ones fetch sends
 * to (Deno said "Url scheme 'ftp' not supported", Bun sent "localhost:8080/x"
 * to http://localhost:8080), or a TypeError naming it (see resolveUrl).
 */
export function resolveHttpUrl(what: string, url: string | URL): URL {
  const target = resolveUrl(what, url);
  if (target.protocol !== "http:" && target.protocol !== "https:") {
    throw new TypeError(
      `Cannot ${what}: url must be an http: or https: URL, got ${
        JSON.stringify(String(url).slice(0, 64))
      }`,
    );
  }
  return target;
}

/**
 * Whether `text` reads as a host and a port with no scheme before them:
 * `[::1]:8080/x` (no URL at all) or `localhost:8080/x` (a URL of the
 * scheme "localhost:"), never a scheme fetch or WebSocket knows ("http:8080"
 * stays what URL makes of it).
 */
function looksLikeHostAndPort(text: string): boolean {
  const host = /^(\[[0-9a-f:.]*\]|[a-z0-9.-]+):\d{1,5}(?:[/?#]|$)/i.exec(text)
    ?.[1];
  return host !== undefined && !/^(?:https?|wss?|ftp|file)$/i.test(host);
}

/**
 * `url` as an absolute URL, relative to the page's location where there is
 * one; undefined if it is none.
 */
export function parseUrl(url: string | URL): URL | undefined {
  const base = locationHref();
  return URL.canParse(url, base) ? new URL(url, base) : undefined;
}

/**
 * Whether `url` is of another origin than the page's (or worker's)
 * location; false where there is no location.
 */
export function isCrossOrigin(url: URL): boolean {
  const href = locationHref();
  return href !== undefined && URL.canParse(href) &&
    new URL(href).origin !== url.origin;
}

/** The page's (or worker's) location, if there is one. */
function locationHref(): string | undefined {
  try {
    // Older Deno without --location threw on access.
    return (globalThis as { location?: { href?: string } }).location?.href;
  } catch {
    return undefined;
  }
}

/**
 * A handler's `requestPathPrefix` as it is compared with a request URL's
 * path: "" for the root, else a leading slash, no trailing one, and
 * encoded as a URL's path is ("/ñ" is "/%C3%B1") with percent encodings
 * normalised as {@linkcode requestPath} does ("/%61pi" is "/api"); a
 * TypeError naming it
 * (`what`: "Cannot <what>") without its leading slash, with a `*`, `?` or
 * `#` (a router's pattern "/rpc/*" was taken for the path "/rpc/*", and
 * every call was 404; a query or fragment was dropped without a word), or
 * with "//" for its leading slash (a `Location` of "//cdn.example.com/x"
 * sends clients to the host cdn.example.com).
 */
export function pathPrefix(
  what: string,
  value: string | undefined,
  name = "requestPathPrefix",
): string {
  if (value === undefined || value === "" || value === "/") return "";
  if (typeof value !== "string" || !value.startsWith("/")) {
    throw new TypeError(
      `Cannot ${what}: ${name} must start with "/", got ${
        JSON.stringify(String(value))
      }`,
    );
  }
  const quoted = JSON.stringify(value);
  const at = value.search(/[*?#]/);
  if (at !== -1) {
    const char = value[at];
    const before = JSON.stringify(
      value.slice(0, at).replace(/\/+$/, "") || "/",
    );
    const hint = char === "?"
      ? `a path prefix has no query: write ${before}`
      : char === "#"
      ? `a path prefix has no fragment: write ${before}`
      : /^\*+$/.test(value.slice(at))
      ? `a path prefix, not a route pattern: drop the "${
        value.slice(value[at - 1] === "/" ? at - 1 : at)
      }", as ${before} covers every path under it`
      : "a path prefix, not a route pattern: give the fixed path the handler is mounted under";
    throw new TypeError(
      `Cannot ${what}: ${name} must be a path without "${char}", got ${quoted} (${hint})`,
    );
  }
  const path = new URL(`http://localhost${value}`).pathname;
  if (path.startsWith("//")) {
    throw new TypeError(
      `Cannot ${what}: ${name} must start with one "/", got ${quoted} (${
        value.startsWith("//") ? "" : `read as ${JSON.stringify(path)}: `
      }"//" starts a host name in a URL: write ${
        JSON.stringify(path.replace(/^\/+/, "/").replace(/\/+$/, "") || "/")
      })`,
    );
  }
  return normalPercent(path.replace(/\/+$/, ""));
}

/**
 * A request URL's path as it is compared with a `pathPrefix`, normalised
 * as the prefix is (RFC 3986 §6.2.2): percent encodings of unreserved
 * characters decoded ("%61pi" is "api"), the others in upper case ("%c3%b1"
 * is "%C3%B1"; a client that sent the lower case got 404). A URL that does
 * not parse (Deno passes on one of a Host header such as `::1` or `a b`)
 * gives the path it names, as a handler needs no host: it threw, and each
 * such request was answered 500 and logged.
 */
export function requestPath(url: string): string {
  // A relative URL (Bun's for an empty Host) is a path: "//evil/rpc/..."
  // resolved against a base is the host "evil" and the path "/rpc/...".
  if (url.startsWith("/")) {
    return normalPercent(new URL(`http://localhost${url}`).pathname);
  }
  // Parsed once (on every request): canParse and then new URL took two.
  let parsed: URL;
  try {
    parsed = new URL(url, "http://localhost");
  } catch {
    // Scheme and authority cut off, the rest parses after any host.
    parsed = new URL(
      `http://localhost${
        url.replace(/^[a-z][a-z0-9+.-]*:[/\\]*[^/\\?#]*/i, "")
      }`,
    );
  }
  return normalPercent(parsed.pathname);
}

/** Characters RFC 3986 (§2.3) calls unreserved: never encoded to mean more. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * A path's percent encodings as RFC 3986 §6.2.2 compares them: unreserved
 * characters decoded, other escapes (a reserved "/" or "?", any byte of a
 * UTF-8 character) kept, in upper case.
 */
function normalPercent(path: string): string {
  return path.includes("%")
    ? path.replace(/%[0-9a-f]{2}/gi, (escape) => {
      const char = String.fromCharCode(parseInt(escape.slice(1), 16));
      return UNRESERVED.test(char) ? char : escape.toUpperCase();
    })
    : path;
}

/**
 * A URL in an error: its origin and path, without the query (a sign-in
 * page's may carry tokens, or the upload's URL to return to, which is a
 * capability; a Connect GET's, the message) and fragment; one that does
 * not parse, its first 64 characters, quoted.
 */
export function shownUrl(url: string, base?: string): string {
  if (!URL.canParse(url, base)) return JSON.stringify(url.slice(0, 64));
  const { origin, pathname } = new URL(url, base);
  return origin === "null"
    ? JSON.stringify(url.slice(0, 64))
    : origin + pathname;
}

/** The statuses that redirect (RFC 9110, 15.4); 304 does not. */
const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/**
 * Whether `response`'s status redirects: one of RFC 9110's five, or
 * another 3xx that names a `Location` (not a 304, which names none).
 */
export function redirectStatus(response: Response): boolean {
  return REDIRECTS.has(response.status) ||
    (response.status >= 300 && response.status < 400 &&
      response.headers.has("location"));
}
