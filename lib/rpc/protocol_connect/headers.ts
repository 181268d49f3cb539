// Connect header names and the connect-timeout-ms format (at most 10
// digits of milliseconds).

import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import { quote } from "../protocol/_quote.ts";

export const headerContentType = "content-type";
export const headerProtocolVersion = "connect-protocol-version";
export const headerTimeout = "connect-timeout-ms";
export const headerStreamEncoding = "connect-content-encoding";
export const headerStreamAcceptEncoding = "connect-accept-encoding";
export const headerUnaryEncoding = "content-encoding";
export const headerUnaryAcceptEncoding = "accept-encoding";
export const headerUserAgent = "user-agent";

/**
 * Parses connect-timeout-ms into milliseconds.
 *
 * @throws {RpcError} `InvalidArgument` for a malformed value.
 */
export function parseTimeout(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (!/^\d{1,10}$/.test(value)) {
    throw new RpcError(
      Code.InvalidArgument,
      `Cannot parse connect-timeout-ms: ${quote(value)} is not 1 to 10 digits`,
    );
  }
  return Number(value);
}

/** Formats milliseconds for connect-timeout-ms (rounded up). */
export function formatTimeout(ms: number): string {
  if (!(ms >= 0) || !Number.isFinite(ms)) {
    throw new RangeError(
      `Cannot format connect-timeout-ms: invalid timeout ${ms} ms`,
    );
  }
  return String(Math.min(Math.ceil(ms), 9_999_999_999));
}
