// Shared by the Deno.bench files: `BENCH_SMOKE=1` (set by `deno task
// bench:smoke`) runs each case a few times only, to prove the files still
// work; otherwise Deno.bench picks the iteration counts.

/** Extra Deno.bench options: a few iterations in smoke mode. */
export function benchOptions(): { n?: number; warmup?: number } {
  const smoke = Deno.env.get("BENCH_SMOKE") === "1";
  return smoke ? { n: 3, warmup: 1 } : {};
}
