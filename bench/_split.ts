// What the per-side lockstep scripts (bench/_h2_split.ts, bench/_h1_split.ts)
// share: a measured run's round-trip percentiles and, per round trip, the
// CPU of the client's own process and of the server's, from
// /proc/<pid>/task/<tid>/schedstat: the main thread's (less moved by a
// loaded machine than latency) and every thread's, by thread name, with
// how often each thread was put on the CPU and how long it waited there
// while runnable. Under Bun the fetch client's "HTTP Client" thread and the
// compiler's "JITWorker" threads share the pinned CPU with both main
// threads: a round trip's latency is close to the CPU of all of them.
import fs from "node:fs";
import process from "node:process";
import { LOCKSTEP_WARMUP, LOCKSTEP_WARMUP_BUN, warmupCalls } from "./_rpc.ts";

/**
 * Each of `pid`'s threads' schedstat, by thread id: its time on a CPU (ns),
 * its time runnable but waiting for one (ns) and how often it was put on
 * one.
 */
function threadStats(pid: number): Map<string, number[]> {
  const stats = new Map<string, number[]>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = fs.readFileSync(
        `/proc/${pid}/task/${tid}/schedstat`,
        "utf8",
      );
      stats.set(tid, stat.trim().split(" ").map(Number));
    } catch {
      // The thread ended meanwhile.
    }
  }
  return stats;
}

/** A thread's name: "main" for the process's own, else its comm. */
export function threadName(pid: number, tid: string): string {
  if (tid === String(pid)) return "main";
  try {
    return fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
  } catch {
    return "ended";
  }
}

/**
 * One side's threads per round trip, by thread name, between two
 * snapshots: CPU (µs), time runnable but waiting (µs) and times run.
 */
function sideOf(
  pid: number,
  before: Map<string, number[]>,
  after: Map<string, number[]>,
  n: number,
) {
  const side = {
    cpu: {} as Record<string, number>,
    wait: {} as Record<string, number>,
    runs: {} as Record<string, number>,
  };
  for (const [tid, stat] of after) {
    const name = threadName(pid, tid);
    const was = before.get(tid) ?? [0, 0, 0];
    side.cpu[name] = (side.cpu[name] ?? 0) + (stat[0] - was[0]) / n / 1000;
    side.wait[name] = (side.wait[name] ?? 0) + (stat[1] - was[1]) / n / 1000;
    side.runs[name] = (side.runs[name] ?? 0) + (stat[2] - was[2]) / n;
  }
  return side;
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
  /**
   * Every thread's time per round trip runnable but not on the CPU (µs),
   * and how often per round trip it was put on it, by thread name.
   */
  cliWaits: Record<string, number>;
  srvWaits: Record<string, number>;
  cliRuns: Record<string, number>;
  srvRuns: Record<string, number>;
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
  // For a tracer of the measured run (bench/h1_sched_trace.ts).
  if (process.env.SPLIT_ANNOUNCE) console.error("MEASURING");
  const cli0 = threadStats(process.pid);
  const srv0 = serverPid ? threadStats(serverPid) : new Map<string, number[]>();
  const times = await run(n);
  const cli = sideOf(process.pid, cli0, threadStats(process.pid), n);
  const srv = serverPid
    ? sideOf(serverPid, srv0, threadStats(serverPid), n)
    : { cpu: {}, wait: {}, runs: {} };
  // The first 1% dropped (the measured run's own start), the rest sorted.
  const s = times.slice(Math.ceil(times.length / 100)).sort((a, b) => a - b);
  const p = (q: number) => s[Math.min(s.length - 1, Math.floor(s.length * q))];
  return {
    p50: p(0.5) * 1000,
    p99: p(0.99) * 1000,
    cliUs: cli.cpu.main ?? 0,
    srvUs: srv.cpu.main ?? 0,
    cliThreads: cli.cpu,
    srvThreads: srv.cpu,
    cliWaits: cli.wait,
    srvWaits: srv.wait,
    cliRuns: cli.runs,
    srvRuns: srv.runs,
  };
}
