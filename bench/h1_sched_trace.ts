// The scheduler's view of the pinned lockstep over HTTP/1.1 under Bun
// (bench/_h1_split.ts's pairs, both processes on one CPU, as bench/run.ts's
// lockstep rows): a trace of which thread ran when, from the kernel's
// tracefs, taken in the middle of each pair's measured run (after the
// bench's warm-up). Needs root (to write tracefs; it is mounted at
// /sys/kernel/tracing if it is not yet).
//
//   deno run -A bench/h1_sched_trace.ts --bun <bun> [--cpu 1] [--ms 300] \
//     [--reps 1] hand/hand ours/ours ours/hand hand/ours
//
// A combination is <clientKind>/<serverKind> (bench/_h1_split.ts's kinds).
// Printed per combination: the round trips traced and, per round trip, the
// context switches on the CPU, how many of them took the CPU from a thread
// still runnable (a wake-up preempting it), the futex waits (a thread
// blocked on a lock another holds) and how often the client's main thread
// was put on the CPU; then the commonest sequences of switches within a
// round trip, with their share and median time (traced: the tracing itself
// adds a few µs to each). A round trip starts where the server reads its
// request. In a sequence, S is the server's main thread, M the client's, H
// the client's "HTTP Client" thread (Bun's fetch), c and s other threads
// of the client or the server, o any other; "M>H*" is a switch from M to H
// that preempted M, "H:fw" a futex wait of H.
import { parseArgs } from "node:util";
import { lines, readyPort } from "./_ready.ts";
import { threadName } from "./_split.ts";

const TRACEFS = "/sys/kernel/tracing";
const args = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    bun: { type: "string", default: "bun" },
    cpu: { type: "string", default: "1" },
    ms: { type: "string", default: "300" },
    reps: { type: "string", default: "1" },
  },
});
const { bun, cpu } = args.values;
const traceMs = Number(args.values.ms);
const SCRIPT = new URL("./_h1_split.ts", import.meta.url).pathname;

