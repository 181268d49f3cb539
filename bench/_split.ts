// What the per-side lockstep scripts (bench/_h2_split.ts, bench/_h1_split.ts)
// share: a measured run's round-trip percentiles and, per round trip, the
// main thread's CPU of the client's own process and of the server's (from
// /proc/<pid>/task/<pid>/schedstat: less moved by a loaded machine than
// latency).
import fs from "node:fs";
import process from "node:process";

/** The main thread's time on a CPU, in ns. */
function cpuNs(pid: number): number {
  return Number(
    fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").split(" ")[0],
  );
}

/** A measured run: p50 and p99 of the round trips and CPU per round trip (µs). */
export interface SplitResult {
  p50: number;
  p99: number;
  cliUs: number;
  srvUs: number;
}

/**
 * Runs `run(n >> 4)` to warm up, then `run(n)` measured: `run` returns each
 * round trip's time in ms. `serverPid` 0: no server CPU.
 */
export async function measureSplit(
  run: (n: number) => Promise<number[]>,
  n: number,
  serverPid: number,
): Promise<SplitResult> {
  await run(Math.max(1, n >> 4));
  const cli0 = cpuNs(process.pid);
  const srv0 = serverPid ? cpuNs(serverPid) : 0;
  const times = await run(n);
  const cliUs = (cpuNs(process.pid) - cli0) / n / 1000;
  const srvUs = serverPid ? (cpuNs(serverPid) - srv0) / n / 1000 : 0;
  // The first 1% dropped (the measured run's own start), the rest sorted.
  const s = times.slice(Math.ceil(times.length / 100)).sort((a, b) => a - b);
  const p = (q: number) => s[Math.min(s.length - 1, Math.floor(s.length * q))];
  return { p50: p(0.5) * 1000, p99: p(0.99) * 1000, cliUs, srvUs };
}
