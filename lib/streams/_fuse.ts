// The library's own transform streams (ScanStream, MapStream) register their
// per-chunk step here, so that a consumer in a later layer that owns both
// ends of such a stream (the RPC server, for a stream a bidi handler
// returns) can apply the step in its own loop instead of a web-stream hop
// each way. The step is exactly the stream's transform: same function,
// same state (a scan's accumulator, a map's index), same errors.

/** One chunk in, one value (or a promise of it) out. */
export type FusedStep = (chunk: unknown) => unknown;

const steps = new WeakMap<TransformStream, () => FusedStep>();

/** Registers `stream`'s step (called by the stream's constructor). */
export function registerFusable(
  stream: TransformStream,
  step: () => FusedStep,
): void {
  steps.set(stream, step);
}

/**
 * The step of one of the library's transform streams, when nothing has
 * used it yet (both sides unlocked), after locking both sides so that
 * nothing else can; `undefined` for any other value.
 */
export function takeFusedStep(value: unknown): FusedStep | undefined {
  if (!(value instanceof TransformStream)) return undefined;
  const step = steps.get(value);
  if (!step || value.readable.locked || value.writable.locked) return undefined;
  // Held, never released: the stream is the step's from now on.
  value.writable.getWriter();
  value.readable.getReader();
  steps.delete(value);
  return step();
}
