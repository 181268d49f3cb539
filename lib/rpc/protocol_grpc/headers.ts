// gRPC header names and the grpc-timeout format
// (doc/PROTOCOL-HTTP2.md: TimeoutValue is at most 8 digits, then a unit).

import { Code } from "../code.ts";
import { RpcError } from "../rpc_error.ts";
import { quote } from "../protocol/_quote.ts";

export const headerContentType = "content-type";
export const headerEncoding = "grpc-encoding";
export const headerAcceptEncoding = "grpc-accept-encoding";
export const headerTimeout = "grpc-timeout";
export const headerStatus = "grpc-status";
export const headerMessage = "grpc-message";
export const headerStatusDetails = "grpc-status-details-bin";
export const headerTe = "te";
export const headerUserAgent = "user-agent";

const units: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/**
 * Parses a grpc-timeout value into milliseconds.
 *
 * @throws {RpcError} `InvalidArgument` for a malformed value.
 */
export function parseTimeout(value: string | null): number | undefined {
  if (value === null) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) {
    throw new RpcError(
      Code.InvalidArgument,
      `Cannot parse grpc-timeout: ${
        quote(value)
      } is not 1 to 8 digits and a unit (H, M, S, m, u, n)`,
    );
  }
  return Number(match[1]) * units[match[2]];
}

/** Formats milliseconds as a grpc-timeout value, in the finest unit that fits. */
export function formatTimeout(ms: number): string {
  if (!(ms >= 0) || !Number.isFinite(ms)) {
    throw new RangeError(
      `Cannot format grpc-timeout: invalid timeout ${ms} ms`,
    );
  }
  const micros = Math.ceil(ms * 1000);
  if (micros < 1e8) return `${micros}u`;
  const millis = Math.ceil(ms);
  if (millis < 1e8) return `${millis}m`;
  const seconds = Math.ceil(ms / 1000);
  if (seconds < 1e8) return `${seconds}S`;
  const minutes = Math.ceil(ms / 60_000);
  if (minutes < 1e8) return `${minutes}M`;
  return `${Math.min(Math.ceil(ms / 3_600_000), 99_999_999)}H`;
}
