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

/**
 * What a listener's error says, by its code (node:net, Bun) or its name
 * (Deno's errors), and what to do.
 */
const LISTEN_FAILURES: readonly [string, string, string][] = [
  [
    "EADDRINUSE",
    "AddrInUse",
    "the address is already in use (another server listens there); stop that server or choose another port (port 0 takes a free one)",
  ],
  [
    "EACCES",
    "PermissionDenied",
    "permission denied (a port below 1024 needs privileges); choose a port from 1024 up",
  ],
  [
    "EADDRNOTAVAIL",
    "AddrNotAvailable",
    "the address is not one of this machine's; use 127.0.0.1, 0.0.0.0 or an address of its own",
  ],
];

/**
 * The error of a listener that could not start, made to name the address
 * and what to do when the address is taken, needs privileges or is not this
 * machine's (Deno's said "Address already in use (os error 98)" and nothing
 * of which). Any other error is returned as it is.
 */
export function listenFailed(
  error: unknown,
  hostname: string,
  port: number,
): unknown {
  const { code, name } = (error ?? {}) as { code?: unknown; name?: unknown };
  const said = LISTEN_FAILURES.find(([c, n]) => code === c || name === n);
  if (said === undefined) return error;
  // Not the URL's host, which leaves out port 80.
  const where = `${serverUrl(hostname, port).hostname}:${port}`;
  return new Error(`Cannot serve on ${where}: ${said[2]}`, { cause: error });
}
