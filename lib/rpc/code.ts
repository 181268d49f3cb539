/**
 * The 17 status codes shared by gRPC and Connect (`OK` and the 16 error
 * codes), with gRPC's numbering. Connect spells them in snake case
 * (`out_of_range`); {@linkcode RpcError} converts.
 *
 * @example Check a failed call's code
 * ```ts
 * import { Code, RpcError } from "@sluice/streams/rpc";
 * import assert from "node:assert/strict";
 *
 * const error = new RpcError(Code.OutOfRange, "Cannot add 1: int64 overflow");
 * assert.equal(error.code, 11);
 * ```
 */
export const Code = {
  /** Not an error; returned on success. */
  OK: 0,
  /** The operation was cancelled, typically by the caller. */
  Canceled: 1,
  /** Unknown error, or an error from another error space. */
  Unknown: 2,
  /** The client specified an invalid argument. */
  InvalidArgument: 3,
  /** The deadline expired before the operation could complete. */
  DeadlineExceeded: 4,
  /** Some requested entity was not found. */
  NotFound: 5,
  /** The entity a client attempted to create already exists. */
  AlreadyExists: 6,
  /** The caller may not execute the operation. */
  PermissionDenied: 7,
  /** Some resource has been exhausted, such as a message size limit. */
  ResourceExhausted: 8,
  /** The system is not in a state required for the operation. */
  FailedPrecondition: 9,
  /** The operation was aborted, typically by a concurrency issue. */
  Aborted: 10,
  /** The operation was attempted past the valid range. */
  OutOfRange: 11,
  /** The operation is not implemented, supported or enabled. */
  Unimplemented: 12,
  /** An invariant expected by the underlying system has been broken. */
  Internal: 13,
  /** The service is currently unavailable; retrying may help. */
  Unavailable: 14,
  /** Unrecoverable data loss or corruption. */
  DataLoss: 15,
  /** The request lacks valid authentication credentials. */
  Unauthenticated: 16,
} as const;

/** A status code: one of the values of {@linkcode Code}. */
export type Code = typeof Code[keyof typeof Code];