/** Makes sure tracefs is there, mounting it if needed. */
async function openTracefs(): Promise<void> {
  try {
    await Deno.stat(`${TRACEFS}/trace`);
    return;
  } catch { /* not mounted */ }
  const out = await new Deno.Command("mount", {
    args: ["-t", "tracefs", "nodev", TRACEFS],
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `Cannot trace: tracefs is not mounted at ${TRACEFS} and mounting it failed (root needed): ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
}

const put = (file: string, value: string) =>
  Deno.writeTextFile(`${TRACEFS}/${file}`, value);

const EVENTS = [
  "sched/sched_switch",
  "syscalls/sys_enter_futex",
  "syscalls/sys_enter_recvfrom",
];

/** Lines of a child's output stream, one at a time. */
/**
 * A side of the pair on the traced CPU; the client's stderr is read (for
 * "MEASURING"), the server's shown.
 */
function pinned(argv: string[], env?: Record<string, string>) {
  return new Deno.Command("taskset", {
    args: ["-c", cpu, bun, SCRIPT, ...argv],
    env,
    stdout: "piped",
    stderr: argv[0] === "client" ? "piped" : "inherit",
  });
}

/** Thread id → tag: S, M, H, c, s (see the header). */
function tagThreads(serverPid: number, clientPid: number): Map<string, string> {
  const tags = new Map<string, string>();
  for (
    const [pid, main, other] of [[serverPid, "S", "s"], [
      clientPid,
      "M",
      "c",
    ]] as const
  ) {
    for (const { name: tid } of Deno.readDirSync(`/proc/${pid}/task`)) {
      tags.set(
        tid,
        tid === String(pid)
          ? main
          : threadName(pid, tid) === "HTTP Client"
          ? "H"
          : other,
      );
    }
  }
  return tags;
}

/** Traces one pair's measured run for traceMs; the trace's text and tags. */
async function traceOne(
  clientKind: string,
  serverKind: string,
): Promise<{ text: string; tags: Map<string, string> }> {
  const server = pinned(["server", serverKind]).spawn();
  let client: Deno.ChildProcess | undefined;
  try {
    const port = await readyPort(server.stdout, `server ${serverKind}`);
    // Long enough to outlast the trace: stopped once traced.
    client = pinned(
      ["client", clientKind, String(port), "200000", String(server.pid)],
      { SPLIT_ANNOUNCE: "1" },
    ).spawn();
    for await (const line of lines(client.stderr)) {
      if (line === "MEASURING") break;
    }
    await new Promise((r) => setTimeout(r, 200));
    const tags = tagThreads(server.pid, client.pid);
    await put("trace", "");
    await put("tracing_on", "1");
    await new Promise((r) => setTimeout(r, traceMs));
    await put("tracing_on", "0");
    const text = await Deno.readTextFile(`${TRACEFS}/trace`);
    return { text, tags };
  } finally {
    for (const child of [client, server]) {
      try {
        child?.kill("SIGKILL");
      } catch { /* gone */ }
      await child?.status;
    }
  }
}

interface Tally {
  roundTrips: number;
  switches: number;
  preemptions: number;
  futexWaits: number;
  mainRuns: number;
  tracedUs: number;
  sequences: Map<string, number[]>;
}

const LINE = /^\s*.+?-(\d+)\s+\[\d+\]\s+\S+\s+([\d.]+): (\w+)[:(](.*)$/;

/** Adds one trace's round trips to `tally`. */
function count(text: string, tags: Map<string, string>, tally: Tally) {
  let tokens: string[] | undefined;
  let start = 0;
  for (const line of text.split("\n")) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, tid, ts, event, rest] = m;
    const who = tags.get(tid) ?? "o";
    const seconds = Number(ts);
    if (event === "sys_recvfrom" && who === "S") {
      // The first round trip is cut by the trace's start: not counted.
      if (tokens !== undefined) {
        const key = tokens.join(" ");
        const us = (seconds - start) * 1e6;
        tally.roundTrips++;
        tally.tracedUs += us;
        const list = tally.sequences.get(key) ?? [];
        list.push(us);
        tally.sequences.set(key, list);
      }
      tokens = [];
      start = seconds;
    }
    if (tokens === undefined) continue;
    if (event === "sched_switch") {
      const next = tags.get(/next_pid=(\d+)/.exec(rest)![1]) ?? "o";
      const preempted = /prev_state=R/.test(rest);
      tokens.push(`${who}>${next}${preempted ? "*" : ""}`);
      tally.switches++;
      if (preempted) tally.preemptions++;
      if (next === "M") tally.mainRuns++;
    } else if (event === "sys_futex" && /op: 0x(80|89),/.test(rest)) {
      // FUTEX_WAIT or FUTEX_WAIT_BITSET, private.
      tokens.push(`${who}:fw`);
      tally.futexWaits++;
    }
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

await openTracefs();
// Put back afterwards, as found.
const mask = (await Deno.readTextFile(`${TRACEFS}/tracing_cpumask`)).trim();
const bufferKb = (await Deno.readTextFile(`${TRACEFS}/buffer_size_kb`))
  .trim().replace(/\D.*$/, "");
const tallies = new Map<string, Tally>();
try {
  await put("tracing_on", "0");
  await put("events/enable", "0");
  await put("tracing_cpumask", (1 << Number(cpu)).toString(16));
  await put("buffer_size_kb", "20000");
  for (const event of EVENTS) await put(`events/${event}/enable`, "1");
  for (let rep = 0; rep < Number(args.values.reps); rep++) {
    for (const combo of args.positionals) {
      const [clientKind, serverKind] = combo.split("/");
      const { text, tags } = await traceOne(clientKind, serverKind);
      const tally = tallies.get(combo) ?? {
        roundTrips: 0,
        switches: 0,
        preemptions: 0,
        futexWaits: 0,
        mainRuns: 0,
        tracedUs: 0,
        sequences: new Map(),
      };
      count(text, tags, tally);
      tallies.set(combo, tally);
    }
  }
} finally {
  await put("tracing_on", "0");
  await put("events/enable", "0");
  await put("trace", "");
  await put("tracing_cpumask", mask);
  await put("buffer_size_kb", bufferKb);
}

for (const [combo, t] of tallies) {
  const per = (x: number) => (x / t.roundTrips).toFixed(2);
  console.log(
    `${combo}: ${t.roundTrips} round trips traced; per round trip ${
      per(t.switches)
    } switches, ${per(t.preemptions)} preemptions, ${
      per(t.futexWaits)
    } futex waits, client main put on the CPU ${per(t.mainRuns)} times; mean ${
      (t.tracedUs / t.roundTrips).toFixed(1)
    } µs (traced)`,
  );
  const common = [...t.sequences].sort((a, b) => b[1].length - a[1].length)
    .slice(0, 6);
  for (const [sequence, times] of common) {
    console.log(
      `  ${(times.length / t.roundTrips * 100).toFixed(1).padStart(5)}%  ${
        median(times).toFixed(0).padStart(4)
      } µs  ${sequence}`,
    );
  }
}
