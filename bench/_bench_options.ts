// Shared by the Deno.bench files: `BENCH_SMOKE=1` (set by `deno task
// bench:smoke`) runs each case a few times only, to prove the files still
// work; otherwise each case runs for about CASE_MS.

/** What a case runs for, about, after a fifth as many warm-up iterations. */
const CASE_MS = 100;

/** A Deno.bench case whose function takes no bench context. */
export interface BenchCase {
  name: string;
  group?: string;
  baseline?: boolean;
  fn: () => void | Promise<void>;
}

/**
 * Registers `definition` with Deno.bench, with its iteration count set
 * from the fastest of three timed calls: enough for about CASE_MS (at
 * least 10). Deno.bench's own budget took about 0.8 s a case here, 19 s of
 * `deno task bench` for the 24 cases, where these ratios (2-100x against a
 * naive baseline) need far less.
 */
export async function bench(definition: BenchCase): Promise<void> {
  if (Deno.env.get("BENCH_SMOKE") === "1") {
    Deno.bench({ ...definition, n: 3, warmup: 1 });
    return;
  }
  let fastest = Infinity;
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    await definition.fn();
    fastest = Math.min(fastest, performance.now() - start);
  }
  const n = Math.max(10, Math.round(CASE_MS / Math.max(fastest, 0.01)));
  Deno.bench({ ...definition, n, warmup: Math.ceil(n / 5) });
}
