// What the per-side lockstep scripts (bench/_h2_split.ts, bench/_h1_split.ts)
// share: a measured run's round-trip percentiles and, per round trip, the
// CPU of the client's own process and of the server's, from
// /proc/<pid>/task/<tid>/schedstat: the main thread's (less moved by a
// loaded machine than latency) and every thread's, by thread name. Under
// Bun the fetch client's "HTTP Client" thread and the compiler's
// "JITWorker" threads share the pinned CPU with both main threads: a round
// trip's latency is close to the CPU of all of them.
import fs from "node:fs";
import process from "node:process";
import { LOCKSTEP_WARMUP, LOCKSTEP_WARMUP_BUN, warmupCalls } from "./_rpc.ts";

/** The time on a CPU of each of `pid`'s threads, in ns, by thread id. */
function threadsNs(pid: number): Map<string, number> {
  const times = new Map<string, number>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = fs.readFileSync(
        `/proc/${pid}/task/${tid}/schedstat`,
        "utf8",
      );
      times.set(tid, Number(stat.split(" ")[0]));
    } catch {
      // The thread ended meanwhile.
    }
  }
  return times;
}

/** A thread's name: "main" for the process's own, else its comm. */
function threadName(pid: number, tid: string): string {
  if (tid === String(pid)) return "main";
  try {
    return fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
  } catch {
    return "ended";
  }
}

/** CPU per round trip (µs) of each thread name, between two snapshots. */
function perRoundTrip(
  pid: number,
  before: Map<string, number>,
  after: Map<string, number>,
  n: number,
): Record<string, number> {
  const byName: Record<string, number> = {};
  for (const [tid, ns] of after) {
    const name = threadName(pid, tid);
    byName[name] = (byName[name] ?? 0) + (ns - (before.get(tid) ?? 0)) / n /
        1000;
  }
  return byName;
}

/** A measured run: p50 and p99 of the round trips and CPU per round trip (µs). */
export interface SplitResult {
  p50: number;
  p99: number;
  /** The main threads' CPU per round trip: the client's, the server's. */
  cliUs: number;
  srvUs: number;
  /** Every thread's CPU per round trip, by thread name ("main" included). */
  cliThreads: Record<string, number>;
  srvThreads: Record<string, number>;
}

/**
 * The warm-up round trips bench/run.ts gives a lockstep contender under
 * this runtime (bench/_rpc.ts).
 */
export function benchWarmup(): number {
  return "Bun" in globalThis ? LOCKSTEP_WARMUP_BUN : LOCKSTEP_WARMUP;
}

/**
 * Runs `warmup` round trips as bench/_rpc.ts warms a lockstep contender up
 * (in five calls: `run` makes a call each time), then `run(n)` measured:
 * `run` returns each round trip's time in ms. `serverPid` 0: no server CPU.
 * A warm-up in one call measured the compiler at work: after 1,875 round
 * trips in one call, Bun's JIT threads took 3.3-4.6 µs of CPU per round trip
 * of our client's and our server's next 30,000 (by hand 0.5-1.0), as the
 * second call recompiled code made for the first call's objects.
 */
export async function measureSplit(
  run: (n: number) => Promise<number[]>,
  n: number,
  serverPid: number,
  warmup: number = benchWarmup(),
): Promise<SplitResult> {
  for (const calls of warmupCalls(warmup)) await run(calls);
  const cli0 = threadsNs(process.pid);
  const srv0 = serverPid ? threadsNs(serverPid) : new Map<string, number>();
  const times = await run(n);
  const cliThreads = perRoundTrip(process.pid, cli0, threadsNs(process.pid), n);
  const srvThreads = serverPid
    ? perRoundTrip(serverPid, srv0, threadsNs(serverPid), n)
    : {};
  // The first 1% dropped (the measured run's own start), the rest sorted.
  const s = times.slice(Math.ceil(times.length / 100)).sort((a, b) => a - b);
  const p = (q: number) => s[Math.min(s.length - 1, Math.floor(s.length * q))];
  return {
    p50: p(0.5) * 1000,
    p99: p(0.99) * 1000,
    cliUs: cliThreads.main ?? 0,
    srvUs: srvThreads.main ?? 0,
    cliThreads,
    srvThreads,
  };
}
