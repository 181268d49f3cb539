// A URL a client is given, checked at once: relative to the page's (or
// worker's) location where there is one, as fetch would resolve it.

/**
 * `url` as an absolute URL, or a TypeError naming it (`what`: the
 * client's "Cannot <what>").
 */
export function resolveUrl(what: string, url: string | URL): URL {
  const parsed = parseUrl(url);
  if (parsed === undefined) {
    throw new TypeError(
      `Cannot ${what}: ${
        JSON.stringify(String(url).slice(0, 64))
      } is not a URL${
        locationHref() === undefined
          ? " (a relative URL needs a page's location)"
          : ""
      }`,
    );
  }
  return parsed;
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
 * encoded as a URL's path is ("/ñ" is "/%C3%B1"); a TypeError naming it
 * (`what`: "Cannot <what>") without its leading slash.
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
  return upperPercent(
    new URL(`http://localhost${value}`).pathname.replace(/\/+$/, ""),
  );
}

/**
 * A request URL's path as it is compared with a `pathPrefix`: its percent
 * encodings in upper case, as the prefix's (RFC 3986 §6.2.2.1: "%c3%b1" is
 * "%C3%B1"; a client that sent the lower case got 404).
 */
export function requestPath(url: string): string {
  return upperPercent(new URL(url, "http://localhost").pathname);
}

function upperPercent(path: string): string {
  return path.includes("%")
    ? path.replace(/%[0-9a-f]{2}/gi, (escape) => escape.toUpperCase())
    : path;
}
