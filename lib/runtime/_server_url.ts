// What serve and serveHttp2 report as their URL, and the host they listen
// on: an IPv6 address goes in brackets in a URL (RFC 3986) and without them
// to a listener.

/** The server's URL; an IPv6 address goes in brackets (RFC 3986). */
export function serverUrl(hostname: string, port: number): URL {
  const host = hostname.includes(":") && !hostname.startsWith("[")
    ? `[${hostname}]`
    : hostname;
  return new URL(`http://${host}:${port}/`);
}

/** The host to listen on: `[::1]` as `::1`. */
export function listenHost(hostname: string): string {
  return hostname.startsWith("[") && hostname.endsWith("]")
    ? hostname.slice(1, -1)
    : hostname;
}
