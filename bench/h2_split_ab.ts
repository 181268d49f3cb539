// Interleaved A/B of bench/_h2_split.ts (or, with --transport h1,
// bench/_h1_split.ts): each combination of a client and a server (each from
// a checkout of its own, to compare two versions) runs in turn, repetition
// after repetition, and the medians are printed.
//
//   deno run -A bench/h2_split_ab.ts --bun <bun> --reps 7 --n 4000 \
//     --runtimes deno,bun --dir base=/tmp/main --dir new=. \
//     new:raw/new:raw base:ours/base:ours new:ours/new:ours
//
//   deno run -A bench/h2_split_ab.ts --transport h1 --bun <bun> --reps 4 \
//     --n 5000 --runtimes bun hand/hand hand/codec hand/queue hand/ours
//
// Each client warms up as bench/run.ts's lockstep does (five calls, 30,000
// round trips under Bun, 10,000 under Deno) unless --warmup says how many.
// Printed per combination: the medians of p50, p99 and the main threads'
// CPU per round trip, then per round trip, each thread name's CPU, its time
// runnable but waiting for the CPU and how often it was put on the CPU
// (three lines; "c." the client's threads, "s." the server's, "all" every
// thread of the process; threads under 0.3 µs of CPU left out).
//
// A combination is [<clientDir>:]<clientKind>/[<serverDir>:]<serverKind>
// (the directory "new" when left out); the script runs from
// <dir>/bench/_h2_split.ts (or _h1_split.ts), so a base checkout needs it
// too.
import { parseArgs } from "node:util";
import { serverThenClient } from "./_server_client.ts";
import type { SplitResult } from "./_split.ts";
const args = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    bun: { type: "string", default: "bun" },
    reps: { type: "string", default: "5" },
    n: { type: "string", default: "4000" },
    runtimes: { type: "string", default: "deno,bun" },
    dir: { type: "string", multiple: true, default: ["new=."] },
    transport: { type: "string", default: "h2" },
    warmup: { type: "string" },
  },
});
// Each process runs in its checkout: a relative path to Bun is made whole.
const bun = args.values.bun.includes("/") && !args.values.bun.startsWith("/")
  ? `${Deno.cwd()}/${args.values.bun}`
  : args.values.bun;
const repsArg = args.values.reps;
const nArg = args.values.n;
const rtArg = args.values.runtimes;
const combos = args.positionals;
const dirs: Record<string, string> = Object.fromEntries(
  args.values.dir.map((d) => d.split("=", 2)),
);
const warmupArg = args.values.warmup;
const transport = args.values.transport;
if (transport !== "h1" && transport !== "h2") {
  throw new TypeError(`Cannot run: --transport is h1 or h2, got ${transport}`);
}
const script = `bench/_${transport}_split.ts`;
const deno = Deno.execPath();
const cmd = (rt: string, dir: string, argv: string[]) =>
  new Deno.Command(rt === "deno" ? deno : bun, {
    args: rt === "deno"
      ? ["run", "-A", "--quiet", script, ...argv]
      : [script, ...argv],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  });
async function one(rt: string, combo: string) {
  const [c, s] = combo.split("/");
  const side = (x: string) => x.includes(":") ? x.split(":", 2) : ["new", x];
  const [cd, ck] = side(c);
  const [sd, sk] = side(s);
  return await serverThenClient(
    cmd(rt, dirs[sd], ["server", sk]),
    (port, pid) =>
      cmd(rt, dirs[cd], [
        "client",
        ck,
        port,
        nArg,
        String(pid),
        ...(warmupArg === undefined ? [] : [warmupArg]),
      ]),
  ) as SplitResult;
}
const res: Record<
  string,
  {
    p50: number[];
    p99: number[];
    cli: number[];
    srv: number[];
    threads: Record<string, number>[];
    waits: Record<string, number>[];
    runs: Record<string, number>[];
  }
> = {};
// A per-thread figure of a run, per round trip, by side and thread name,
// with each side's sum.
const threadsOf = (
  cli: Record<string, number>,
  srv: Record<string, number>,
) => {
  const out: Record<string, number> = {};
  for (const [side, threads] of [["c", cli], ["s", srv]] as const) {
    let all = 0;
    for (const [name, us] of Object.entries(threads)) {
      out[`${side}.${name}`] = us;
      all += us;
    }
    out[`${side}.all`] = all;
  }
  return out;
};
for (let rep = 0; rep < Number(repsArg); rep++) {
  for (const rt of rtArg.split(",")) {
    for (const combo of combos) {
      const k = `${rt} ${combo}`;
      const r = await one(rt, combo);
      (res[k] ??= {
        p50: [],
        p99: [],
        cli: [],
        srv: [],
        threads: [],
        waits: [],
        runs: [],
      }).p50.push(r.p50);
      res[k].threads.push(threadsOf(r.cliThreads, r.srvThreads));
      res[k].waits.push(threadsOf(r.cliWaits, r.srvWaits));
      res[k].runs.push(threadsOf(r.cliRuns, r.srvRuns));
      res[k].p99.push(r.p99);
      res[k].cli.push(r.cliUs);
      res[k].srv.push(r.srvUs);
      console.error(
        k,
        r.p50.toFixed(1),
        r.p99.toFixed(0),
        r.cliUs.toFixed(1),
        r.srvUs.toFixed(1),
      );
    }
  }
}
const med = (a: number[]) =>
  [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
for (const [k, v] of Object.entries(res)) {
  console.log(
    `${k.padEnd(36)} p50 ${med(v.p50).toFixed(1).padStart(6)} [${
      v.p50.map((x) => x.toFixed(0)).join(",")
    }]  p99 ${med(v.p99).toFixed(0).padStart(5)}  cpu/msg client ${
      med(v.cli).toFixed(1)
    } server ${med(v.srv).toFixed(1)} µs [${
      v.cli.map((x) => x.toFixed(0)).join(",")
    } | ${v.srv.map((x) => x.toFixed(0)).join(",")}]`,
  );
  // Per thread, medians: CPU (µs), time runnable but waiting (µs) and
  // times put on the CPU, per round trip; threads under 0.3 µs of CPU left
  // out.
  const names = [...new Set(v.threads.flatMap((t) => Object.keys(t)))].sort()
    .filter((name) => med(v.threads.map((t) => t[name] ?? 0)) >= 0.3);
  const line = (label: string, runs: Record<string, number>[], digits = 1) =>
    console.log(
      `${"".padEnd(36)} ${label}: ${
        names.map((name) =>
          `${name} ${med(runs.map((t) => t[name] ?? 0)).toFixed(digits)}`
        ).join(", ")
      }`,
    );
  line("threads µs", v.threads);
  line("waiting µs", v.waits);
  line("runs", v.runs, 2);
}
