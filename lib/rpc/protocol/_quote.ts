// What an error message may repeat of a peer's input: at most 64
// characters, quoted, so that a 4 MiB field never comes back whole (over
// native gRPC an oversized grpc-message trailer loses the status itself).

/** The most characters of a peer's input an error message quotes. */
export const MAX_QUOTED_CHARS = 64;

/** `value` as a JSON string, cut to {@linkcode MAX_QUOTED_CHARS} plus "…". */
export function quote(value: string): string {
  return JSON.stringify(
    value.length > MAX_QUOTED_CHARS
      ? value.slice(0, MAX_QUOTED_CHARS) + "…"
      : value,
  );
}
